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
func scaleRGBA(dst *image.RGBA, dr image.Rectangle, src *image.RGBA, sr image.Rectangle) {
	b := src.Rect
	tx := makeTaps(sr.Min.X-b.Min.X, sr.Dx(), b.Dx(), dr.Dx())
	ty := makeTaps(sr.Min.Y-b.Min.Y, sr.Dy(), b.Dy(), dr.Dy())
	dw := dr.Dx()
	// Horizontal pass over the rows of sr, into 3 int32 channels per pixel
	// at 1<<weightBits scale.
	tmp := make([]int32, sr.Dy()*dw*3)
	for y := range sr.Dy() {
		srow := src.Pix[(sr.Min.Y-b.Min.Y+y)*src.Stride:]
		trow := tmp[y*dw*3 : (y+1)*dw*3]
		for x := range dw {
			n := tx.count[x]
			w := tx.weight[x*tx.n : x*tx.n+n]
			p := srow[4*tx.first[x] : 4*(tx.first[x]+n)]
			var r, g, bl int32
			for k, wk := range w {
				r += wk * int32(p[4*k])
				g += wk * int32(p[4*k+1])
				bl += wk * int32(p[4*k+2])
			}
			trow[3*x], trow[3*x+1], trow[3*x+2] = r, g, bl
		}
	}
	// Vertical pass, a whole row at a time so memory is read in order.
	const shift = 2 * weightBits
	acc := make([]int64, dw*3)
	for y := range dr.Dy() {
		clear(acc)
		n := ty.count[y]
		first := ty.first[y] - (sr.Min.Y - b.Min.Y)
		for k, wk := range ty.weight[y*ty.n : y*ty.n+n] {
			row := tmp[(first+k)*dw*3 : (first+k+1)*dw*3]
			for i, v := range row {
				acc[i] += int64(wk) * int64(v)
			}
		}
		drow := dst.Pix[(dr.Min.Y-dst.Rect.Min.Y+y)*dst.Stride+(dr.Min.X-dst.Rect.Min.X)*4:]
		for x := range dw {
			p := drow[4*x : 4*x+4]
			p[0], p[1], p[2], p[3] = round8(acc[3*x], shift), round8(acc[3*x+1], shift), round8(acc[3*x+2], shift), 255
		}
	}
}

func round8(v int64, shift uint) uint8 {
	v = (v + 1<<(shift-1)) >> shift
	return uint8(min(255, max(0, v)))
}
