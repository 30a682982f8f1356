package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/imageio"
)

func TestDemoDataVerb(t *testing.T) {
	out := filepath.Join(t.TempDir(), "demo")
	code, _, stderr := runXcept(t, nil, "demo-data", "--out", out, "--classes", "3", "--per-class", "4", "--size", "64x48", "--quadrant", "--format", "jpeg")
	if code != cli.ExitOK || !strings.Contains(stderr, "wrote 12 images") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	names, _ := filepath.Glob(filepath.Join(out, "*", "*_q[0-3].jpg"))
	if len(names) != 12 {
		t.Fatalf("%d quadrant JPEGs: %v", len(names), names)
	}
	data, _ := os.ReadFile(names[0])
	if h, err := imageio.Probe(data, imageio.Limits{}); err != nil || h.Width != 64 || h.Height != 48 {
		t.Errorf("%s: %+v %v", names[0], h, err)
	}
	// Running again replaces the demo folder, with no stale file left.
	code, _, stderr = runXcept(t, nil, "demo-data", "--out", out, "--classes", "2", "--per-class", "2")
	if code != cli.ExitOK {
		t.Fatalf("rerun: exit %d: %s", code, stderr)
	}
	if all, _ := filepath.Glob(filepath.Join(out, "*", "*")); len(all) != 4 {
		t.Errorf("after the rerun: %v", all)
	}

	foreign := t.TempDir()
	os.WriteFile(filepath.Join(foreign, "keep.txt"), []byte("mine"), 0o644)
	for _, args := range [][]string{
		{"--out", foreign},
		{},
		{"--out", out, "--size", "big"},
		{"--out", out, "--classes", "99"},
		{"--out", out, "--format", "gif"},
	} {
		code, _, stderr := runXcept(t, nil, append([]string{"demo-data"}, args...)...)
		if code != cli.ExitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, cli.ExitUsage, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(foreign, "keep.txt")); err != nil {
		t.Error("demo-data touched a folder it did not make")
	}
}
