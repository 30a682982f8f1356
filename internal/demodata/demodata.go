// Package demodata generates a small labelled image folder whose classes a
// model can learn but not trivially: each class is a shape in a colour,
// drawn at a random position, size and angle on a noisy background of
// random tint. The same options give the same bytes on every machine, so
// tests and `make demo` can rely on it.
package demodata

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"

	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/imageio"
)

// Options for Generate.
type Options struct {
	Classes  int    // number of classes, 2 to len(Shapes)
	PerClass int    // images per class
	Width    int    // image width in pixels, at least 32
	Height   int    // image height in pixels, at least 32
	Seed     uint64 // the images depend on it and on nothing else
	Format   string // "jpeg", "png" or "mixed" (every fourth image PNG)
	// Quadrant confines the class evidence (the shape) to one quadrant per
	// image, named in the file name (see QuadrantOf), so that a saliency
	// map such as Grad-CAM can be checked against where the evidence is.
	Quadrant bool
}

// Defaults are the options of `xcept demo-data` without flags.
func Defaults() Options {
	return Options{Classes: 3, PerClass: 100, Width: 128, Height: 128, Seed: 1, Format: "mixed"}
}

// shape is one class: an outline in a unit square and a hue.
type shape struct {
	name   string
	hue    float64 // degrees
	inside func(u, v float64) bool
}

// Shapes are the classes, in the order Generate uses them.
var Shapes = []shape{
	{"circle", 0, func(u, v float64) bool { return u*u+v*v <= 1 }},
	{"square", 120, func(u, v float64) bool { return math.Abs(u) <= 0.8 && math.Abs(v) <= 0.8 }},
	{"triangle", 230, func(u, v float64) bool { return v <= 0.7 && math.Abs(u) <= (v+0.9)*0.56 }},
	{"cross", 55, func(u, v float64) bool {
		return (math.Abs(u) < 0.3 && math.Abs(v) < 0.95) || (math.Abs(v) < 0.3 && math.Abs(u) < 0.95)
	}},
	{"ring", 300, func(u, v float64) bool { r := u*u + v*v; return r <= 1 && r >= 0.35 }},
	{"diamond", 180, func(u, v float64) bool { return math.Abs(u)+math.Abs(v) <= 1 }},
	{"bar", 30, func(u, v float64) bool { return math.Abs(u) <= 0.95 && math.Abs(v) <= 0.28 }},
	{"hourglass", 270, func(u, v float64) bool { return math.Abs(u) <= math.Abs(v) && math.Abs(v) <= 0.9 }},
}

// ClassNames returns the names of the first n classes.
func ClassNames(n int) []string {
	names := make([]string, 0, n)
	for _, s := range Shapes[:min(n, len(Shapes))] {
		names = append(names, s.name)
	}
	return names
}

// Validate checks the options, naming the option to fix (fault.Option:
// the command layer names its flag).
func (o Options) Validate() error {
	switch {
	case o.Classes < 2 || o.Classes > len(Shapes):
		return fault.New(fault.BadValue, "%s %d: choose 2 to %d", fault.Option("classes"), o.Classes, len(Shapes))
	case o.PerClass < 1:
		return fault.New(fault.BadValue, "%s %d: choose at least 1", fault.Option("per-class"), o.PerClass)
	case o.Width < 32 || o.Height < 32 || o.Width > 4096 || o.Height > 4096:
		return fault.New(fault.BadValue, "%s %dx%d: choose sides from 32 to 4096", fault.Option("size"), o.Width, o.Height)
	case o.Format != "jpeg" && o.Format != "png" && o.Format != "mixed":
		return fault.New(fault.BadValue, "%s %q: choose jpeg, png or mixed", fault.Option("format"), o.Format)
	}
	return nil
}

// Generate writes PerClass images for each of Classes classes into
// dir/CLASS/CLASS_NNNN[_qQ].{jpg,png}. Image i of a class depends only on
// the seed, the class and i, so a larger PerClass adds images and keeps the
// others byte for byte.
func Generate(dir string, o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	for c, s := range Shapes[:o.Classes] {
		if err := os.MkdirAll(filepath.Join(dir, s.name), 0o755); err != nil {
			return err
		}
		for i := range o.PerClass {
			name, data, err := Image(o, c, i)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, s.name, name), data, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// Image returns the file name and encoded bytes of image i of class c.
func Image(o Options, c, i int) (string, []byte, error) {
	rng := rand.New(rand.NewPCG(o.Seed, uint64(c)<<32|uint64(i)))
	img, quadrant := draw(rng, Shapes[c], o)
	format, ext := imageio.JPEG, "jpg"
	if o.Format == "png" || (o.Format == "mixed" && i%4 == 3) {
		format, ext = imageio.PNG, "png"
	}
	data, err := imageio.Encode(img, format, 90)
	if err != nil {
		return "", nil, err
	}
	name := fmt.Sprintf("%s_%04d.%s", Shapes[c].name, i, ext)
	if o.Quadrant {
		name = fmt.Sprintf("%s_%04d_q%d.%s", Shapes[c].name, i, quadrant, ext)
	}
	return name, data, nil
}

var quadrantName = regexp.MustCompile(`_q([0-3])\.(jpg|png)$`)

// QuadrantOf returns the quadrant holding the evidence of a file made with
// Options.Quadrant: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right.
func QuadrantOf(path string) (int, bool) {
	m := quadrantName.FindStringSubmatch(path)
	if m == nil {
		return 0, false
	}
	q, _ := strconv.Atoi(m[1])
	return q, true
}

// draw paints one image: noisy tinted background, then the shape.
func draw(rng *rand.Rand, s shape, o Options) (*image.RGBA, int) {
	w, h := o.Width, o.Height
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	bg := hsv(rng.Float64()*360, 0.1+0.25*rng.Float64(), 0.35+0.4*rng.Float64())
	for i := 0; i < len(img.Pix); i += 4 {
		n := rng.IntN(61) - 30
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = clamp(int(bg.R)+n), clamp(int(bg.G)+n), clamp(int(bg.B)+n), 255
	}
	// The area the shape may occupy: the whole image, or one quadrant.
	x0, y0, aw, ah, quadrant := 0.0, 0.0, float64(w), float64(h), -1
	if o.Quadrant {
		quadrant = rng.IntN(4)
		aw, ah = aw/2, ah/2
		x0, y0 = float64(quadrant%2)*aw, float64(quadrant/2)*ah
	}
	side := math.Min(aw, ah)
	r := side * (0.15 + 0.2*rng.Float64()) // half the side of the shape's unit square
	if o.Quadrant {
		// The shape fills most of its quadrant: a small one near the
		// quadrant line would put its evidence in two quadrants' worth of
		// a saliency map's coarse cells.
		r = side * (0.3 + 0.08*rng.Float64())
	}
	// Every outline stays within 1.3r of its centre at any angle (the
	// hourglass's corners reach 0.9·√2), so a 1.3r margin keeps it whole.
	m := 1.3 * r
	cx := x0 + m + rng.Float64()*(aw-2*m)
	cy := y0 + m + rng.Float64()*(ah-2*m)
	angle := rng.Float64() * 2 * math.Pi
	sin, cos := math.Sincos(angle)
	fg := hsv(s.hue+rng.Float64()*30-15, 0.65+0.3*rng.Float64(), 0.7+0.3*rng.Float64())
	for y := int(cy - r*1.5); y <= int(cy+r*1.5); y++ {
		for x := int(cx - r*1.5); x <= int(cx+r*1.5); x++ {
			if x < 0 || y < 0 || x >= w || y >= h {
				continue
			}
			dx, dy := (float64(x)+0.5-cx)/r, (float64(y)+0.5-cy)/r
			u, v := dx*cos+dy*sin, -dx*sin+dy*cos
			if math.Abs(u) > 1 || math.Abs(v) > 1 || !s.inside(u, v) {
				continue
			}
			n := rng.IntN(21) - 10
			p := img.PixOffset(x, y)
			img.Pix[p], img.Pix[p+1], img.Pix[p+2] = clamp(int(fg.R)+n), clamp(int(fg.G)+n), clamp(int(fg.B)+n)
		}
	}
	return img, quadrant
}

func clamp(v int) uint8 { return uint8(min(255, max(0, v))) }

// hsv converts hue (degrees), saturation and value (0–1) to RGB.
func hsv(hue, s, v float64) color.RGBA {
	hue = math.Mod(hue+360, 360) / 60
	c := v * s
	x := c * (1 - math.Abs(math.Mod(hue, 2)-1))
	var r, g, b float64
	switch int(hue) {
	case 0:
		r, g, b = c, x, 0
	case 1:
		r, g, b = x, c, 0
	case 2:
		r, g, b = 0, c, x
	case 3:
		r, g, b = 0, x, c
	case 4:
		r, g, b = x, 0, c
	default:
		r, g, b = c, 0, x
	}
	m := v - c
	return color.RGBA{uint8((r + m) * 255), uint8((g + m) * 255), uint8((b + m) * 255), 255}
}

// Composite writes perClass size×size images for each class of photos
// (class name → photo files) into dir/CLASS/CLASS_NNNN_qQ.png: a seeded
// crop (70–100% of each side) of one of the class's photos, flipped
// left-right half the time, fitted (aspect kept) into a square of 85–100%
// of a quadrant's side in quadrant Q of a neutral grey canvas. The object
// is the only evidence in the image and QuadrantOf names where it is, so
// Grad-CAM on a model of real weights can be checked against real photos.
// Image i of a class depends only on the photos, the seed, the class's
// position in the sorted names and i.
func Composite(dir string, photos map[string][]string, perClass, size int, seed uint64) error {
	if size < 32 || perClass < 1 {
		return fmt.Errorf("composite: size %d and perClass %d: want at least 32 and 1", size, perClass)
	}
	classes := make([]string, 0, len(photos))
	for c := range photos {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for ci, c := range classes {
		if len(photos[c]) == 0 {
			return fmt.Errorf("composite: class %s has no photos", c)
		}
		var srcs []*image.RGBA
		for _, p := range photos[c] {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			img, _, err := imageio.Decode(data, imageio.Limits{})
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			srcs = append(srcs, img)
		}
		if err := os.MkdirAll(filepath.Join(dir, c), 0o755); err != nil {
			return err
		}
		for i := range perClass {
			rng := rand.New(rand.NewPCG(seed, uint64(ci)<<32|uint64(i)))
			img, q := compose(rng, srcs[rng.IntN(len(srcs))], size)
			data, err := imageio.Encode(img, imageio.PNG, 0)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, c, fmt.Sprintf("%s_%04d_q%d.png", c, i, q)), data, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// compose lays a seeded crop of photo into a random quadrant of a grey
// size×size canvas and returns the image and the quadrant.
func compose(rng *rand.Rand, photo *image.RGBA, size int) (*image.RGBA, int) {
	canvas := image.NewRGBA(image.Rect(0, 0, size, size))
	for i := 0; i < len(canvas.Pix); i += 4 {
		v := clamp(imageio.PadGrey + rng.IntN(9) - 4)
		canvas.Pix[i], canvas.Pix[i+1], canvas.Pix[i+2], canvas.Pix[i+3] = v, v, v, 255
	}
	b := photo.Rect
	cw, ch := b.Dx()*(70+rng.IntN(31))/100, b.Dy()*(70+rng.IntN(31))/100
	x0, y0 := b.Min.X+rng.IntN(b.Dx()-cw+1), b.Min.Y+rng.IntN(b.Dy()-ch+1)
	crop := photo.SubImage(image.Rect(x0, y0, x0+cw, y0+ch)).(*image.RGBA)
	half := size / 2
	side := half * (85 + rng.IntN(16)) / 100
	tile := imageio.Resize(crop, side, imageio.Pad)
	if rng.IntN(2) == 1 {
		flipped := image.NewRGBA(tile.Rect)
		for y := range side {
			for x := range side {
				copy(flipped.Pix[flipped.PixOffset(x, y):][:4], tile.Pix[tile.PixOffset(side-1-x, y):][:4])
			}
		}
		tile = flipped
	}
	q := rng.IntN(4)
	ox, oy := (q%2)*half+rng.IntN(half-side+1), (q/2)*half+rng.IntN(half-side+1)
	for y := range side {
		copy(canvas.Pix[canvas.PixOffset(ox, oy+y):][:4*side], tile.Pix[tile.PixOffset(0, y):][:4*side])
	}
	return canvas, q
}
