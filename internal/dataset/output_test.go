package dataset

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/xcept/xcept/internal/cli"
)

// cancelOnAdd cancels the run when the first image is done.
type cancelOnAdd struct{ cancel context.CancelFunc }

func (c cancelOnAdd) Start(string, int) {}
func (c cancelOnAdd) Add(int)           { c.cancel() }
func (c cancelOnAdd) Finish()           {}

func TestInterruptedRunLeavesNoHalfDataset(t *testing.T) {
	data := demoData(t, 20)
	root := t.TempDir()
	out := filepath.Join(root, "ds")
	for _, previous := range []bool{false, true} {
		t.Run(fmt.Sprintf("previous=%v", previous), func(t *testing.T) {
			var old []byte
			if previous {
				mustPrepare(t, testOptions(data, out))
				old, _ = os.ReadFile(filepath.Join(out, ManifestFile))
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			o := testOptions(data, out)
			o.Seed, o.Workers, o.Progress = 99, 1, cancelOnAdd{cancel}
			_, err := Prepare(ctx, o)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Prepare = %v, want context.Canceled", err)
			}
			manifest, err := os.ReadFile(filepath.Join(out, ManifestFile))
			if previous && string(manifest) != string(old) {
				t.Error("the previous dataset was changed by an interrupted run")
			}
			if !previous && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("an interrupted run left %s (%v)", out, err)
			}
			entries, _ := os.ReadDir(root)
			if want := map[bool]int{false: 0, true: 1}[previous]; len(entries) != want {
				t.Errorf("left beside the output: %v", entries)
			}
		})
	}
}

func TestReplacesAnEarlierDataset(t *testing.T) {
	data := demoData(t, 10)
	root := t.TempDir()
	out := filepath.Join(root, "ds")
	if err := os.Mkdir(out, 0o755); err != nil { // an empty folder is fine too
		t.Fatal(err)
	}
	mustPrepare(t, testOptions(data, out))
	o := testOptions(data, out)
	o.ImageSize = 40
	mustPrepare(t, o)
	m, err := ReadManifest(out)
	if err != nil || m.Image.Size != 40 {
		t.Fatalf("manifest after the second run: %+v, %v", m, err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Errorf("left beside the output: %v", entries)
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o755 {
		t.Errorf("dataset folder mode %v, want 0755", st.Mode().Perm())
	}
}

func TestRefusesDangerousOutputs(t *testing.T) {
	data := demoData(t, 3)
	notDataset := t.TempDir()
	writeTestFile(t, filepath.Join(notDataset, "thesis.tex"), []byte("years of work"))
	file := filepath.Join(t.TempDir(), "file")
	writeTestFile(t, file, []byte("x"))
	tests := []struct {
		name, data, out string
	}{
		{"out inside data", data, filepath.Join(data, "ds")},
		{"out is data", data, data},
		{"data inside out", data, filepath.Dir(data)},
		{"out holds other files", data, notDataset},
		{"out is a file", data, file},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot(t, filepath.Dir(tt.data))
			_, err := Prepare(context.Background(), testOptions(tt.data, tt.out))
			if cli.KindOf(err) != cli.KindUsage {
				t.Fatalf("Prepare = %v, want a usage error", err)
			}
			sameSnapshot(t, before, snapshot(t, filepath.Dir(tt.data)))
			if _, err := os.Stat(filepath.Join(notDataset, "thesis.tex")); err != nil {
				t.Error("a folder that is not a dataset was touched")
			}
		})
	}
}

func TestRemovesWorkFoldersOfKilledRuns(t *testing.T) {
	data := demoData(t, 3)
	root := t.TempDir()
	out := filepath.Join(root, "ds")
	dead := filepath.Join(root, ".ds.xcept-tmp-999999999-123")                     // no such process
	live := filepath.Join(root, fmt.Sprintf(".ds.xcept-tmp-%d-456", os.Getppid())) // a running process
	other := filepath.Join(root, ".ds.something-else")
	for _, d := range []string{dead, live, other} {
		writeTestFile(t, filepath.Join(d, "spool"), []byte("partial"))
	}
	mustPrepare(t, testOptions(data, out))
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Error("the work folder of a dead run was not removed")
	}
	for _, d := range []string{live, other} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed: %v", d, err)
		}
	}
}
