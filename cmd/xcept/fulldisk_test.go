package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
)

// smallDisk mounts a tmpfs of size (mount's -o size=) with extra options
// and unmounts it at the end; it skips the test where mounting is not
// allowed (not root, no mount(8), a container without CAP_SYS_ADMIN).
func smallDisk(t *testing.T, size, opts string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root; run the tests as root to check full and read-only disks")
	}
	dir := t.TempDir()
	o := "size=" + size
	if opts != "" {
		o += "," + opts
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", o, "xcept-test", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s)", err, strings.TrimSpace(string(out)))
	}
	// Lazy: a train that failed in-process still holds its TensorBoard
	// event file open (its callbacks' TrainEnd never ran).
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// checkCannotWrite requires exit 4 with one line naming want and saying
// why, without TensorFlow's allocation hint.
func checkCannotWrite(t *testing.T, verb string, code int, stderr, want, reason string) {
	t.Helper()
	line := strings.TrimSpace(stderr[strings.LastIndex(strings.TrimSpace(stderr), "\n")+1:])
	t.Logf("%s: exit %d: %s", verb, code, line)
	if code != cli.ExitData || !strings.Contains(line, want) || !strings.Contains(line, reason) || strings.Contains(stderr, "report_tensor_allocations") {
		t.Errorf("%s: exit %d, last line %q; want %d naming %s and %q, no TensorFlow hint", verb, code, line, cli.ExitData, want, reason)
	}
}

// entries lists a folder, hidden names included.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range des {
		names = append(names, d.Name())
	}
	return names
}

// TestFullDisk: prepare, train and export onto a full disk exit 4 naming
// the path and leave nothing half-written.
func TestFullDisk(t *testing.T) {
	t.Run("prepare", func(t *testing.T) {
		disk := smallDisk(t, "12k", "")
		code, _, stderr := runXcept(t, nil, "-q", "prepare", "--data", prepareData(t), "--out", filepath.Join(disk, "ds"), "--no-model")
		checkCannotWrite(t, "prepare", code, stderr, filepath.Join(disk, "ds"), "no space left")
		if left := entries(t, disk); len(left) != 0 {
			t.Errorf("prepare left %v on the full disk", left)
		}
	})
	t.Run("train", func(t *testing.T) {
		ds := trainDataset(t)
		disk := smallDisk(t, "1m", "")
		runDir := filepath.Join(disk, "run")
		code, _, stderr := runXcept(t, nil, "--config", writeTrainConfig(t, ""), "-q", "train", "--data", ds, "--run", runDir, "--epochs", "1")
		checkCannotWrite(t, "train", code, stderr, filepath.Join(runDir, "checkpoints"), "no space left")
		if left := entries(t, filepath.Join(runDir, "checkpoints")); len(left) != 0 {
			t.Errorf("a half-written checkpoint was left: %v", left)
		}
	})
	t.Run("export", func(t *testing.T) {
		runDir := trainedRun(t)
		disk := smallDisk(t, "1m", "")
		code, _, stderr := runXcept(t, nil, "export", "--run", runDir, "--out", disk)
		checkCannotWrite(t, "export", code, stderr, disk, "no space left")
		if left := entries(t, disk); len(left) != 0 {
			t.Errorf("export left %v on the full disk", left)
		}
	})
	t.Run("read-only", func(t *testing.T) {
		disk := smallDisk(t, "1m", "ro")
		code, _, stderr := runXcept(t, nil, "-q", "prepare", "--data", prepareData(t), "--out", filepath.Join(disk, "ds"), "--no-model")
		checkCannotWrite(t, "prepare", code, stderr, filepath.Join(disk, "ds"), "read-only file system")
	})
}
