package export

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/xcept/xcept/internal/filecopy"
)

func TestStageCommitCountsUp(t *testing.T) {
	base := filepath.Join(t.TempDir(), "out", "model")
	var paths []string
	for i := 0; i < 2; i++ {
		s, err := stage(base)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(s.Tmp, "f"), []byte{byte(i)}, 0o644)
		path, v, err := s.commit()
		if err != nil || v != int64(i+1) {
			t.Fatalf("commit %d: %s, %d, %v", i, path, v, err)
		}
		paths = append(paths, path)
	}
	if got := names(t, base); len(got) != 2 || got[0] != "1" || got[1] != "2" {
		t.Errorf("%s holds %v, want [1 2] and nothing hidden", base, got)
	}
	for i, p := range paths {
		if data, _ := os.ReadFile(filepath.Join(p, "f")); len(data) != 1 || data[0] != byte(i) {
			t.Errorf("version %d holds %v", i+1, data)
		}
	}
}

// TestCommitNeverOverwrites: a version taken between staging and commit
// (another export finishing first) is skipped, not replaced.
func TestCommitNeverOverwrites(t *testing.T) {
	base := filepath.Join(t.TempDir(), "m")
	a, err := stage(base)
	if err != nil {
		t.Fatal(err)
	}
	b, err := stage(base)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(a.Tmp, "who"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(b.Tmp, "who"), []byte("b"), 0o644)
	pb, vb, err := b.commit()
	if err != nil || vb != 1 {
		t.Fatalf("b: %s %d %v", pb, vb, err)
	}
	pa, va, err := a.commit()
	if err != nil || va != 2 {
		t.Fatalf("a: %s %d %v", pa, va, err)
	}
	if data, _ := os.ReadFile(filepath.Join(pb, "who")); string(data) != "b" {
		t.Errorf("version 1 was overwritten: %q", data)
	}
}

func TestAbortRemovesOnlyWhatItMade(t *testing.T) {
	root := t.TempDir()
	mine := filepath.Join(root, "new", "deeper", "model")
	s, err := stage(mine)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.Tmp, "half-written"), []byte("x"), 0o644)
	s.abort()
	if _, err := os.Stat(filepath.Join(root, "new")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("abort left the folders it created: %v", err)
	}

	existing := filepath.Join(root, "kept")
	os.MkdirAll(filepath.Join(existing, "model", "1"), 0o755)
	s, err = stage(filepath.Join(existing, "model"))
	if err != nil {
		t.Fatal(err)
	}
	s.abort()
	if got := names(t, filepath.Join(existing, "model")); len(got) != 1 || got[0] != "1" {
		t.Errorf("abort touched what was there before: %v", got)
	}
}

func TestStageRefusesAPathUnderAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := stage(filepath.Join(file, "out", "m")); err == nil {
		t.Fatal("staging under a file succeeded")
	}
	if st, err := os.Stat(file); err != nil || st.IsDir() {
		t.Errorf("the file was changed: %v", err)
	}
}

func TestDirSizeAndCopyTree(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "a", "b"), 0o755)
	os.WriteFile(filepath.Join(src, "x"), make([]byte, 10), 0o644)
	os.WriteFile(filepath.Join(src, "a", "b", "y"), make([]byte, 5), 0o644)
	dst := t.TempDir()
	if err := filecopy.Tree(src, dst, filecopy.File); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{src, dst} {
		if n, err := dirSize(dir); err != nil || n != 15 {
			t.Errorf("dirSize(%s) = %d, %v; want 15", dir, n, err)
		}
	}
	if err := syncTree(dst); err != nil {
		t.Error(err)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}
