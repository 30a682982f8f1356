package loader

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/demodata"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/testenv"
	"github.com/xcept/xcept/internal/testenv/demoset"
	"github.com/xcept/xcept/internal/tfexample"
	"github.com/xcept/xcept/internal/tfrecord"
)

// The prepared dataset most tests read: 3 demo classes, 64 px JPEGs, split
// 70/30 into shards of about 16 KB so that the train split has several.
const (
	demoSize    = 64
	demoClasses = 3
)

type preparedDemo struct {
	dir string
	m   *dataset.Manifest
}

var demo testenv.Once[preparedDemo]

// prepared returns the shared prepared dataset, made once per test binary
// with the same code path as `xcept prepare` (the model is not needed).
func prepared(t testing.TB) (string, *dataset.Manifest) {
	t.Helper()
	d := demo.Get(t, "preparing the demo dataset", func() (preparedDemo, error) {
		root, err := os.MkdirTemp("", "xcept-loader-test-")
		if err != nil {
			return preparedDemo{}, err
		}
		gen := demodata.Defaults()
		gen.Classes, gen.PerClass, gen.Width, gen.Height = demoClasses, 20, 80, 72
		prep := demoset.PrepareOptions(demoSize)
		prep.Fractions, prep.Seed, prep.ShardBytes = dataset.Fractions{Train: 0.7, Val: 0.3}, 3, 16<<10
		prep.MaxPixels, prep.MaxFileBytes = 1<<24, 1<<24
		p, err := demoset.Make(context.Background(), root, demoset.Options{Images: gen, Prepare: prep})
		return preparedDemo{p.Dataset, p.Manifest}, err
	})
	return d.dir, d.m
}

func TestMain(m *testing.M) {
	code := m.Run()
	if d, ok := demo.Made(); ok {
		os.RemoveAll(filepath.Dir(d.dir))
	}
	if bench.path != "" {
		os.RemoveAll(filepath.Dir(bench.path))
	}
	os.Exit(code)
}

// trainOptions reads the demo train split in record order, unaugmented.
func trainOptions(t testing.TB) Options {
	dir, m := prepared(t)
	return Options{Shards: m.ShardPaths(dir, "train"), ImageSize: demoSize, Classes: demoClasses, BatchSize: 5, Seed: 11, Workers: 2}
}

// stored is one record as written, decoded independently of the loader.
type stored struct {
	label int32
	file  string
	rgb   []uint8
}

// readStored reads every record of shards with tfrecord.Reader and decodes
// its image with imageio, in record order.
func readStored(t testing.TB, shards []string) []stored {
	t.Helper()
	var out []stored
	for _, path := range shards {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		r := tfrecord.NewReader(f)
		for {
			data, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, decodeStored(t, data))
		}
		f.Close()
	}
	return out
}

func decodeStored(t testing.TB, data []byte) stored {
	t.Helper()
	ex, err := tfexample.Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	label, err := ex.Int64(dataset.KeyLabel)
	if err != nil {
		t.Fatal(err)
	}
	name, err := ex.Bytes(dataset.KeyName)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := ex.Bytes(dataset.KeyEncoded)
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := imageio.Decode(enc, imageio.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	rgb := make([]uint8, 0, img.Rect.Dx()*img.Rect.Dy()*3)
	for i := 0; i < len(img.Pix); i += 4 {
		rgb = append(rgb, img.Pix[i:i+3]...)
	}
	return stored{label: int32(label), file: string(name), rgb: rgb}
}

// drain opens a loader and reads every batch, failing the test on any error.
func drain(t testing.TB, o Options) []*Batch {
	t.Helper()
	l, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var out []*Batch
	for {
		b, err := l.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

// examples flattens batches.
func examples(batches []*Batch) []Example {
	var out []Example
	for _, b := range batches {
		for i := range b.N() {
			out = append(out, b.Example(i))
		}
	}
	return out
}

func indices(batches []*Batch) []int {
	var out []int
	for _, b := range batches {
		out = append(out, b.Indices...)
	}
	return out
}

// rec is a record to write directly, for data the prepare step would never
// produce (wrong sizes, bad labels, garbage).
type rec struct {
	encoded []byte
	label   int64
	name    string
	raw     []byte // if set, written as the record instead of a tf.Example
}

func (r rec) bytes() []byte {
	if r.raw != nil {
		return r.raw
	}
	return (&tfexample.Example{Features: map[string]tfexample.Feature{
		dataset.KeyEncoded: tfexample.BytesFeature(r.encoded),
		dataset.KeyLabel:   tfexample.Int64Feature(r.label),
		dataset.KeyName:    tfexample.BytesFeature([]byte(r.name)),
	}}).Marshal()
}

func writeShard(t testing.TB, path string, recs []rec) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	w := tfrecord.NewWriter(bw)
	for _, r := range recs {
		if err := w.Write(r.bytes()); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// noiseJPEG is a size×size JPEG of pseudo-random pixels, distinct per seed.
func noiseJPEG(t testing.TB, size int, seed uint32) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	x := seed*2654435761 + 1
	for i := range img.Pix {
		x = x*1664525 + 1013904223
		img.Pix[i] = uint8(x >> 24)
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	data, err := imageio.Encode(img, imageio.JPEG, 90)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// noiseRecords are n records cycling through k distinct size px images,
// labelled i % classes.
func noiseRecords(t testing.TB, n, k, size, classes int) []rec {
	t.Helper()
	images := make([][]byte, k)
	for i := range images {
		images[i] = noiseJPEG(t, size, uint32(i))
	}
	recs := make([]rec, n)
	for i := range recs {
		recs[i] = rec{encoded: images[i%k], label: int64(i % classes), name: fmt.Sprintf("c%d/%05d.jpg", i%classes, i)}
	}
	return recs
}
