package dataset

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/xcept/xcept/internal/demodata"
)

func demoData(t *testing.T, perClass int) string {
	t.Helper()
	dir := t.TempDir()
	gen := demodata.Defaults()
	gen.Classes, gen.PerClass, gen.Width, gen.Height = 4, perClass, 48, 40
	if err := demodata.Generate(dir, gen); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = data
	}
	return files
}

// TestDeterministic prepares the same data twice, with different numbers of
// workers (so decoding finishes in a different order), and from a different
// path: every output file must be byte-identical.
func TestDeterministic(t *testing.T) {
	data := demoData(t, 40)
	moved := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Rename(data, moved); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	o := testOptions(moved, a)
	o.Fractions, o.ShardBytes, o.Workers = Fractions{Train: 0.7, Val: 0.2, Test: 0.1}, 64<<10, 1
	mustPrepare(t, o)
	o.Out, o.Workers = b, 8
	mustPrepare(t, o)

	fa, fb := readDir(t, a), readDir(t, b)
	if len(fa) < 6 {
		t.Fatalf("only %d files written: %v", len(fa), fa)
	}
	for name, data := range fa {
		if !bytes.Equal(data, fb[name]) {
			t.Errorf("%s differs between two runs", name)
		}
	}
	if len(fa) != len(fb) {
		t.Errorf("%d files vs %d", len(fa), len(fb))
	}

	o.Out, o.Seed = filepath.Join(root, "c"), o.Seed+1
	mustPrepare(t, o)
	if bytes.Equal(readDir(t, o.Out)[ManifestFile], fa[ManifestFile]) {
		t.Error("another seed gave the same manifest")
	}
}

// TestStableSplits adds 10% new images to every class: no old image may
// change split, and the new ones follow the shares.
func TestStableSplits(t *testing.T) {
	before := demoData(t, 100)
	after := demoData(t, 110) // the same 100 images per class, plus 10 new
	root := t.TempDir()
	o := testOptions(before, filepath.Join(root, "before"))
	o.Fractions = Fractions{Train: 0.8, Val: 0.1, Test: 0.1}
	mustPrepare(t, o)
	o.Data, o.Out = after, filepath.Join(root, "after")
	mustPrepare(t, o)

	mb, err := ReadManifest(filepath.Join(root, "before"))
	if err != nil {
		t.Fatal(err)
	}
	ma, err := ReadManifest(filepath.Join(root, "after"))
	if err != nil {
		t.Fatal(err)
	}
	if len(mb.Files) != 400 || len(ma.Files) != 440 {
		t.Fatalf("%d and %d files, want 400 and 440", len(mb.Files), len(ma.Files))
	}
	splitOf := map[string]string{}
	for _, f := range ma.Files {
		splitOf[f.Path] = f.Split
	}
	for _, f := range mb.Files {
		if splitOf[f.Path] != f.Split {
			t.Errorf("%s moved from %s to %s", f.Path, f.Split, splitOf[f.Path])
		}
	}
	// Stratified in expectation: each class's train share near 0.8.
	for _, c := range ma.Classes {
		n := c.Train + c.Val + c.Test
		if share := float64(c.Train) / float64(n); share < 0.65 || share > 0.92 {
			t.Errorf("class %s: train share %.2f of %d", c.Name, share, n)
		}
	}
}
