package serve

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/versions"
)

// An ONNX export's version folders are versions only to a server whose
// Config.Complete takes them (onnxruntime's); on TensorFlow the folder is
// refused with a line saying how to serve it.
func TestONNXVersionsNeedTheirEngine(t *testing.T) {
	dir := t.TempDir()
	v := filepath.Join(dir, "3")
	os.Mkdir(v, 0o755)
	for _, f := range []string{"flowers.onnx", versions.ONNXLabels} {
		if err := os.WriteFile(filepath.Join(v, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l := &fakeLoader{}
	_, err := New(fakeConfig(dir), l.load)
	if err == nil || !strings.Contains(err.Error(), "--engine onnxruntime") {
		t.Errorf("TensorFlow's server on an ONNX export: %v; want the --engine onnxruntime hint", err)
	}
	cfg := fakeConfig(dir)
	cfg.Complete = versions.CompleteAny
	s, err := New(cfg, l.load)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Version() != 3 || l.model(3) == nil {
		t.Errorf("onnxruntime's server serves version %d, want 3", s.Version())
	}
}
