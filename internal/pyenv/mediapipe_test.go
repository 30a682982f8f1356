package pyenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMediaPipePythonFromEnvironment(t *testing.T) {
	py := filepath.Join(t.TempDir(), "python")
	if err := os.WriteFile(py, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XCEPT_MEDIAPIPE_PYTHON", py)
	if got, err := MediaPipePython(); err != nil || got != py {
		t.Errorf("MediaPipePython() = %q, %v; want %q", got, err, py)
	}
	t.Setenv("XCEPT_MEDIAPIPE_PYTHON", py+"-missing")
	if _, err := MediaPipePython(); err == nil || !strings.Contains(err.Error(), "XCEPT_MEDIAPIPE_PYTHON="+py+"-missing: no such file") {
		t.Errorf("a missing XCEPT_MEDIAPIPE_PYTHON: %v", err)
	}
}

func TestMediaPipePythonBesideTheVenv(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{".venv/bin/python", MediaPipeVenv + "/bin/python"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A worktree whose .venv is a symlink to root's finds root's MediaPipe venv.
	wt := t.TempDir()
	if err := os.Symlink(filepath.Join(root, ".venv"), filepath.Join(wt, ".venv")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XCEPT_MEDIAPIPE_PYTHON", "")
	t.Setenv("XCEPT_PYTHON", filepath.Join(wt, ".venv", "bin", "python"))
	want := filepath.Join(root, MediaPipeVenv, "bin", "python")
	if got, err := MediaPipePython(); err != nil || got != want {
		t.Errorf("MediaPipePython() = %q, %v; want %q", got, err, want)
	}
}
