package report

import (
	"flag"
	"fmt"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/metrics"
)

// -png DIR keeps the rendered images to look at (make them with
// go test ./internal/report -run Render -png /tmp/pngs).
var pngDir = flag.String("png", "", "write rendered test images to this folder")

// syntheticConfusion is a plausible classifier's matrix over k classes
// named like real datasets (some long, some sharing prefixes).
func syntheticConfusion(k int, seed uint64) *metrics.Confusion {
	rng := rand.New(rand.NewPCG(seed, 7))
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
	var rows []metrics.Row
	for t := range k {
		n := 5 + rng.IntN(60)
		for range n {
			p := t
			if rng.Float64() > 0.75 {
				p = rng.IntN(k)
			}
			rows = append(rows, metrics.Row{True: t, Pred: p})
		}
	}
	return metrics.NewConfusion(names, rows)
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

func TestRenderConfusion(t *testing.T) {
	for _, k := range []int{2, 10, 100} {
		img := RenderConfusion(syntheticConfusion(k, uint64(k)))
		keepPNG(t, fmt.Sprintf("confusion-%d.png", k), img)
		t.Logf("%d classes: %v", k, img.Bounds().Size())
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
}
