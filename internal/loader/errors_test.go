package loader

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/augment"
	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/tfexample"
	"github.com/xcept/xcept/internal/tfrecord"
)

// recordOffsets returns the byte offset of every record of a shard.
func recordOffsets(t *testing.T, path string) []int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := tfrecord.NewReader(f)
	var offs []int64
	for {
		off := r.Offset()
		if _, err := r.Next(); err == io.EOF {
			return offs
		} else if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
}

// flipByte corrupts byte at of record rec of path.
func flipByte(t *testing.T, path string, rec int, at int64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[recordOffsets(t, path)[rec]+at] ^= 0x40
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDataErrors: every kind of bad record is a data error naming the shard
// file and the record's number in it, reported by Open for damaged framing
// and by Next, after the good batches before it, for a bad record.
func TestDataErrors(t *testing.T) {
	const size = 24
	good := func(t *testing.T) []rec { return noiseRecords(t, 6, 3, size, 2) }
	exampleWithout := func(t *testing.T, key string) []byte {
		r := good(t)[0]
		ex, err := tfexample.Unmarshal(r.bytes())
		if err != nil {
			t.Fatal(err)
		}
		delete(ex.Features, key)
		return ex.Marshal()
	}
	tests := []struct {
		name     string
		edit     func(t *testing.T, recs []rec) []rec // the second shard's records
		damage   func(t *testing.T, path string)      // applied to the written second shard
		atOpen   bool
		record   string
		contains string
	}{
		{name: "data CRC", damage: func(t *testing.T, p string) { flipByte(t, p, 3, headerSize+5) },
			record: "record 3 ", contains: "data CRC mismatch"},
		{name: "length CRC", damage: func(t *testing.T, p string) { flipByte(t, p, 4, 1) },
			atOpen: true, record: "record 4 ", contains: "length CRC mismatch"},
		{name: "truncated", damage: func(t *testing.T, p string) {
			st, _ := os.Stat(p)
			if err := os.Truncate(p, st.Size()-10); err != nil {
				t.Fatal(err)
			}
		}, atOpen: true, record: "record 5 ", contains: "truncated"},
		{name: "trailing bytes", damage: func(t *testing.T, p string) {
			f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte{1, 2, 3})
			f.Close()
		}, atOpen: true, record: "record 6 ", contains: "truncated header"},
		{name: "label too big", edit: func(t *testing.T, r []rec) []rec { r[2].label = 2; return r },
			record: "record 2 ", contains: "label 2 is outside [0, 2)"},
		{name: "negative label", edit: func(t *testing.T, r []rec) []rec { r[3].label = -1; return r },
			record: "record 3 ", contains: "label -1 is outside"},
		{name: "wrong size", edit: func(t *testing.T, r []rec) []rec { r[1].encoded = noiseJPEG(t, size+1, 9); return r },
			record: "record 1 ", contains: "image is 25×25, the model takes 24×24"},
		{name: "not an image", edit: func(t *testing.T, r []rec) []rec { r[0].encoded = []byte("hello"); return r },
			record: "record 0 ", contains: "not-an-image"},
		{name: "truncated image", edit: func(t *testing.T, r []rec) []rec { r[4].encoded = r[4].encoded[:len(r[4].encoded)/2]; return r },
			record: "record 4 ", contains: "truncated"},
		{name: "not an example", edit: func(t *testing.T, r []rec) []rec { r[5].raw = []byte{0x0a, 0xff}; return r },
			record: "record 5 ", contains: "tf.Example"},
		{name: "no label", edit: func(t *testing.T, r []rec) []rec { r[2].raw = exampleWithout(t, dataset.KeyLabel); return r },
			record: "record 2 ", contains: `no feature "image/class/label"`},
		{name: "no image", edit: func(t *testing.T, r []rec) []rec { r[1].raw = exampleWithout(t, dataset.KeyEncoded); return r },
			record: "record 1 ", contains: `no feature "image/encoded"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			first, second := filepath.Join(dir, "train-00000-of-00002.tfrecord"), filepath.Join(dir, "train-00001-of-00002.tfrecord")
			writeShard(t, first, good(t))
			recs := good(t)
			if tt.edit != nil {
				recs = tt.edit(t, recs)
			}
			writeShard(t, second, recs)
			if tt.damage != nil {
				tt.damage(t, second)
			}
			o := Options{Shards: []string{first, second}, ImageSize: size, Classes: 2, BatchSize: 2, Workers: 3}
			err := loadAll(o, 3) // the first shard's three good batches come first
			if tt.atOpen {
				if _, openErr := Open(context.Background(), o); openErr == nil {
					t.Fatal("Open accepted the damaged shard")
				}
				if _, countErr := Count(o.Shards); countErr == nil {
					t.Error("Count accepted the damaged shard")
				}
			}
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, second) || !strings.Contains(msg, tt.record) || !strings.Contains(msg, tt.contains) {
				t.Errorf("error %q: want the shard %s, %q and %q", msg, filepath.Base(second), tt.record, tt.contains)
			}
			if cli.KindOf(err) != cli.KindData {
				t.Errorf("error %q is not a data error (exit code %d)", msg, cli.ExitCode(err))
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q is not one line", msg)
			}
		})
	}
}

// loadAll reads every batch and returns the first error, checking that the
// good batches before it arrived (wantGood of them when the error is not at
// Open) and that the error sticks.
func loadAll(o Options, wantGood int) error {
	l, err := Open(context.Background(), o)
	if err != nil {
		return err
	}
	defer l.Close()
	for n := 0; ; n++ {
		_, err := l.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if n < wantGood {
				return errors.New("the good batches before the bad record were not delivered")
			}
			if _, again := l.Next(); again != err {
				return errors.New("the error did not stick")
			}
			return err
		}
	}
}

func TestMissingShard(t *testing.T) {
	path := filepath.Join(t.TempDir(), "val-00000-of-00001.tfrecord")
	_, err := Open(context.Background(), Options{Shards: []string{path}, ImageSize: 8, BatchSize: 1})
	if err == nil || !strings.Contains(err.Error(), path) || cli.KindOf(err) != cli.KindData {
		t.Errorf("missing shard: %v", err)
	}
}

// TestBadOptions: options no configuration could produce are refused by
// Open, before any goroutine starts.
func TestBadOptions(t *testing.T) {
	badFill := augment.Recipe()
	badFill.Fill = "mirror"
	tests := []struct {
		name     string
		edit     func(*Options)
		contains string
	}{
		{"image size", func(o *Options) { o.ImageSize = 0 }, "ImageSize 0"},
		{"batch size", func(o *Options) { o.BatchSize = 0 }, "BatchSize 0"},
		{"shuffle buffer", func(o *Options) { o.ShuffleBuffer = -1 }, "ShuffleBuffer -1"},
		{"negative workers", func(o *Options) { o.Workers = -2 }, "Workers -2"},
		{"negative epoch", func(o *Options) { o.Epoch = -1 }, "Epoch -1"},
		{"view past views", func(o *Options) { o.Views, o.View = 3, 3 }, "View 3 of Views 3"},
		{"view without views", func(o *Options) { o.View = 1 }, "View 1 of Views 0"},
		{"part past parts", func(o *Options) { o.Parts, o.Part = 2, 2 }, "Part 2 of Parts 2"},
		{"part without parts", func(o *Options) { o.Part = 1 }, "Part 1 of Parts 0"},
		{"augmentation", func(o *Options) { o.Augment = &badFill }, "augment.fill"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := trainOptions(t)
			tt.edit(&o)
			l, err := Open(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("Open = %v; want an error with %q", err, tt.contains)
			}
			if l != nil {
				t.Error("Open returned a loader with its error")
			}
		})
	}
}
