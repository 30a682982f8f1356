package report

import (
	"image"
	"image/color"
	"testing"
)

func TestHeatColourEndsAndOrder(t *testing.T) {
	if HeatColour(-1) != HeatColour(0) || HeatColour(2) != HeatColour(1) {
		t.Error("values outside [0, 1] are not clamped")
	}
	cold, hot := HeatColour(0), HeatColour(1)
	if !(cold.B > cold.R && hot.R > hot.B) {
		t.Errorf("cold %v should be blue, hot %v red", cold, hot)
	}
	// Every stop is reached exactly, and the map is continuous between them.
	for i, s := range heatStops {
		if HeatColour(s.at) != s.c {
			t.Errorf("stop %d at %g: %v, want %v", i, s.at, HeatColour(s.at), s.c)
		}
	}
	prev := HeatColour(0)
	for v := 0.001; v <= 1; v += 0.001 {
		c := HeatColour(v)
		if d := absDiff(c.R, prev.R) + absDiff(c.G, prev.G) + absDiff(c.B, prev.B); d > 6 {
			t.Fatalf("jump of %d at %.3f: %v after %v", d, v, c, prev)
		}
		prev = c
	}
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

func TestGradCAMOverlay(t *testing.T) {
	const w, h = 300, 200
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 200
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	// Hot on the left third, cold in the middle, unseen on the right third.
	heat := func(x, y float64) (float64, bool) {
		switch {
		case x < w/3:
			return 1, true
		case x < 2*w/3:
			return 0, true
		}
		return 0, false
	}
	tests := []struct {
		maxSide      int
		wantW, wantH int
	}{
		{0, 300, 200},
		{150, 150, 100},
		{1000, 300, 200},
	}
	for _, tt := range tests {
		out := GradCAMOverlay(img, tt.maxSide, heat)
		if out.Rect.Dx() != tt.wantW || out.Rect.Dy() != tt.wantH {
			t.Fatalf("maxSide %d: %v, want %dx%d", tt.maxSide, out.Rect, tt.wantW, tt.wantH)
		}
		third := tt.wantW / 3
		hot, cold, unseen := out.RGBAAt(third/2, tt.wantH/2), out.RGBAAt(third+third/2, tt.wantH/2), out.RGBAAt(2*third+third/2, tt.wantH/2)
		if !(hot.R > hot.B+60) {
			t.Errorf("maxSide %d: hot pixel %v is not red", tt.maxSide, hot)
		}
		if !(cold.B > cold.G && cold.R < 200 && cold.R > 120) {
			t.Errorf("maxSide %d: cold pixel %v is not a light dark-blue tint", tt.maxSide, cold)
		}
		if unseen.R != unseen.G || unseen.G != unseen.B || unseen.R >= 200 {
			t.Errorf("maxSide %d: unseen pixel %v is not a darker grey", tt.maxSide, unseen)
		}
		if hot.A != 255 || cold.A != 255 {
			t.Errorf("overlay is not opaque")
		}
	}
	// The picture still shows through the coldest tint: a black and a
	// white pixel stay far apart.
	bw := image.NewRGBA(image.Rect(0, 0, 2, 1))
	bw.Set(0, 0, color.Black)
	bw.Set(1, 0, color.White)
	out := GradCAMOverlay(bw, 0, func(float64, float64) (float64, bool) { return 0, true })
	if d := int(out.RGBAAt(1, 0).G) - int(out.RGBAAt(0, 0).G); d < 150 {
		t.Errorf("cold overlay hides the picture: black %v, white %v", out.RGBAAt(0, 0), out.RGBAAt(1, 0))
	}
}
