package imageio

import (
	"image"
	"math"
)

// The resampler below does what golang.org/x/image/draw's BiLinear.Scale
// does for opaque RGBA (separable triangle filter, the kernel widened by the
// shrink factor, taps outside the image dropped and the rest renormalised)
// in fixed point with precomputed taps: resizing was two thirds of
// prepare's time per photo with the generic float64 scaler.
//
// The triangle filter with half-pixel centres is also what the serving
// graph's tf.image.resize(method="bilinear", antialias=True) computes, so
// training images (resized here) and served images (resized in the graph)
// go through the same resampling.

const weightBits = 14 // fixed-point weights sum to 1<<weightBits

// taps are the source pixels and weights of every destination pixel on one
// axis: destination i reads count[i] source pixels from first[i] on, with
// weights weight[i*n:], all inside the source span (so loops need no checks).
type taps struct {
	first  []int
	count  []int
	n      int
	weight []int32
	exact  []float32 // the same weights unrounded (ResizeFloat)
}

// triangle is the bilinear kernel, support 1.
func triangle(x float64) float64 { return max(0, 1-math.Abs(x)) }

// makeTaps maps dstLen pixels onto the source span [lo, lo+span) of an axis
// whose valid source indices are [0, srcLen).
func makeTaps(lo, span, srcLen, dstLen int) taps {
	scale := float64(span) / float64(dstLen)
	stretch := math.Max(1, scale) // widen the kernel when shrinking, to filter
	support := stretch
	t := taps{first: make([]int, dstLen), count: make([]int, dstLen), n: int(math.Ceil(2*support)) + 1}
	t.weight = make([]int32, dstLen*t.n)
	t.exact = make([]float32, dstLen*t.n)
	fw := make([]float64, t.n)
	for i := range dstLen {
		centre := float64(lo) + (float64(i)+0.5)*scale - 0.5
		// Taps outside the span are dropped and the rest renormalised.
		first := max(int(math.Floor(centre-support))+1, lo, 0)
		last := min(int(math.Floor(centre+support)), lo+span-1, srcLen-1)
		n := min(last-first+1, t.n)
		sum := 0.0
		for k := range n {
			fw[k] = triangle((float64(first+k) - centre) / stretch)
			sum += fw[k]
		}
		w := t.weight[i*t.n : i*t.n+n]
		for k := range n {
			t.exact[i*t.n+k] = float32(fw[k] / sum)
		}
		total, biggest := int32(0), 0
		for k := range w {
			w[k] = int32(math.Round(fw[k] / sum * (1 << weightBits)))
			total += w[k]
			if w[k] > w[biggest] {
				biggest = k
			}
		}
		w[biggest] += 1<<weightBits - total // exact unit sum: flat areas stay flat
		t.first[i], t.count[i] = first, n
	}
	return t
}

// scaleRGBA resamples the sr part of src into the dr part of dst. Both are
// opaque (alpha is written as 255), and sr and dr lie inside their images.
//
// The vertical pass comes first: for each destination row it streams the
// few source rows it reads (uint8, in memory order) into one int32 row,
// then the horizontal pass reads that short row. All sums are exact
// integers with one rounding at the end, so the order of the passes does
// not change a single value (see TestScaleOrderExact); it only makes the
// pass over the large source a simple streaming loop.
func scaleRGBA(dst *image.RGBA, dr image.Rectangle, src *image.RGBA, sr image.Rectangle) {
	tx, ty, x0, x1 := scaleTaps(dr, src, sr)
	dw := dr.Dx()
	row := make([]int32, (x1-x0)*4) // one destination row after the vertical pass, RGBA at 1<<weightBits scale
	const shift = 2 * weightBits
	for y := range dr.Dy() {
		clear(row)
		n := ty.count[y]
		for k, wk := range ty.weight[y*ty.n : y*ty.n+n] {
			off := (ty.first[y]+k)*src.Stride + 4*x0
			srow := src.Pix[off : off+len(row)]
			acc := row[:len(srow)]
			for i := 0; i+3 < len(srow) && i+3 < len(acc); i += 4 { // alpha skipped
				acc[i] += wk * int32(srow[i])
				acc[i+1] += wk * int32(srow[i+1])
				acc[i+2] += wk * int32(srow[i+2])
			}
		}
		drow := dst.Pix[(dr.Min.Y-dst.Rect.Min.Y+y)*dst.Stride+(dr.Min.X-dst.Rect.Min.X)*4:]
		drow = drow[:4*dw]
		for x := range dw {
			c := tx.count[x]
			w := tx.weight[x*tx.n : x*tx.n+c]
			p := row[4*(tx.first[x]-x0) : 4*(tx.first[x]-x0+c)]
			var r, g, bl int64
			for k, wk := range w {
				q := p[4*k : 4*k+3]
				r += int64(wk) * int64(q[0])
				g += int64(wk) * int64(q[1])
				bl += int64(wk) * int64(q[2])
			}
			d := drow[4*x : 4*x+4]
			d[0], d[1], d[2], d[3] = round8(r, shift), round8(g, shift), round8(bl, shift), 255
		}
	}
}

// scaleTaps are the horizontal and vertical taps that scale the sr part of
// src to dr, and the source columns [x0, x1) the horizontal ones read.
func scaleTaps(dr image.Rectangle, src *image.RGBA, sr image.Rectangle) (tx, ty taps, x0, x1 int) {
	b := src.Rect
	tx = makeTaps(sr.Min.X-b.Min.X, sr.Dx(), b.Dx(), dr.Dx())
	ty = makeTaps(sr.Min.Y-b.Min.Y, sr.Dy(), b.Dy(), dr.Dy())
	x0, x1 = tx.first[0], tx.first[0]
	for x := range dr.Dx() {
		x0, x1 = min(x0, tx.first[x]), max(x1, tx.first[x]+tx.count[x])
	}
	return tx, ty, x0, x1
}

func round8(v int64, shift uint) uint8 {
	v = (v + 1<<(shift-1)) >> shift
	return uint8(min(255, max(0, v)))
}

// scaleFloat is scaleRGBA with the unrounded weights, in float32 and
// without rounding to whole levels: RGB values of the sr part of src into
// the dr part of dst, a size×size×3 float image (stride 3*size).
func scaleFloat(dst []float32, size int, dr image.Rectangle, src *image.RGBA, sr image.Rectangle) {
	tx, ty, x0, x1 := scaleTaps(dr, src, sr)
	dw := dr.Dx()
	row := make([]float32, (x1-x0)*4)
	for y := range dr.Dy() {
		clear(row)
		n := ty.count[y]
		for k, wk := range ty.exact[y*ty.n : y*ty.n+n] {
			off := (ty.first[y]+k)*src.Stride + 4*x0
			srow := src.Pix[off : off+len(row)]
			acc := row[:len(srow)]
			for i := 0; i+3 < len(srow) && i+3 < len(acc); i += 4 {
				acc[i] += wk * float32(srow[i])
				acc[i+1] += wk * float32(srow[i+1])
				acc[i+2] += wk * float32(srow[i+2])
			}
		}
		drow := dst[((dr.Min.Y+y)*size+dr.Min.X)*3:]
		drow = drow[:3*dw]
		for x := range dw {
			c := tx.count[x]
			w := tx.exact[x*tx.n : x*tx.n+c]
			p := row[4*(tx.first[x]-x0) : 4*(tx.first[x]-x0+c)]
			var r, g, bl float32
			for k, wk := range w {
				q := p[4*k : 4*k+3]
				r += wk * q[0]
				g += wk * q[1]
				bl += wk * q[2]
			}
			d := drow[3*x : 3*x+3]
			d[0], d[1], d[2] = r, g, bl
		}
	}
}
