// Package report renders what people read about an evaluation: the
// confusion-matrix heatmap and training curves as PNG, an error gallery, and
// one self-contained report.html; Write produces every report file at once.
package report

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
	"golang.org/x/image/vector"
)

// Fonts are parsed once; faces are cached per (weight, size) because
// building one rasterises nothing but costs an allocation-heavy setup.
var (
	regularFont = sync.OnceValue(func() *opentype.Font { return mustParse(goregular.TTF) })
	boldFont    = sync.OnceValue(func() *opentype.Font { return mustParse(gobold.TTF) })
	facesMu     sync.Mutex
	faces       = map[faceKey]font.Face{}
)

type faceKey struct {
	bold bool
	size float64
}

func mustParse(ttf []byte) *opentype.Font {
	f, err := opentype.Parse(ttf)
	if err != nil {
		panic("report: embedded Go font does not parse: " + err.Error())
	}
	return f
}

// face returns the Go font at size pixels (72 dpi makes points pixels).
func face(size float64, bold bool) font.Face {
	size = math.Round(size*2) / 2 // few distinct sizes keep the cache small
	facesMu.Lock()
	defer facesMu.Unlock()
	k := faceKey{bold, size}
	if f, ok := faces[k]; ok {
		return f
	}
	src := regularFont()
	if bold {
		src = boldFont()
	}
	f, err := opentype.NewFace(src, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		panic("report: font face: " + err.Error())
	}
	faces[k] = f
	return f
}

// Text alignment relative to the x given to drawText.
type align int

const (
	alignLeft align = iota
	alignCenter
	alignRight
)

// textStyle is a font size, weight and colour.
type textStyle struct {
	size  float64
	bold  bool
	color color.Color
}

func textWidth(s string, st textStyle) int {
	return font.MeasureString(face(st.size, st.bold), s).Ceil()
}

// textHeight is the ascent plus descent: the box a line of text needs.
func textHeight(st textStyle) int {
	m := face(st.size, st.bold).Metrics()
	return (m.Ascent + m.Descent).Ceil()
}

// drawText writes s with its top edge at y, aligned around x.
func drawText(dst draw.Image, s string, x, y int, a align, st textStyle) {
	f := face(st.size, st.bold)
	switch a {
	case alignCenter:
		x -= textWidth(s, st) / 2
	case alignRight:
		x -= textWidth(s, st)
	}
	d := font.Drawer{Dst: dst, Src: image.NewUniform(st.color), Face: f,
		Dot: fixed.P(x, y+f.Metrics().Ascent.Ceil())}
	d.DrawString(s)
}

// drawTextUp writes s rotated 90° counter-clockwise (reading bottom to top),
// its baseline side toward x+height, its first letter at the bottom (y is the
// bottom end). Used for vertical axis titles and column labels.
func drawTextUp(dst *image.RGBA, s string, x, y int, st textStyle) {
	w, h := textWidth(s, st), textHeight(st)
	if w == 0 {
		return
	}
	tmp := image.NewRGBA(image.Rect(0, 0, w, h))
	drawText(tmp, s, 0, 0, alignLeft, st)
	// Pixel (i, j) of the horizontal text lands at (x+j, y-i).
	for j := 0; j < h; j++ {
		for i := 0; i < w; i++ {
			c := tmp.RGBAAt(i, j)
			if c.A == 0 {
				continue
			}
			blend(dst, x+j, y-i, c)
		}
	}
}

// blend paints a premultiplied colour over dst at (x, y).
func blend(dst *image.RGBA, x, y int, c color.RGBA) {
	if !(image.Point{x, y}.In(dst.Rect)) {
		return
	}
	d := dst.RGBAAt(x, y)
	a := 255 - uint32(c.A)
	dst.SetRGBA(x, y, color.RGBA{
		R: uint8(uint32(c.R) + uint32(d.R)*a/255),
		G: uint8(uint32(c.G) + uint32(d.G)*a/255),
		B: uint8(uint32(c.B) + uint32(d.B)*a/255),
		A: uint8(uint32(c.A) + uint32(d.A)*a/255),
	})
}

// ellipsize shortens s to fit width pixels, cutting the middle so that both
// a shared prefix and the distinctive end stay visible ("n0208…Chihuahua").
func ellipsize(s string, width int, st textStyle) string { return ellipsizeAt(s, width, st, 0.5) }

// ellipsizeAt cuts s to fit width pixels, keeping the share head of the
// kept characters before the "…" and the rest from the end.
func ellipsizeAt(s string, width int, st textStyle, head float64) string {
	if textWidth(s, st) <= width {
		return s
	}
	r := []rune(s)
	for keep := len(r) - 1; keep > 1; keep-- {
		h := int(math.Round(float64(keep) * head))
		t := string(r[:h]) + "…" + string(r[len(r)-(keep-h):])
		if textWidth(t, st) <= width {
			return t
		}
	}
	return string(r[:1]) + "…"
}

// shortLabels ellipsizes every name to width pixels and keeps the results
// distinct: names that would shorten to the same label ("Very Long…species)"
// for species 3 and 7) move their cut together until the part that tells
// them apart shows, and as a last resort get their class index.
func shortLabels(names []string, width int, st textStyle) []string {
	out := make([]string, len(names))
	groups := map[string][]int{}
	for i, n := range names {
		out[i] = ellipsize(n, width, st)
		groups[out[i]] = append(groups[out[i]], i)
	}
	for _, group := range groups {
		if len(group) < 2 {
			continue
		}
		if !recut(out, names, group, width, st) {
			for _, i := range group {
				out[i] = ellipsize(fmt.Sprintf("#%d %s", i, names[i]), width, st)
			}
		}
	}
	return out
}

// recut tries cut positions from the middle outwards, the same for the
// whole group so that its labels line up, until the group's labels differ.
func recut(out, names []string, group []int, width int, st textStyle) bool {
	for _, head := range []float64{0.4, 0.6, 0.3, 0.7, 0.2, 0.8, 0.1, 0.9, 0, 1} {
		seen := map[string]bool{}
		labels := make([]string, len(group))
		for j, i := range group {
			labels[j] = ellipsizeAt(names[i], width, st, head)
			seen[labels[j]] = true
		}
		if len(seen) == len(group) {
			for j, i := range group {
				out[i] = labels[j]
			}
			return true
		}
	}
	return false
}

func fillRect(dst draw.Image, r image.Rectangle, c color.Color) {
	draw.Draw(dst, r, image.NewUniform(c), image.Point{}, draw.Src)
}

// newCanvas is a white image of the given size.
func newCanvas(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fillRect(img, img.Rect, color.White)
	return img
}

// pt is a point in pixel space with sub-pixel precision.
type pt struct{ x, y float64 }

// strokePolyline draws an anti-aliased line of the given width through
// points; NaN points break it. Each segment is a quad and each joint a
// disc, all in one path wound the same way so overlaps do not darken.
func strokePolyline(dst *image.RGBA, pts []pt, width float64, c color.Color) {
	hw := width / 2
	var polys [][]pt
	var prev *pt
	for i := range pts {
		p := pts[i]
		if math.IsNaN(p.x) || math.IsNaN(p.y) {
			prev = nil
			continue
		}
		polys = append(polys, disc(p, hw))
		if prev != nil {
			if q := segment(*prev, p, hw); q != nil {
				polys = append(polys, q)
			}
		}
		prev = &pts[i]
	}
	fillPolygons(dst, polys, c)
}

// segment is the quad covering a line from a to b, hw to each side.
func segment(a, b pt, hw float64) []pt {
	dx, dy := b.x-a.x, b.y-a.y
	n := math.Hypot(dx, dy)
	if n == 0 {
		return nil
	}
	nx, ny := -dy/n*hw, dx/n*hw
	return []pt{{a.x + nx, a.y + ny}, {a.x - nx, a.y - ny}, {b.x - nx, b.y - ny}, {b.x + nx, b.y + ny}}
}

// disc is a circle as a polygon, wound like segment's quads.
func disc(c pt, r float64) []pt {
	const steps = 16
	out := make([]pt, steps)
	for i := range out {
		a := -2 * math.Pi * float64(i) / steps
		out[i] = pt{c.x + r*math.Cos(a), c.y + r*math.Sin(a)}
	}
	return out
}

// fillDisc draws one anti-aliased dot.
func fillDisc(dst *image.RGBA, c pt, r float64, col color.Color) {
	fillPolygons(dst, [][]pt{disc(c, r)}, col)
}

// fillPolygons rasterises the polygons over only their bounding box: a
// rasteriser as big as the image would cost the whole image per dot.
func fillPolygons(dst *image.RGBA, polys [][]pt, c color.Color) {
	if len(polys) == 0 {
		return
	}
	x0, y0, x1, y1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, poly := range polys {
		for _, p := range poly {
			x0, y0 = math.Min(x0, p.x), math.Min(y0, p.y)
			x1, y1 = math.Max(x1, p.x), math.Max(y1, p.y)
		}
	}
	box := image.Rect(int(math.Floor(x0)), int(math.Floor(y0)), int(math.Ceil(x1))+1, int(math.Ceil(y1))+1).Intersect(dst.Bounds())
	if box.Empty() {
		return
	}
	z := vector.NewRasterizer(box.Dx(), box.Dy())
	ox, oy := float64(box.Min.X), float64(box.Min.Y)
	for _, poly := range polys {
		z.MoveTo(float32(poly[0].x-ox), float32(poly[0].y-oy))
		for _, p := range poly[1:] {
			z.LineTo(float32(p.x-ox), float32(p.y-oy))
		}
		z.ClosePath()
	}
	z.Draw(dst, box, image.NewUniform(c), image.Point{})
}

// hline and vline draw one-pixel lines; dash > 0 makes them dashed.
func hline(dst *image.RGBA, x0, x1, y int, c color.RGBA, dash int) {
	for x := x0; x <= x1; x++ {
		if dash == 0 || (x-x0)/dash%2 == 0 {
			blend(dst, x, y, c)
		}
	}
}

func vline(dst *image.RGBA, x, y0, y1 int, c color.RGBA, dash int) {
	for y := y0; y <= y1; y++ {
		if dash == 0 || (y-y0)/dash%2 == 0 {
			blend(dst, x, y, c)
		}
	}
}

// rgb builds an opaque colour from 0xRRGGBB.
func rgb(hex uint32) color.RGBA {
	return color.RGBA{uint8(hex >> 16), uint8(hex >> 8), uint8(hex), 255}
}
