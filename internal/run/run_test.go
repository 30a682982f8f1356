package run_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/run"
	"github.com/xcept/xcept/internal/testmodel"
)

type state struct {
	Epoch int     `json:"epoch"`
	Best  float64 `json:"best"`
}

func TestCheckpointRoundTrip(t *testing.T) {
	m, err := model.Open(testmodel.Tiny(t), graph.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	r, err := run.Create(filepath.Join(t.TempDir(), "runs", "a"), run.Info{Model: m.Dir, Classes: m.Info.Classes, ImageSize: 96})
	if err != nil {
		t.Fatal(err)
	}
	if r2, err := run.Open(r.Dir); err != nil || r2.Info.Model != m.Dir || r2.Info.Format != "xcept-run" {
		t.Fatalf("Open: %+v %v", r2, err)
	}
	if err := r.Restore(m.Session, run.Best); cli.KindOf(err) != cli.KindModel || !strings.Contains(err.Error(), "no best checkpoint") {
		t.Errorf("restoring a missing checkpoint: %v", err)
	}
	for epoch := 1; epoch <= 2; epoch++ {
		if err := r.SaveCheckpoint(m.Session, run.Last, state{Epoch: epoch, Best: 0.5}); err != nil {
			t.Fatal(err)
		}
	}
	var s state
	if err := r.LoadState(run.Last, &s); err != nil || s.Epoch != 2 {
		t.Fatalf("LoadState = %+v, %v", s, err)
	}
	entries, _ := os.ReadDir(r.Path("checkpoints"))
	if len(entries) != 1 || entries[0].Name() != "last" {
		t.Errorf("checkpoints/ holds %v, want only last", entries)
	}
	// A swap interrupted between its two renames is put back.
	if err := os.Rename(r.Path("checkpoints", "last"), r.Path("checkpoints", ".last.old")); err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(m.Session, run.Last); err != nil {
		t.Errorf("restore after an interrupted swap: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	if _, err := run.Open(missing); fault.ReasonOf(err) != fault.NotARun || !strings.Contains(err.Error(), "no such run folder") {
		t.Errorf("Open of a missing folder: %v", err)
	}
	if _, err := run.Open(dir); fault.ReasonOf(err) != fault.NotARun || !strings.Contains(err.Error(), dir) {
		t.Errorf("Open of an empty folder: %v", err)
	}
	os.WriteFile(filepath.Join(dir, run.InfoFile), []byte("{}"), 0o644)
	if _, err := run.Open(dir); fault.ReasonOf(err) != fault.NotARun {
		t.Errorf("Open of a run.json of another format: %v", err)
	}
}
