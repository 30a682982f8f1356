// Package testenv gives tests the heavy things they share: the project's
// Python, the real-weights fixtures of `make fixtures` (ImageNet weights,
// the kitchen photos), a real MLflow server, free loopback addresses for a
// test cluster (FreeAddrs), Once, the once-per-process cache for fixtures
// (prepared datasets, trained runs), and UserMessage, a domain error's
// message with its options named as flags. Prepared demo datasets come from
// its sub-package demoset.
package testenv

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/xcept/xcept/internal/pyenv"
)

// Strict reports whether missing prerequisites fail tests instead of
// skipping them. `make test` sets XCEPT_TEST_STRICT=1 so that CI can never
// pass by skipping.
func Strict() bool { return os.Getenv("XCEPT_TEST_STRICT") == "1" }

// Python returns the project's Python interpreter, or skips the test (fails
// it under XCEPT_TEST_STRICT=1) when there is none.
func Python(t testing.TB) string {
	t.Helper()
	py, err := pyenv.Python()
	if err != nil {
		Unavailable(t, err.Error())
	}
	return py
}

// Unavailable skips t, or fails it in strict mode, because a prerequisite is missing.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if Strict() {
		t.Fatalf("prerequisite missing (XCEPT_TEST_STRICT=1): %s", why)
	}
	t.Skipf("prerequisite missing: %s", why)
}

// fixtureDir is where `make fixtures` caches the real-weights fixture:
// $XCEPT_CACHE/fixtures, else ~/.cache/xcept/fixtures (scripts/fixtures/fetch.sh).
func fixtureDir() string {
	if d := os.Getenv("XCEPT_CACHE"); d != "" {
		return filepath.Join(d, "fixtures")
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "xcept", "fixtures")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "xcept", "fixtures")
}

// ImageNetH5 returns the path of Keras's real Xception ImageNet notop weights
// (the offline fixture `make fixtures` extracts), or skips the test (fails it
// under XCEPT_TEST_STRICT=1) when they are missing. Pass it as --weights PATH;
// it is never a stand-in for --weights imagenet.
func ImageNetH5(t testing.TB) string {
	t.Helper()
	p := filepath.Join(fixtureDir(), "xception_imagenet_notop.h5")
	if _, err := os.Stat(p); err != nil {
		Unavailable(t, "real ImageNet weights: "+p+" is missing; run `make fixtures`")
	}
	return p
}

// KitchenPhotos returns the folder of real labelled kitchen photos that
// `make fixtures` extracts (one sub-folder per class), or skips/fails like
// ImageNetH5.
func KitchenPhotos(t testing.TB) string {
	t.Helper()
	p := filepath.Join(fixtureDir(), "kitchenware")
	if _, err := os.Stat(p); err != nil {
		Unavailable(t, "real photos: "+p+" is missing; run `make fixtures`")
	}
	return p
}

// MLflowPython returns the python of the MLflow venv that `make mlflow-venv`
// makes (.venv-mlflow at the repository root: MLflow's pins conflict with
// TensorFlow's), or skips/fails like Python.
func MLflowPython(t testing.TB) string {
	t.Helper()
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			p := filepath.Join(dir, ".venv-mlflow", "bin", "python")
			if _, err := os.Stat(p); err == nil {
				return p
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	Unavailable(t, "no .venv-mlflow with MLflow: run `make mlflow-venv`")
	return ""
}

// Once is a fixture made once per test process (a prepared dataset, a
// trained run, a loaded server) and shared by every test that asks for it.
// A failure to make it fails each of those tests, naming what. The zero
// value is ready to use; declare one as a package variable.
type Once[T any] struct {
	once sync.Once
	made bool
	v    T
	err  error
}

// Get makes the fixture with make on the first call and returns it.
func (o *Once[T]) Get(t testing.TB, what string, make func() (T, error)) T {
	t.Helper()
	o.once.Do(func() { o.v, o.err = make(); o.made = true })
	if o.err != nil {
		t.Fatalf("%s: %v", what, o.err)
	}
	return o.v
}

// Made says whether the fixture was made (for a TestMain that frees it).
func (o *Once[T]) Made() (T, bool) {
	var zero T
	if !o.made || o.err != nil {
		return zero, false
	}
	return o.v, true
}

// FreeAddrs returns n loopback addresses whose ports were free a moment ago
// (test clusters of TensorFlow servers and xcept workers).
func FreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var addrs []string
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, l.Addr().String())
		defer l.Close()
	}
	return addrs
}
