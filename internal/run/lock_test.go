package run_test

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/run"
)

// TestMain lets the test binary act as another process holding a run's lock.
func TestMain(m *testing.M) {
	if dir := os.Getenv("XCEPT_TEST_HOLD_LOCK"); dir != "" {
		if _, err := run.Acquire(dir, "train"); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("locked\n")
		select {} // until killed
	}
	os.Exit(m.Run())
}

// holdLock starts another process that takes dir's lock and waits.
func holdLock(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "XCEPT_TEST_HOLD_LOCK="+dir)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "locked\n" {
		t.Fatalf("the holder process did not take the lock: %q", line)
	}
	return cmd
}

func TestLockOneWriter(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "runs", "a")
	l, err := run.Acquire(dir, "train")
	if err != nil {
		t.Fatal(err)
	}
	// A second writer, even in this process (another open file), is refused.
	_, err = run.Acquire(dir, "export")
	var busy *run.BusyError
	if !errors.As(err, &busy) || cli.ExitCode(err) != cli.ExitBusy {
		t.Fatalf("second Acquire: %v (exit %d)", err, cli.ExitCode(err))
	}
	if busy.Holder.PID != os.Getpid() || busy.Holder.Verb != "train" {
		t.Errorf("holder %+v", busy.Holder)
	}
	if msg := err.Error(); !strings.Contains(msg, "xcept train (pid "+strconv.Itoa(os.Getpid())+", started ") || !strings.Contains(msg, dir) {
		t.Errorf("message %q does not name the run and the holder", msg)
	}
	l.Release()
	l.Release() // idempotent
	// The folder held nothing but the lock: a failed first command leaves no trace.
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty run folder left behind: %v", err)
	}
	l2, err := run.Acquire(dir, "finetune")
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "history.csv"), nil, 0o644)
	l2.Release()
	if _, err := os.Stat(filepath.Join(dir, "history.csv")); err != nil {
		t.Errorf("a run folder with content was touched on Release: %v", err)
	}
}

// TestLockStaleTakenOver: the holder is killed with SIGKILL; the kernel
// drops its flock and the next writer takes the run over.
func TestLockStaleTakenOver(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	holder := holdLock(t, dir)
	_, err := run.Acquire(dir, "train")
	var busy *run.BusyError
	if !errors.As(err, &busy) || busy.Holder.PID != holder.Process.Pid {
		t.Fatalf("while held by pid %d: %v", holder.Process.Pid, err)
	}
	holder.Process.Signal(syscall.SIGKILL)
	holder.Wait()
	l, err := run.Acquire(dir, "finetune")
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	defer l.Release()
	// The record now names this process.
	_, err = run.Acquire(dir, "train")
	if !errors.As(err, &busy) || busy.Holder.PID != os.Getpid() || busy.Holder.Verb != "finetune" {
		t.Errorf("after takeover: %v", err)
	}
}

func TestInside(t *testing.T) {
	for _, c := range []struct {
		path string
		want bool
	}{{"runs/a", true}, {"runs/a/export", true}, {"runs/a/../a/x", true}, {"runs/ab", false}, {"runs/a/..", false}, {"elsewhere", false}, {"runs/a/..x", true}} {
		if got := run.Inside("runs/a", c.path); got != c.want {
			t.Errorf("Inside(runs/a, %s) = %v", c.path, got)
		}
	}
}
