package dataset

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/xcept/xcept/internal/demodata"
)

var (
	benchOnce sync.Once
	benchDir  string
)

// benchData is 200 640×480 demo JPEGs in two classes, made once per run.
func benchData(b *testing.B) string {
	benchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "xcept-bench-")
		if err != nil {
			b.Fatal(err)
		}
		gen := demodata.Defaults()
		gen.Classes, gen.PerClass, gen.Width, gen.Height, gen.Format = 2, 100, 640, 480, "jpeg"
		if err := demodata.Generate(dir, gen); err != nil {
			b.Fatal(err)
		}
		benchDir = dir
	})
	return benchDir
}

// BenchmarkPrepare measures prepare end to end on 640×480 JPEGs at the
// default settings (299 px, squash, JPEG 95) with every core; it reports
// images per second. For peak RSS on larger sets see bench_prepare.sh.
func BenchmarkPrepare(b *testing.B) {
	data := benchData(b)
	o := testOptions(data, "")
	o.ImageSize, o.Quality, o.Fractions, o.Workers = 299, 95, Fractions{Train: 0.8, Val: 0.1, Test: 0.1}, runtime.NumCPU()
	b.ResetTimer()
	for i := range b.N {
		o.Out = filepath.Join(b.TempDir(), "ds", string(rune('a'+i%26)))
		if _, err := Prepare(context.Background(), o); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(200*b.N)/b.Elapsed().Seconds(), "images/s")
}
