package loader

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/xcept/xcept/internal/augment"
	"github.com/xcept/xcept/internal/demodata"
	"github.com/xcept/xcept/internal/imageio"
)

// The benchmark split: 299 px (the model's default input) JPEGs at
// prepare's default quality 95, made from demo images so that they compress
// like photos with shapes, not like noise.
const (
	benchSize    = 299
	benchRecords = 192
)

var bench struct {
	once sync.Once
	path string
	err  error
}

func benchShard(b *testing.B) string {
	b.Helper()
	bench.once.Do(func() {
		dir, err := os.MkdirTemp("", "xcept-loader-bench-")
		if err != nil {
			bench.err = err
			return
		}
		gen := demodata.Defaults()
		gen.Classes, gen.Width, gen.Height, gen.Format = 4, benchSize, benchSize, "jpeg"
		recs := make([]rec, benchRecords)
		for i := range recs {
			c := i % gen.Classes
			name, data, err := demodata.Image(gen, c, i/gen.Classes)
			if err != nil {
				bench.err = err
				return
			}
			img, _, err := imageio.Decode(data, imageio.Limits{})
			if err != nil {
				bench.err = err
				return
			}
			if data, err = imageio.Encode(img, imageio.JPEG, 95); err != nil {
				bench.err = err
				return
			}
			recs[i] = rec{encoded: data, label: int64(c), name: name}
		}
		bench.path = filepath.Join(dir, "train-00000-of-00001.tfrecord")
		writeShard(b, bench.path, recs)
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.path
}

// BenchmarkLoader reports images/s through the whole loader (read, CRC,
// parse, decode, augment, batch) for batch 32, shuffled, with recycling, as
// training uses it; one iteration is one epoch.
func BenchmarkLoader(b *testing.B) {
	path := benchShard(b)
	recipe := augment.Recipe()
	for _, aug := range []*augment.Params{nil, &recipe} {
		for _, workers := range []int{1, runtime.NumCPU()} {
			name := fmt.Sprintf("augment=none/workers=%d", workers)
			if aug != nil {
				name = fmt.Sprintf("augment=recipe/workers=%d", workers)
			}
			b.Run(name, func(b *testing.B) {
				o := Options{Shards: []string{path}, ImageSize: benchSize, BatchSize: 32, Shuffle: true, Augment: aug, Workers: workers}
				images, cpu0 := 0, cpuTime()
				for epoch := 0; b.Loop(); epoch++ {
					o.Epoch = epoch
					images += epochImages(b, o)
				}
				b.ReportMetric(float64(images)/b.Elapsed().Seconds(), "images/s")
				// CPU time per image does not depend on what else the machine
				// runs, which images/s on a shared 2-core box does.
				b.ReportMetric((cpuTime()-cpu0).Seconds()*1e3/float64(images), "cpu-ms/image")
			})
		}
	}
}

func epochImages(b *testing.B, o Options) int {
	l, err := Open(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	n := 0
	for {
		batch, err := l.Next()
		if err == io.EOF {
			return n
		}
		if err != nil {
			b.Fatal(err)
		}
		n += batch.N()
		l.Recycle(batch)
	}
}

// BenchmarkIndex measures the per-Open header scan (one 12-byte read per
// record) that lets records be read in any order; one iteration indexes a
// 20000-record shard.
func BenchmarkIndex(b *testing.B) {
	const n = 20000
	path := filepath.Join(b.TempDir(), "index.tfrecord")
	recs := make([]rec, n)
	for i := range recs {
		recs[i] = rec{raw: make([]byte, 1000+i%500)}
	}
	writeShard(b, path, recs)
	for b.Loop() {
		if got, err := Count([]string{path}); err != nil || got != n {
			b.Fatalf("Count = %d, %v", got, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}
