package model_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/model"
)

// TestBuildPassesClassesInAFile: a million class names reach the builder
// (a stand-in that copies its --labels file) instead of failing with
// "argument list too long", as they did on the command line.
func TestBuildPassesClassesInAFile(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "python")
	script := `#!/bin/sh
while [ $# -gt 0 ]; do
  if [ "$1" = --labels ]; then cp "$2" "$XCEPT_TEST_COPY"; fi
  shift
done
echo "error: stand-in builder" >&2
exit 1
`
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(dir, "labels.txt")
	t.Setenv("XCEPT_PYTHON", fake)
	t.Setenv("XCEPT_TEST_COPY", copied)
	tmp := filepath.Join(dir, "tmp")
	os.Mkdir(tmp, 0o755)
	t.Setenv("TMPDIR", tmp)
	classes := make([]string, 1_000_000)
	for i := range classes {
		classes[i] = fmt.Sprintf("class-%07d", i)
	}
	spec := model.Spec{Classes: classes, ImageSize: 71, Weights: "none", Precision: "float32", DenseUnits: 8, UnfreezeFrom: "block11"}
	_, err := model.Build(t.Context(), filepath.Join(dir, "model"), spec, false, nil)
	if err == nil || !strings.Contains(err.Error(), "stand-in builder") {
		t.Fatalf("Build: %v; want the stand-in builder's error", err)
	}
	data, err := os.ReadFile(copied)
	if err != nil {
		t.Fatalf("the builder got no labels file: %v", err)
	}
	if n := bytes.Count(data, []byte("\n")); n != len(classes) || !bytes.HasPrefix(data, []byte("class-0000000\nclass-0000001\n")) {
		t.Errorf("labels file has %d lines, want %d", n, len(classes))
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("Build left its labels file behind: %v", left)
	}
}
