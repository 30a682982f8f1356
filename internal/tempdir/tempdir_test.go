package tempdir

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

func TestSweepRemovesOnlyDeadOwners(t *testing.T) {
	parent := t.TempDir()
	live, err := Make(parent, ".x-tmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Remove()
	if st, _ := os.Stat(live.Path); st.Mode().Perm() != 0o755 {
		t.Errorf("mode %v", st.Mode())
	}
	// A process that has ended: its pid names a folder it left behind.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(parent, ".x-tmp-"+strconv.Itoa(cmd.Process.Pid)+"-123")
	other := filepath.Join(parent, ".x-tmp-notapid")
	for _, d := range []string{dead, other} {
		if err := os.MkdirAll(filepath.Join(d, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	removed := Sweep(parent, ".x-tmp-")
	if len(removed) != 1 || removed[0] != dead {
		t.Errorf("swept %v, want only %s", removed, dead)
	}
	for _, d := range []string{live.Path, other} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	live.Remove()
	if _, err := os.Stat(live.Path); !os.IsNotExist(err) {
		t.Errorf("Remove left %s", live.Path)
	}
}
