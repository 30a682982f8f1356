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
