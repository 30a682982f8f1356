package report

import (
	"image"
	"image/color"
	"math"

	xdraw "golang.org/x/image/draw"
)

// heatStops is the colour map of Grad-CAM overlays: dark blue (the model
// did not look here) through cyan, green and yellow to red (it looked
// here), the rainbow-like order people know from saliency maps, with
// darker ends so that both extremes stay distinct from the photo.
var heatStops = []struct {
	at float64
	c  color.RGBA
}{
	{0.00, rgb(0x30123b)},
	{0.15, rgb(0x3265e6)},
	{0.35, rgb(0x1bcfd4)},
	{0.50, rgb(0x62fc6c)},
	{0.65, rgb(0xd2e935)},
	{0.80, rgb(0xfe9b2d)},
	{1.00, rgb(0xd81e14)},
}

// HeatColour maps v in [0, 1] to the overlay colour map.
func HeatColour(v float64) color.RGBA {
	v = clampFloat(v, 0, 1)
	for i := 1; i < len(heatStops); i++ {
		a, b := heatStops[i-1], heatStops[i]
		if v <= b.at {
			t := (v - a.at) / (b.at - a.at)
			mix := func(x, y uint8) uint8 { return uint8(math.Round(float64(x) + t*(float64(y)-float64(x)))) }
			return color.RGBA{mix(a.c.R, b.c.R), mix(a.c.G, b.c.G), mix(a.c.B, b.c.B), 255}
		}
	}
	return heatStops[len(heatStops)-1].c
}

// Overlay opacity: a floor so that cold regions are visibly marked as
// cold, rising with the heat so that hot regions are unmistakable while
// the picture still shows through.
const (
	overlayMinAlpha = 0.25
	overlayMaxAlpha = 0.65
)

// GradCAMOverlay alpha-blends a heatmap as a colour map over img, scaled
// to fit maxSide (0: full size). heat gives the heat at a point of img in
// pixel coordinates (pixel i spans [i, i+1)), and false where the model
// did not see the image (a center-crop's cut sides), which is shown greyed.
func GradCAMOverlay(img *image.RGBA, maxSide int, heat func(x, y float64) (float64, bool)) *image.RGBA {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	scale := 1.0
	if maxSide > 0 && max(w, h) > maxSide {
		scale = float64(maxSide) / float64(max(w, h))
	}
	ow, oh := max(1, int(float64(w)*scale+0.5)), max(1, int(float64(h)*scale+0.5))
	out := image.NewRGBA(image.Rect(0, 0, ow, oh))
	if ow == w && oh == h {
		xdraw.Copy(out, image.Point{}, img, img.Rect, xdraw.Src, nil)
	} else {
		xdraw.CatmullRom.Scale(out, out.Rect, img, img.Rect, xdraw.Src, nil)
	}
	sx, sy := float64(w)/float64(ow), float64(h)/float64(oh)
	for y := range oh {
		for x := range ow {
			i := out.PixOffset(x, y)
			p := out.Pix[i : i+3 : i+3]
			v, seen := heat((float64(x)+0.5)*sx, (float64(y)+0.5)*sy)
			if !seen {
				grey := (int(p[0])*299 + int(p[1])*587 + int(p[2])*114) / 1000
				for c := range p {
					p[c] = uint8((int(p[c]) + 2*grey) / 3 * 3 / 4)
				}
				continue
			}
			c := HeatColour(v)
			a := overlayMinAlpha + (overlayMaxAlpha-overlayMinAlpha)*clampFloat(v, 0, 1)
			p[0] = uint8(math.Round(float64(p[0])*(1-a) + float64(c.R)*a))
			p[1] = uint8(math.Round(float64(p[1])*(1-a) + float64(c.G)*a))
			p[2] = uint8(math.Round(float64(p[2])*(1-a) + float64(c.B)*a))
		}
	}
	return out
}
