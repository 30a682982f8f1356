package report

import (
	"flag"
	"fmt"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/xcept/xcept/internal/metrics"
)

// -png DIR keeps the rendered images and reports to look at:
// go test ./internal/report -png /tmp/xcept-report
var pngDir = flag.String("png", "", "write rendered test images and reports to this folder")

// syntheticNames are named like real datasets: short, WordNet ids sharing a
// prefix, names with spaces, and long names that differ only in the middle.
func syntheticNames(k int) []string {
	names := make([]string, k)
	for i := range names {
		switch i % 4 {
		case 0:
			names[i] = fmt.Sprintf("class_%d", i)
		case 1:
			names[i] = fmt.Sprintf("n0208%04d-golden_retriever_%d", i, i)
		case 2:
			names[i] = fmt.Sprintf("tulip %d", i)
		default:
			names[i] = fmt.Sprintf("Very Long Species Name Number %d (subspecies)", i)
		}
	}
	return names
}

// syntheticRows are a plausible classifier's predictions: 75% right, the
// rest spread at random, with softmax-like probabilities.
func syntheticRows(k int, seed uint64) []metrics.Row {
	rng := rand.New(rand.NewPCG(seed, 7))
	var rows []metrics.Row
	for t := range k {
		for n := range 5 + rng.IntN(60) {
			p := t
			if rng.Float64() > 0.75 {
				p = rng.IntN(k)
			}
			probs := make([]float64, k)
			rest := 1.0
			// Above 1/k the prediction is the most probable class.
			probs[p] = 1/float64(k) + (1-1/float64(k))*(0.05+0.9*rng.Float64())
			rest -= probs[p]
			for c := range probs {
				if c != p {
					probs[c] = rest / float64(k-1)
				}
			}
			rows = append(rows, metrics.Row{File: fmt.Sprintf("img/%d/%03d.png", t, n), True: t, Pred: p, Probs: probs})
		}
	}
	return rows
}

func keepPNG(t *testing.T, name string, img image.Image) {
	t.Helper()
	if *pngDir == "" {
		return
	}
	if err := os.MkdirAll(*pngDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(*pngDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

func TestRenderConfusionScales(t *testing.T) {
	tests := []struct {
		k             int
		annotate      bool
		rotated       bool
		maxW, maxSide int
	}{
		{k: 2, annotate: true, rotated: true, maxW: 900},
		{k: 10, annotate: true, rotated: true, maxW: 1400},
		{k: 100, annotate: false, rotated: true, maxW: 2000},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.k), func(t *testing.T) {
			cm := metrics.NewConfusion(syntheticNames(tt.k), syntheticRows(tt.k, uint64(tt.k)))
			l := layoutFor(tt.k, cm.Classes)
			if l.annotate != tt.annotate || l.rotateCols != tt.rotated {
				t.Errorf("annotate %v rotate %v, want %v %v", l.annotate, l.rotateCols, tt.annotate, tt.rotated)
			}
			if l.label.size < 10 {
				t.Errorf("class names at %.1f px: too small to read", l.label.size)
			}
			seen := map[string]bool{}
			for _, s := range l.short {
				if seen[s] {
					t.Errorf("two classes share the label %q", s)
				}
				seen[s] = true
			}
			img := RenderConfusion(cm)
			keepPNG(t, fmt.Sprintf("confusion-%d.png", tt.k), img)
			if w := img.Bounds().Dx(); w > tt.maxW {
				t.Errorf("%d px wide, want at most %d", w, tt.maxW)
			}
			// The first diagonal cell is the darkest shade when the class is
			// always right, and an empty cell stays near white.
			perfect := metrics.NewConfusion(cm.Classes, []metrics.Row{{True: 0, Pred: 0}})
			img = RenderConfusion(perfect)
			top, left := cellOrigin(t, img)
			if got := img.RGBAAt(left+3, top+3); got != blues[len(blues)-1] {
				t.Errorf("cell (0,0) at 100%% is %v, want %v", got, blues[len(blues)-1])
			}
			c := l.cell
			if got := img.RGBAAt(left+c+3, top+3); got != blues[0] {
				t.Errorf("cell (0,1) at 0%% is %v, want %v", got, blues[0])
			}
		})
	}
}

// cellOrigin finds the matrix's top-left inner pixel: the first pixel of
// the darkest blue, scanning rows from the top.
func cellOrigin(t *testing.T, img *image.RGBA) (top, left int) {
	t.Helper()
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X/2; x++ {
			if img.RGBAAt(x, y) == blues[len(blues)-1] {
				return y, x
			}
		}
	}
	t.Fatal("no fully dark cell found")
	return 0, 0
}

func TestShortLabelsStayDistinct(t *testing.T) {
	st := textStyle{size: 12}
	names := []string{
		"Very Long Species Name Number 3 (subspecies)",
		"Very Long Species Name Number 7 (subspecies)",
		"Very Long Species Name Number 11 (subspecies)",
		"short",
	}
	width := textWidth("nnnnnnnnnnnnnnnnnn", st)
	got := shortLabels(names, width, st)
	seen := map[string]bool{}
	for i, s := range got {
		if textWidth(s, st) > width {
			t.Errorf("%q is %d px, over %d", s, textWidth(s, st), width)
		}
		if seen[s] {
			t.Errorf("label %q used twice: %q", s, got)
		}
		seen[s] = true
		if i == 3 && s != "short" {
			t.Errorf("a name that fits was changed to %q", s)
		}
	}
}

func TestShade(t *testing.T) {
	if shade(0) != blues[0] || shade(1) != blues[len(blues)-1] {
		t.Errorf("shade(0)=%v shade(1)=%v, want the ends of the ramp", shade(0), shade(1))
	}
	// The square-root scale makes one mistake in fifty visibly darker than none.
	if a, b := shade(0), shade(0.02); int(a.R)-int(b.R) < 20 {
		t.Errorf("2%% (%v) is hard to tell from 0%% (%v)", b, a)
	}
}
