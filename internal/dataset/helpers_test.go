package dataset

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/xcept/xcept/internal/demodata"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/tfexample"
	"github.com/xcept/xcept/internal/tfrecord"
)

// testOptions are small, fast settings; tests change what they exercise.
func testOptions(data, out string) Options {
	return Options{
		Data: data, Out: out, ImageSize: 64, Fractions: Fractions{Train: 0.5, Val: 0.5}, Seed: 7,
		Fit: imageio.Squash, Format: imageio.JPEG, Quality: 90, ShardBytes: 1 << 20,
		MaxPixels: 10_000_000, MaxFileBytes: 8 << 20, MinSide: 16, Workers: 3,
	}
}

// goodImage is a distinct, valid 64×48 JPEG: image i of demo class c.
func goodImage(t testing.TB, c, i int) []byte {
	t.Helper()
	o := demodata.Defaults()
	o.Width, o.Height, o.Format = 64, 48, "jpeg"
	_, data, err := demodata.Image(o, c, i)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func encodePNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// noisy is an image of the given size with pseudo-random pixels.
func noisy(w, h int, seed uint8) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	x := uint32(seed) + 1
	for i := range m.Pix {
		x = x*1664525 + 1013904223
		m.Pix[i] = uint8(x >> 24)
		if i%4 == 3 {
			m.Pix[i] = 255
		}
	}
	return m
}

func writeTestFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot records every entry under dir (content hash, mode, time, link
// target) so a test can prove that prepare left the originals alone.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%v %d", info.Mode(), info.ModTime().UnixNano())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			desc += " " + hex.EncodeToString(sum[:])
		}
		out[p] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(t testing.TB, before, after map[string]string) {
	t.Helper()
	for p, d := range before {
		if after[p] != d {
			t.Errorf("input %s changed: %q -> %q", p, d, after[p])
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("prepare created %s inside the input folder", p)
		}
	}
}

func mustPrepare(t testing.TB, o Options) *Report {
	t.Helper()
	rep, err := Prepare(context.Background(), o)
	if err != nil {
		if rep != nil {
			var b bytes.Buffer
			rep.WriteText(&b)
			t.Log(b.String())
		}
		t.Fatalf("Prepare: %v", err)
	}
	return rep
}

func readProblems(t testing.TB, out string) []Problem {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(out, ProblemsFile))
	if err != nil {
		t.Fatal(err)
	}
	var ps []Problem
	if err := json.Unmarshal(data, &ps); err != nil {
		t.Fatal(err)
	}
	return ps
}

// record is one tf.Example as the tests check it.
type record struct {
	name, text, format string
	label              int64
	width, height      int64
	image              *image.RGBA
}

// readRecords reads every record of a split's shards with xcept's own reader.
func readRecords(t testing.TB, out string, m *Manifest, split string) []record {
	t.Helper()
	var recs []record
	for _, path := range m.ShardPaths(out, split) {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		r := tfrecord.NewReader(f)
		for {
			b, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			ex, err := tfexample.Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, decodeRecord(t, ex))
		}
		f.Close()
	}
	return recs
}

func decodeRecord(t testing.TB, ex *tfexample.Example) record {
	t.Helper()
	var r record
	str := func(k string) string {
		b, err := ex.Bytes(k)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		return string(b)
	}
	num := func(k string) int64 {
		v, err := ex.Int64(k)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		return v
	}
	r.name, r.text, r.format = str(KeyName), str(KeyText), str(KeyFormat)
	r.label, r.width, r.height = num(KeyLabel), num(KeyWidth), num(KeyHeight)
	img, info, err := imageio.Decode([]byte(str(KeyEncoded)), imageio.Limits{})
	if err != nil {
		t.Fatalf("record %s: %v", r.name, err)
	}
	if string(info.Format) != r.format || int64(info.Width) != r.width || int64(info.Height) != r.height {
		t.Errorf("record %s: says %s %dx%d, holds %s %dx%d", r.name, r.format, r.width, r.height, info.Format, info.Width, info.Height)
	}
	r.image = img
	return r
}

// meanColour is the average colour of img, to compare images loosely.
func meanColour(img *image.RGBA) color.RGBA {
	var s [3]int
	n := len(img.Pix) / 4
	for i := 0; i < len(img.Pix); i += 4 {
		s[0] += int(img.Pix[i])
		s[1] += int(img.Pix[i+1])
		s[2] += int(img.Pix[i+2])
	}
	return color.RGBA{uint8(s[0] / n), uint8(s[1] / n), uint8(s[2] / n), 255}
}
