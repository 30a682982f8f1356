package versions

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/xcept/xcept/internal/contract"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		v    int64
		ok   bool
	}{
		{"1", 1, true}, {"42", 42, true}, {"007", 7, true}, {"0", 0, true},
		{"-1", 0, false}, {"+3", 0, false}, {"1a", 0, false}, {"", 0, false}, {" 1", 0, false},
		{".export-tmp-1", 0, false}, {"99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		v, ok := Parse(tt.name)
		if v != tt.v || ok != tt.ok {
			t.Errorf("Parse(%q) = %d, %v; want %d, %v", tt.name, v, ok, tt.v, tt.ok)
		}
	}
	if Name(12) != "12" {
		t.Errorf("Name(12) = %q", Name(12))
	}
}

func complete(t *testing.T, base, name string) {
	t.Helper()
	dir := filepath.Join(base, name)
	if err := os.MkdirAll(filepath.Join(dir, "variables"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{contract.SavedModelFile, contract.VariablesIndex} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestScan(t *testing.T) {
	base := t.TempDir()
	for _, v := range []string{"0", "1", "2", "10"} {
		complete(t, base, v)
	}
	os.MkdirAll(filepath.Join(base, "11"), 0o755) // incomplete: nothing in it yet
	os.WriteFile(filepath.Join(base, "11", contract.SavedModelFile), nil, 0o644)
	for _, name := range []string{"11x", ".tmp-12", "-3", "latest"} {
		complete(t, base, name)
	}
	vs, err := Scan(base)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, v := range vs {
		got = append(got, v.Number)
		if v.Stamp == "" || v.Dir != filepath.Join(base, Name(v.Number)) {
			t.Errorf("version %d: dir %s, stamp %q", v.Number, v.Dir, v.Stamp)
		}
	}
	if !slices.Equal(got, []int64{10, 2, 1, 0}) {
		t.Errorf("versions %v, want [10 2 1 0] (incomplete 11 and other names left out)", got)
	}
	if v, ok := Newest(base); !ok || v.Number != 10 {
		t.Errorf("Newest = %v, %v; want 10", v, ok)
	}
	if _, ok := Newest(filepath.Join(base, "missing")); ok {
		t.Error("Newest of a missing folder found a version")
	}
	if _, err := Scan(filepath.Join(base, "missing")); err == nil {
		t.Error("Scan of a missing folder: no error")
	}
}

func TestStampChangesWithTheFiles(t *testing.T) {
	base := t.TempDir()
	complete(t, base, "1")
	before, _ := Complete(filepath.Join(base, "1"))
	os.WriteFile(filepath.Join(base, "1", contract.SavedModelFile), []byte("longer"), 0o644)
	after, ok := Complete(filepath.Join(base, "1"))
	if !ok || before == after {
		t.Errorf("stamp %q → %q after rewriting saved_model.pb", before, after)
	}
}

func TestNext(t *testing.T) {
	base := t.TempDir()
	if v, err := Next(filepath.Join(base, "missing")); err != nil || v != 1 {
		t.Fatalf("missing folder: %d, %v; want 1", v, err)
	}
	os.Mkdir(filepath.Join(base, "0"), 0o755)
	if v, err := Next(base); err != nil || v != 1 {
		t.Errorf("after version 0: %d, %v; want 1 (export numbers from 1)", v, err)
	}
	for _, d := range []string{"1", "3", "abc", ".export-tmp-9"} {
		os.Mkdir(filepath.Join(base, d), 0o755)
	}
	os.WriteFile(filepath.Join(base, "7"), nil, 0o644) // a file named like a version is not one
	if v, err := Next(base); err != nil || v != 4 {
		t.Errorf("Next = %d, %v; want 4 (after 3; files and other names ignored)", v, err)
	}
}

// An ONNX export's version folder (NAME.onnx and labels.txt) is complete
// only for CompleteONNX and CompleteAny; a SavedModel stays complete for all
// but CompleteONNX; two .onnx files or no labels are not a version.
func TestCompleteONNX(t *testing.T) {
	base := t.TempDir()
	write := func(name string) {
		p := filepath.Join(base, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("1/flowers.onnx")
	write("1/labels.txt")
	write("2/a.onnx")
	write("2/b.onnx")
	write("2/labels.txt")
	write("3/flowers.onnx")
	complete(t, base, "4")
	for _, tt := range []struct {
		name     string
		complete func(string) (string, bool)
		want     []int64
	}{
		{"Complete", Complete, []int64{4}},
		{"CompleteONNX", CompleteONNX, []int64{1}},
		{"CompleteAny", CompleteAny, []int64{4, 1}},
	} {
		vs, err := ScanFunc(base, tt.complete)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, v := range vs {
			got = append(got, v.Number)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: versions %v, want %v", tt.name, got, tt.want)
		}
	}
	if m := ONNXModel(filepath.Join(base, "1")); filepath.Base(m) != "flowers.onnx" {
		t.Errorf("ONNXModel = %q", m)
	}
}
