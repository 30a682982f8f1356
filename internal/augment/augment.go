// Package augment applies seeded random affine augmentation to RGB images,
// with the semantics of Keras's ImageDataGenerator.random_transform and
// apply_affine_transform (bilinear sampling, interpolation_order=1):
//
//   - the transform is about the image centre, and maps each output pixel
//     back to the input (scipy.ndimage.affine_transform's pull resampling);
//   - it composes, output coordinates to input coordinates, as
//     rotate · shift · shear · zoom (Keras's matrix order), so a zoom factor
//     above 1 samples a larger area and shrinks the content;
//   - flips are applied after the affine transform, horizontal first;
//   - fill modes follow scipy.ndimage as Keras calls it: nearest, constant
//     (cval outside the image, no blending at the edge), reflect
//     (d c b a | a b c d | d c b a) and scipy's legacy wrap, whose period is
//     one pixel less than the image.
//
// Two deliberate departures from Keras, both only visible on non-square
// images: Keras centres the transform at (h/2, w/2) in (x, y) order, which is
// the wrong point unless h == w, and it scales height_shift_range by the
// height but applies it horizontally (and width_shift_range vertically).
// Here the centre is the true centre and WidthShift moves content
// horizontally by a fraction of the width. On square images, xcept's case
// (model.image_size), the result equals Keras's for the same transform,
// which the tests check against the venv's tf_keras and scipy.
package augment

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/xcept/xcept/internal/fault"
)

// Fill modes, as Keras's fill_mode.
const (
	FillNearest  = "nearest"
	FillConstant = "constant"
	FillReflect  = "reflect"
	FillWrap     = "wrap"
)

// Params are the augmentation ranges, under the config keys augment.*.
// The zero value disables augmentation.
type Params struct {
	Rotation    float64 `mapstructure:"rotation" json:"rotation"`         // degrees: angle uniform in [-r, r]
	WidthShift  float64 `mapstructure:"width_shift" json:"width_shift"`   // fraction of the width: shift uniform in [-s, s]·w
	HeightShift float64 `mapstructure:"height_shift" json:"height_shift"` // fraction of the height: shift uniform in [-s, s]·h
	// Shear is an angle in degrees, uniform in [-s, s], as Keras's
	// shear_range (so the recipe's 0.2 is a very slight shear).
	Shear float64 `mapstructure:"shear" json:"shear"`
	// Zoom draws x and y zoom factors independently from [1-z, 1+z]; a factor
	// above 1 shrinks the content, as in Keras.
	Zoom           float64 `mapstructure:"zoom" json:"zoom"`
	HorizontalFlip bool    `mapstructure:"horizontal_flip" json:"horizontal_flip"` // mirror left-right with probability 1/2
	VerticalFlip   bool    `mapstructure:"vertical_flip" json:"vertical_flip"`     // mirror top-bottom with probability 1/2
	Fill           string  `mapstructure:"fill" json:"fill"`                       // nearest (default, also ""), constant, reflect or wrap
	Cval           uint8   `mapstructure:"cval" json:"cval"`                       // the value of every channel outside the image in constant mode
}

// Recipe returns the augmentation of the recipe xcept's defaults come from:
// Keras ImageDataGenerator(rotation_range=20, width_shift_range=0.2,
// height_shift_range=0.2, shear_range=0.2, zoom_range=0.2,
// horizontal_flip=True), fill_mode nearest.
func Recipe() Params {
	return Params{Rotation: 20, WidthShift: 0.2, HeightShift: 0.2, Shear: 0.2, Zoom: 0.2, HorizontalFlip: true, Fill: FillNearest}
}

// Enabled reports whether p changes any image.
func (p Params) Enabled() bool {
	return p.Rotation != 0 || p.WidthShift != 0 || p.HeightShift != 0 || p.Shear != 0 || p.Zoom != 0 || p.HorizontalFlip || p.VerticalFlip
}

// Validate reports the first bad value, naming its config key.
func (p Params) Validate() error {
	ranges := []struct {
		key, unit string
		v, max    float64
		inclusive bool // whether max itself is allowed
	}{
		{"augment.rotation", "an angle in degrees", p.Rotation, 180, true},
		{"augment.width_shift", "a fraction of the width", p.WidthShift, 1, false},
		{"augment.height_shift", "a fraction of the height", p.HeightShift, 1, false},
		{"augment.shear", "an angle in degrees", p.Shear, 90, false},
		{"augment.zoom", "z for zoom factors in [1-z, 1+z]", p.Zoom, 1, false},
	}
	for _, r := range ranges {
		tooBig := r.v > r.max || r.v == r.max && !r.inclusive
		if math.IsNaN(r.v) || r.v < 0 || tooBig {
			bound := "below"
			if r.inclusive {
				bound = "at most"
			}
			return fault.New(fault.BadValue, "%s: %v is out of range; give %s from 0 (off) to %s %v", r.key, r.v, r.unit, bound, r.max)
		}
	}
	if _, err := parseFill(p.Fill); err != nil {
		return err
	}
	return nil
}

type fillMode uint8

const (
	fillNearest fillMode = iota
	fillConstant
	fillReflect
	fillWrap
)

func parseFill(s string) (fillMode, error) {
	switch s {
	case "", FillNearest:
		return fillNearest, nil
	case FillConstant:
		return fillConstant, nil
	case FillReflect:
		return fillReflect, nil
	case FillWrap:
		return fillWrap, nil
	}
	return 0, fault.New(fault.BadValue, "augment.fill: unknown fill mode %q; use nearest, constant, reflect or wrap", s)
}

// Transform is one drawn augmentation, in pixels and degrees. Like Keras's
// transform parameters it maps output to input: a positive Tx samples from
// further right, so the content moves left.
type Transform struct {
	Theta  float64 // rotation, degrees
	Tx, Ty float64 // horizontal and vertical shift, pixels
	Shear  float64 // degrees
	Zx, Zy float64 // zoom factors; 1 is none
	FlipH  bool    // mirror left-right after the affine transform
	FlipV  bool    // mirror top-bottom after that
}

// Identity is the transform that changes nothing.
var Identity = Transform{Zx: 1, Zy: 1}

// Draw draws a transform for an h×w image from rng. It always consumes the
// same number of draws, so enabling one parameter does not change what the
// others draw for the same seed.
func (p Params) Draw(h, w int, rng *rand.Rand) Transform {
	uniform := func(r float64) float64 { return (2*rng.Float64() - 1) * r }
	t := Transform{
		Theta: uniform(p.Rotation),
		Tx:    uniform(p.WidthShift) * float64(w),
		Ty:    uniform(p.HeightShift) * float64(h),
		Shear: uniform(p.Shear),
		Zx:    1 + uniform(p.Zoom),
		Zy:    1 + uniform(p.Zoom),
	}
	t.FlipH = rng.Float64() < 0.5 && p.HorizontalFlip
	t.FlipV = rng.Float64() < 0.5 && p.VerticalFlip
	return t
}

// Apply draws a transform from rng and applies it: dst = T(src). Both are
// h×w RGB images, HWC, row-major, len h*w*3, and must not overlap. p must
// be valid (see Validate); Apply panics on a bad fill mode or bad lengths,
// which are bugs in the caller. It allocates nothing.
func (p Params) Apply(dst, src []uint8, h, w int, rng *rand.Rand) {
	p.ApplyTransform(dst, src, h, w, p.Draw(h, w, rng))
}

// ApplyTransform applies t with p's fill mode: dst = t(src).
func (p Params) ApplyTransform(dst, src []uint8, h, w int, t Transform) {
	if len(src) != h*w*3 || len(dst) != h*w*3 {
		panic(fmt.Sprintf("augment: %dx%d RGB image needs %d bytes, got src %d, dst %d", h, w, h*w*3, len(src), len(dst)))
	}
	fill, err := parseFill(p.Fill)
	if err != nil {
		panic(err)
	}
	if t == Identity {
		copy(dst, src)
		return
	}
	sampler{src: src, h: h, w: w, fill: fill, cval: p.Cval}.warp(dst, t.matrix(h, w))
}

// affine is a 2×3 matrix mapping output (x, y) to input
// (a*x + b*y + c, d*x + e*y + f); x is the column, y the row.
type affine struct{ a, b, c, d, e, f float64 }

func (m affine) then(n affine) affine { // m · n: apply n first
	return affine{
		a: m.a*n.a + m.b*n.d, b: m.a*n.b + m.b*n.e, c: m.a*n.c + m.b*n.f + m.c,
		d: m.d*n.a + m.e*n.d, e: m.d*n.b + m.e*n.e, f: m.d*n.c + m.e*n.f + m.f,
	}
}

func translate(x, y float64) affine { return affine{a: 1, c: x, e: 1, f: y} }

// sincosDeg is exact at multiples of 90 degrees, so quarter turns move whole
// pixels instead of landing 1e-16 off the grid.
func sincosDeg(deg float64) (sin, cos float64) {
	if q := deg / 90; q == math.Trunc(q) {
		switch int(math.Mod(math.Mod(q, 4)+4, 4)) {
		case 0:
			return 0, 1
		case 1:
			return 1, 0
		case 2:
			return 0, -1
		default:
			return -1, 0
		}
	}
	return math.Sincos(deg * math.Pi / 180)
}

// matrix is the output-to-input map: flips, then Keras's
// centre · rotate · shift · shear · zoom · uncentre.
func (t Transform) matrix(h, w int) affine {
	cx, cy := float64(w-1)/2, float64(h-1)/2
	sinR, cosR := sincosDeg(t.Theta)
	sinS, cosS := sincosDeg(t.Shear)
	m := translate(cx, cy).
		then(affine{a: cosR, b: -sinR, d: sinR, e: cosR}).
		then(translate(t.Tx, t.Ty)).
		then(affine{a: 1, b: -sinS, e: cosS}).
		then(affine{a: t.Zx, e: t.Zy}).
		then(translate(-cx, -cy))
	// Flipping the output after the warp is reading the warp at the mirrored
	// output position. Horizontal is applied first, then vertical; they
	// commute.
	if t.FlipH {
		m = m.then(affine{a: -1, c: float64(w - 1), e: 1})
	}
	if t.FlipV {
		m = m.then(affine{a: 1, e: -1, f: float64(h - 1)})
	}
	return m
}

type sampler struct {
	src  []uint8
	h, w int
	fill fillMode
	cval uint8
}

// warp walks dst row by row, stepping the input position by the matrix
// columns instead of multiplying per pixel.
func (s sampler) warp(dst []uint8, m affine) {
	maxX, maxY := float64(s.w-1), float64(s.h-1)
	i := 0
	for y := 0; y < s.h; y++ {
		fy := float64(y)
		for x := 0; x < s.w; x++ {
			fx := float64(x)
			// Computed from scratch rather than accumulated, so error does
			// not grow along a row and matches scipy's per-pixel product.
			sx := m.a*fx + m.b*fy + m.c
			sy := m.d*fx + m.e*fy + m.f
			if sx >= 0 && sx <= maxX && sy >= 0 && sy <= maxY {
				s.bilinear(dst[i:i+3:i+3], sx, sy)
			} else {
				s.outside(dst[i:i+3:i+3], sx, sy)
			}
			i += 3
		}
	}
}

// outside samples a position off the image by the fill mode.
func (s sampler) outside(px []uint8, sx, sy float64) {
	var okx, oky bool
	sx, okx = s.fold(sx, s.w)
	sy, oky = s.fold(sy, s.h)
	if !okx || !oky {
		px[0], px[1], px[2] = s.cval, s.cval, s.cval
		return
	}
	s.bilinear(px, sx, sy)
}

// fold maps a coordinate on an axis of n pixels into [0, n-1] as
// scipy.ndimage's map_coordinate does for the mode, or reports that it is
// outside in constant mode.
func (s sampler) fold(v float64, n int) (float64, bool) {
	last := float64(n - 1)
	if v >= 0 && v <= last {
		return v, true
	}
	if n == 1 {
		return 0, s.fill != fillConstant
	}
	switch s.fill {
	case fillConstant:
		return 0, false
	case fillReflect:
		// Half-sample symmetric: period 2n, mirrored about -0.5 and n-0.5;
		// what lands within half a pixel outside takes the edge pixel.
		period := float64(2 * n)
		v = math.Mod(v, period)
		if v < 0 {
			v += period
		}
		if v >= float64(n) {
			v = period - v - 1
		}
		return min(max(v, 0), last), true
	case fillWrap:
		// scipy's legacy "wrap": period n-1, so the first and last pixels
		// coincide. Same truncating arithmetic as scipy for equal results at
		// exact multiples.
		if v < 0 {
			return v + last*(math.Trunc(-v/last)+1), true
		}
		return v - last*math.Trunc(v/last), true
	}
	return min(max(v, 0), last), true // nearest
}

// bilinear interpolates the three channels at (sx, sy), which lie in the image.
func (s sampler) bilinear(px []uint8, sx, sy float64) {
	x0, y0 := int(sx), int(sy) // sx, sy >= 0: truncation is floor
	wx, wy := sx-float64(x0), sy-float64(y0)
	x1, y1 := x0+1, y0+1
	if x1 == s.w {
		x1 = x0 // wx is 0 here
	}
	if y1 == s.h {
		y1 = y0
	}
	r0, r1 := y0*s.w, y1*s.w
	p00 := s.src[(r0+x0)*3 : (r0+x0)*3+3 : (r0+x0)*3+3]
	p01 := s.src[(r0+x1)*3 : (r0+x1)*3+3 : (r0+x1)*3+3]
	p10 := s.src[(r1+x0)*3 : (r1+x0)*3+3 : (r1+x0)*3+3]
	p11 := s.src[(r1+x1)*3 : (r1+x1)*3+3 : (r1+x1)*3+3]
	w00, w01 := (1-wy)*(1-wx), (1-wy)*wx
	w10, w11 := wy*(1-wx), wy*wx
	// The weights are non-negative and sum to 1, so each value is within
	// [0, 255] up to rounding far below 0.5: +0.5 and truncation round it
	// without a clamp. Channels unrolled: this is the hot loop.
	px[0] = uint8(w00*float64(p00[0]) + w01*float64(p01[0]) + w10*float64(p10[0]) + w11*float64(p11[0]) + 0.5)
	px[1] = uint8(w00*float64(p00[1]) + w01*float64(p01[1]) + w10*float64(p10[1]) + w11*float64(p11[1]) + 0.5)
	px[2] = uint8(w00*float64(p00[2]) + w01*float64(p01[2]) + w10*float64(p10[2]) + w11*float64(p11[2]) + 0.5)
}
