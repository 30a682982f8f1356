// Package testmodel builds the small Xception models tests share, once.
package testmodel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/testenv"
	"github.com/xcept/xcept/internal/trust"
	"github.com/xcept/xcept/scripts"
)

// TinySpec is the small model most tests share: 3 classes at 96 px,
// untrained base (weights none), a 32-unit head.
func TinySpec() model.Spec {
	return model.Spec{
		Classes:      []string{"circle", "square", "triangle"},
		ImageSize:    96,
		Weights:      "none",
		Precision:    "float32",
		DenseUnits:   32,
		Dropout:      0,
		UnfreezeFrom: "block13",
		Seed:         7,
	}
}

// ArchSpec is TinySpec for the backbone arch at the smallest image size it
// accepts, fine-tuning only its last block (the cheapest backward pass):
// the per-backbone end-to-end test builds one of these per architecture.
// Xception's is TinySpec itself, the model most tests already build.
func ArchSpec(arch model.Arch) model.Spec {
	s := TinySpec()
	if arch.Name == model.DefaultArch {
		return s
	}
	s.Arch, s.ImageSize, s.UnfreezeFrom = arch.Name, arch.MinImageSize, arch.Blocks[len(arch.Blocks)-1]
	return s
}

// Build returns the folder of a model built from spec, building it at most
// once across test binaries and runs: models live in .cache/testmodels under
// the repository, keyed by the builder's source and the spec, and a file lock
// keeps packages tested in parallel from building the same one twice.
// Tests must not modify the folder: load it, and save checkpoints elsewhere.
func Build(t testing.TB, spec model.Spec) string {
	t.Helper()
	if err := graph.Load(); err != nil {
		testenv.Unavailable(t, err.Error())
	}
	testenv.Python(t)
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, ".cache", "testmodels", specKey(spec))
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, err := lock(dir + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := model.ReadInfo(dir); err == nil {
		return dir
	}
	t.Logf("building test model %s (once; cached in %s)", spec.Classes, dir)
	if _, err := model.Build(context.Background(), dir, spec, true, nil); err != nil {
		t.Fatalf("building test model: %v", err)
	}
	return dir
}

// Tiny is Build(t, TinySpec()).
func Tiny(t testing.TB) string { return Build(t, TinySpec()) }

// RealSize is the image size of the real-weights model. At 192 px block14
// (Grad-CAM's layer) is a 6×6 grid, each quadrant of an image exactly 3×3
// cells: at 128 px (4×4) Grad-CAM of the same frozen run put 0.50 of its
// mass in the evidence quadrant against 0.67 at 192 px, the coarse cells
// smearing each object over its neighbours.
const RealSize = 192

// RealSpec is the model all real-weights tests share: Keras's Xception with
// its real ImageNet weights (the `make fixtures` .h5, passed as --weights
// PATH like a user would), at RealSize, with a head for the classes of the
// real kitchen photos (testenv.KitchenPhotos). It skips t (fails it under
// XCEPT_TEST_STRICT=1) when the fixture is missing.
func RealSpec(t testing.TB) model.Spec {
	t.Helper()
	s := TinySpec()
	s.Weights = testenv.ImageNetH5(t)
	s.Classes = KitchenClasses(t)
	s.ImageSize = RealSize
	return s
}

// Real is Build(t, RealSpec(t)).
func Real(t testing.TB) string { return Build(t, RealSpec(t)) }

// KitchenClasses are the class folders of testenv.KitchenPhotos, sorted.
func KitchenClasses(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir(testenv.KitchenPhotos(t))
	if err != nil {
		t.Fatal(err)
	}
	var classes []string
	for _, e := range entries {
		if e.IsDir() {
			classes = append(classes, e.Name())
		}
	}
	sort.Strings(classes)
	if len(classes) < 2 {
		t.Fatalf("%d class folders in %s, want at least 2; run `make fixtures`", len(classes), testenv.KitchenPhotos(t))
	}
	return classes
}

func specKey(spec model.Spec) string {
	h := sha256.New()
	fmt.Fprintf(h, "%#v\n", spec)
	if st, err := os.Stat(spec.Weights); err == nil {
		// A weights file rewritten in place (make fixtures again) is a new model.
		fmt.Fprintf(h, "%d %d\n", st.Size(), st.ModTime().UnixNano())
	}
	fmt.Fprintf(h, "marked with %s\n", trust.MarkFile) // models cached before model.Build wrote the mark lack it
	for _, n := range builderSources() {
		data, _ := scripts.FS.ReadFile(n)
		fmt.Fprintf(h, "%s %d\n", n, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// CacheFile is the path of name in the folder the test models are cached
// in (.cache/testmodels under the repository), for a test that keeps
// something else expensive across runs the same way: name it by a key
// over everything it is made from.
func CacheFile(t testing.TB, name string) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, ".cache", "testmodels")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

// builderSources are the embedded scripts a model's cache key covers:
// every one but the Python tests (test_*.py, *_test.py) and their
// conftest.py, which build no model, so that editing a test does not
// rebuild every test model.
func builderSources() []string {
	names, _ := fs.Glob(scripts.FS, "*.py")
	names = append(names, scripts.Data...)
	sort.Strings(names)
	var out []string
	for _, n := range names {
		if !strings.HasPrefix(n, "test_") && !strings.HasSuffix(n, "_test.py") && n != "conftest.py" {
			out = append(out, n)
		}
	}
	return out
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no go.mod above the working folder")
		}
		dir = filepath.Dir(dir)
	}
}

// lock takes an exclusive flock on path, waiting for other processes.
func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// TinyServingExport lays the tiny model's serving SavedModel out as version
// 1 of an export folder named tiny, TF Serving's layout, in t's temporary
// folder (hard links where it can: the model is 80 MB).
func TinyServingExport(t testing.TB) string {
	t.Helper()
	src := filepath.Join(Tiny(t), model.ServingDir)
	dir := filepath.Join(t.TempDir(), "tiny")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dir, "1", rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if os.Link(path, target) == nil {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// FileWritingUses names the hostile models FileWritingExport builds, one
// per test that runs one (each writes its own file).
var FileWritingUses = []string{"serve", "reload", "predict"}

// FileWritingExport returns a TF Serving folder (version 1 in t's temporary
// folder) of a small hostile SavedModel: its serving_default takes encoded
// images to 3 probabilities, as xcept's models do, and writes the file
// target each time it runs (testdata/file_writing_model.py). use is one of
// FileWritingUses: the models are built once, in one Python process, and
// cached like the tiny models; target is removed before it returns.
func FileWritingExport(t testing.TB, use string) (dir, target string) {
	t.Helper()
	if !slices.Contains(FileWritingUses, use) {
		t.Fatalf("FileWritingExport(%q): add it to FileWritingUses", use)
	}
	if err := graph.Load(); err != nil {
		testenv.Unavailable(t, err.Error())
	}
	py := testenv.Python(t)
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "internal", "testmodel", "testdata", "file_writing_model.py")
	src, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(append(src, strings.Join(FileWritingUses, ",")...))
	cache := filepath.Join(root, ".cache", "testmodels", "filewriting-"+hex.EncodeToString(sum[:])[:16])
	unlock, err := lock(cache + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(cache, "done")); err != nil {
		t.Logf("building the file-writing test models (once; cached in %s)", cache)
		tmp := cache + ".tmp"
		os.RemoveAll(tmp)
		args := []string{script}
		for _, u := range FileWritingUses {
			args = append(args, filepath.Join(tmp, u), filepath.Join(cache, u+".written"))
		}
		if out, err := exec.Command(py, args...).CombinedOutput(); err != nil {
			t.Fatalf("building the file-writing models: %v\n%s", err, out)
		}
		if err := os.WriteFile(filepath.Join(tmp, "done"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(cache)
		if err := os.Rename(tmp, cache); err != nil {
			t.Fatal(err)
		}
	}
	target = filepath.Join(cache, use+".written")
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	dir = filepath.Join(t.TempDir(), "hostile")
	if err := os.CopyFS(filepath.Join(dir, "1"), os.DirFS(filepath.Join(cache, use))); err != nil {
		t.Fatal(err)
	}
	return dir, target
}
