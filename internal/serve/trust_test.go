package serve

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xcept/xcept/internal/testmodel"
)

// A SavedModel whose serving_default writes a file is refused before it is
// loaded (loading runs the warm-up, which would write it), and served with
// allowUntrusted.
func TestTFServeRefusesFileWritingModel(t *testing.T) {
	dir, target := testmodel.FileWritingExport(t, "serve")
	_, err := New(tinyConfig(dir), SavedModelLoader(tfOpts, false))
	if err == nil || !strings.Contains(err.Error(), "op WriteFile") || !strings.Contains(err.Error(), filepath.Join(dir, "1", "saved_model.pb")) {
		t.Fatalf("New = %v, want a refusal naming op WriteFile and the file", err)
	}
	t.Logf("refused: %v", err)
	assertNotWritten(t, target)

	s, err := New(tinyConfig(dir), SavedModelLoader(tfOpts, true))
	if err != nil {
		t.Fatalf("with allowUntrusted: %v", err)
	}
	defer s.Close()
	ts := startServer(t, s)
	r := do(t, ts.Client(), "POST", ts.URL+"/v1/models/tiny:predict", imageBody(pngBytes(t, testImage(16, 16, 1))))
	if r.code != 200 {
		t.Fatalf("predict with allowUntrusted: %d %s", r.code, r.body)
	}
	if _, err := os.Stat(target); err != nil {
		t.Errorf("the trusted-by-flag model ran, but %s is not there: %v", target, err)
	}
}

// A hostile version dropped into the served folder is reported and not
// served: the current version keeps answering, and the file is not written.
func TestTFHotReloadRefusesFileWritingVersion(t *testing.T) {
	dir := exportTiny(t, 1)
	s, err := New(tinyConfig(dir), SavedModelLoader(tfOpts, false))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hostile, target := testmodel.FileWritingExport(t, "reload")
	if err := os.Rename(filepath.Join(hostile, "1"), filepath.Join(dir, "2")); err != nil {
		t.Fatal(err)
	}
	err = s.Poll()
	if err == nil || !strings.Contains(err.Error(), "op WriteFile") {
		t.Fatalf("Poll = %v, want version 2 refused for op WriteFile", err)
	}
	st := s.mgr.statuses()
	if len(st) != 2 || st[0].Version != 2 || st[0].State != StateEnd || st[0].Err == nil || !strings.Contains(st[0].Err.Message, "WriteFile") {
		t.Errorf("statuses %+v, want version 2 END with the refusal", st)
	}
	if v := s.Version(); v != 1 {
		t.Errorf("serving version %d, want 1", v)
	}
	ts := startServer(t, s)
	r := do(t, ts.Client(), "POST", ts.URL+"/v1/models/tiny:predict", imageBody(pngBytes(t, testImage(16, 16, 1))))
	if r.code != 200 || r.version != "1" {
		t.Errorf("predict after the refused reload: %d version %q %s", r.code, r.version, r.body)
	}
	time.Sleep(50 * time.Millisecond)
	assertNotWritten(t, target)
}

func assertNotWritten(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s exists (or cannot be checked: %v): the refused model ran", path, err)
	}
}
