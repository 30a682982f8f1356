package report

import (
	"fmt"
	"image"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
)

func TestParseHistory(t *testing.T) {
	csv := "epoch,phase,loss,accuracy,val_loss,val_accuracy,learning_rate,note\n" +
		"1,train,1.5,0.5,1.6,0.45,0.001,warmup\n" +
		"2,train,1.0,0.7,,0.6,0.001,\n" +
		"1,finetune,0.8,0.8,0.9,0.75,1e-05,x\n"
	h, err := parseHistory(strings.NewReader(csv), "history.csv")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}; !reflect.DeepEqual(h.Metrics, want) {
		t.Errorf("metrics %q, want %q (the text column left out)", h.Metrics, want)
	}
	if want := []float64{1, 2, 3}; !reflect.DeepEqual(h.Epochs, want) {
		t.Errorf("epochs %v, want a running count %v when epochs restart per phase", h.Epochs, want)
	}
	if !math.IsNaN(h.Values["val_loss"][1]) {
		t.Errorf("empty cell read as %v, want a gap (NaN)", h.Values["val_loss"][1])
	}
	var titles []string
	for _, p := range h.panels() {
		titles = append(titles, fmt.Sprint(p.title, p.series))
	}
	want := []string{"loss[loss val_loss]", "accuracy[accuracy val_accuracy]", "learning_rate[learning_rate]"}
	if !reflect.DeepEqual(titles, want) {
		t.Errorf("panels %q, want %q", titles, want)
	}
	if !reflect.DeepEqual(h.Phases, []string{"train", "train", "finetune"}) {
		t.Errorf("phases %q", h.Phases)
	}
}

func TestParseHistoryErrors(t *testing.T) {
	for _, tt := range []struct{ csv, want string }{
		{"epoch,loss\n", "no epochs"},
		{"epoch,loss\n1,0.5\n2\n", "history.csv line 3"},
	} {
		_, err := parseHistory(strings.NewReader(tt.csv), "history.csv")
		if err == nil || !strings.Contains(err.Error(), tt.want) || cli.KindOf(err) != cli.KindData {
			t.Errorf("%q: error %v, want a data error containing %q", tt.csv, err, tt.want)
		}
	}
	if _, err := ReadHistory("/nonexistent/history.csv"); cli.KindOf(err) != cli.KindData {
		t.Errorf("missing history: %v", err)
	}
}

func TestValueScale(t *testing.T) {
	s := valueScale([]float64{1e-5, 1e-3, math.NaN()}, 100, 0)
	if !s.log || s.label(s.ticks[0]) != "1e-5" || s.label(s.ticks[len(s.ticks)-1]) != "1e-3" {
		t.Errorf("learning-rate axis: log %v ticks %v", s.log, s.ticks)
	}
	s = valueScale([]float64{-0.04, 0.93}, 100, 0)
	for _, tk := range s.ticks {
		if l := s.label(tk); strings.HasPrefix(l, "-0.0") && strings.Trim(l, "-0.") == "" {
			t.Errorf("tick label %q", l)
		}
	}
	if s.log || len(s.ticks) < 4 || len(s.ticks) > 8 {
		t.Errorf("accuracy axis: %d ticks %v", len(s.ticks), s.ticks)
	}
	if got := niceStep(0.17); got != 0.2 {
		t.Errorf("niceStep(0.17) = %v", got)
	}
}

func TestRenderCurves(t *testing.T) {
	var b strings.Builder
	b.WriteString("epoch,phase,loss,accuracy,val_loss,val_accuracy,learning_rate,top_5_accuracy\n")
	for e := 1; e <= 25; e++ {
		phase, lr := "train", 1e-3
		if e > 15 {
			phase, lr = "finetune", 1e-5*float64(26-e)
		}
		x := float64(e)
		fmt.Fprintf(&b, "%d,%s,%g,%g,%g,%g,%g,%g\n", e, phase, 2/x+0.1, 1-0.9/x, 2.2/x+0.2, 0.95-0.9/x, lr, 1-0.5/x)
	}
	h, err := parseHistory(strings.NewReader(b.String()), "history.csv")
	if err != nil {
		t.Fatal(err)
	}
	img := RenderCurves(h)
	keepPNG(t, "curves.png", img)
	if got, want := img.Bounds().Size(), image.Pt(2*panelW+36, 2*panelH); got.X != want.X || got.Y < want.Y {
		t.Errorf("size %v, want 2 panels wide and 2 high (%v)", got, want)
	}
	// Both series colours are drawn in quantity.
	counts := map[any]int{}
	for y := 0; y < img.Rect.Dy(); y++ {
		for x := 0; x < img.Rect.Dx(); x++ {
			counts[img.RGBAAt(x, y)]++
		}
	}
	if counts[trainInk] < 500 || counts[valInk] < 300 {
		t.Errorf("train pixels %d, validation pixels %d: curves missing", counts[trainInk], counts[valInk])
	}
}

// TestRenderCurvesEdgeCases: one epoch, a lone validation metric, a
// constant series and gaps must draw, not panic or divide by zero.
func TestRenderCurvesEdgeCases(t *testing.T) {
	for _, csv := range []string{
		"epoch,loss\n1,0.5\n",
		"epoch,val_accuracy\n1,0.5\n2,0.5\n3,0.5\n",
		"loss,val_loss\n,\n0.4,\n0.3,0.35\n",
	} {
		h, err := parseHistory(strings.NewReader(csv), "history.csv")
		if err != nil {
			t.Fatal(err)
		}
		img := RenderCurves(h)
		drawn := 0
		for y := 0; y < img.Rect.Dy(); y++ {
			for x := 0; x < img.Rect.Dx(); x++ {
				if c := img.RGBAAt(x, y); c == trainInk || c == valInk {
					drawn++
				}
			}
		}
		if drawn < 20 {
			t.Errorf("%q: %d pixels of the series drawn", csv, drawn)
		}
	}
}
