package ort

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/testenv"
)

// The binding asks for C API version 24; the venv's wheel is onnxruntime
// 1.32, whose library must still serve that version.
func TestLoadsWheelLibrary(t *testing.T) {
	testenv.Python(t)
	if err := Load(); err != nil {
		testenv.Unavailable(t, err.Error())
	}
	if v := Version(); !strings.HasPrefix(v, "1.") || !strings.Contains(Library(), "libonnxruntime.so") {
		t.Fatalf("loaded %s, version %q", Library(), v)
	}
	t.Logf("onnxruntime %s from %s through C API version 24", Version(), Library())
}

func TestMissingLibraryNamesIt(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "libonnxruntime.so")
	t.Setenv(LibraryEnv, missing)
	_, err := find()
	if err == nil || !strings.Contains(err.Error(), missing) || strings.Contains(err.Error(), "\n") {
		t.Errorf("find with %s=%s: %v; want one line naming the file", LibraryEnv, missing, err)
	}
}

// runtime.onnxruntime_spin reaches both thread pools' spinning switch.
func TestSessionOptionsSpin(t *testing.T) {
	testenv.Python(t)
	if err := Load(); err != nil {
		testenv.Unavailable(t, err.Error())
	}
	for _, spin := range []bool{false, true} {
		so, err := sessionOptions(Options{IntraOpThreads: 2, InterOpThreads: 1, Spin: spin})
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool]string{false: "0", true: "1"}[spin]
		for _, key := range []string{keyIntraSpin, keyInterSpin} {
			if got, err := so.GetSessionConfigEntry(key); err != nil || got != want {
				t.Errorf("Spin %v: %s = %q (%v), want %q", spin, key, got, err, want)
			}
		}
		so.Destroy()
	}
}

// The CPU wheel's library has no CUDA or TensorRT provider: asking for one
// is one line naming it, not a crash or a silent CPU run.
func TestGPUProvidersNamedWhenMissing(t *testing.T) {
	testenv.Python(t)
	if err := Load(); err != nil {
		testenv.Unavailable(t, err.Error())
	}
	for _, p := range []string{ProviderCUDA, ProviderTensorRT, "rocm"} {
		so, err := sessionOptions(Options{Providers: []string{p, ProviderCPU}})
		if err == nil {
			so.Destroy()
			t.Logf("%s: this library has the provider (a GPU build?)", p)
			continue
		}
		if !strings.Contains(err.Error(), p) || strings.Contains(err.Error(), "\n") {
			t.Errorf("provider %s: %v; want one line naming it", p, err)
		}
		t.Logf("%s: %v", p, err)
	}
	so, err := sessionOptions(Options{Providers: []string{ProviderCPU}})
	if err != nil {
		t.Fatalf("cpu: %v", err)
	}
	so.Destroy()
}
