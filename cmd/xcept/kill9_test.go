package main

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startXcept starts the test binary as xcept with args; its stderr lines
// come on the returned channel (closed at EOF).
func startXcept(t *testing.T, args ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "XCEPT_TEST_AS_MAIN=1")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody reads any more
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	return cmd, lines
}

// children lists the pids of pid's child processes.
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, f := range tasks {
		data, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(data)) {
			if c, err := strconv.Atoi(s); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// waitChild waits until pid runs the Python script (a child process whose
// command line names it) and returns the child's pid.
func waitChild(t *testing.T, pid int, script string, timeout time.Duration) int {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, c := range children(pid) {
			if cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(c) + "/cmdline"); strings.Contains(string(cmdline), script) {
				return c
			}
		}
	}
	t.Fatalf("pid %d did not start %s within %v", pid, script, timeout)
	return 0
}

// running is true while pid exists and is not a zombie.
func running(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

// kill9 kills cmd with SIGKILL and checks that child died with it.
func kill9(t *testing.T, cmd *exec.Cmd, child int) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if child == 0 {
		return
	}
	deadline := time.Now().Add(3 * time.Second)
	for running(child) {
		if time.Now().After(deadline) {
			syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("child %d outlived the kill -9 of xcept", child)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// finish waits for cmd (started by startXcept) to end and returns the rest
// of its stderr and its exit error.
func finish(cmd *exec.Cmd, lines <-chan string) (string, error) {
	var rest strings.Builder
	for l := range lines {
		rest.WriteString(l + "\n")
	}
	return rest.String(), cmd.Wait()
}

// waitFor waits for a line of lines with prefix, or for cond to hold.
func waitFor(t *testing.T, lines <-chan string, prefix string, timeout time.Duration) {
	t.Helper()
	timer := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("xcept ended before printing %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return
			}
		case <-timer:
			t.Fatalf("no %q line within %v", prefix, timeout)
		}
	}
}

func hidden(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestExportKill9 kills exports mid-way with SIGKILL: the TFLite
// converter dies with xcept, and the next export into the same folder
// removes what the killed ones left and publishes only its own version.
func TestExportKill9(t *testing.T) {
	runDir := trainedRun(t)
	out := t.TempDir()
	// Both formats write into one folder: the TFLite export's (--name a
	// puts it in a-tflite), the SavedModel's named to match.
	base := filepath.Join(out, "a-tflite")

	// SavedModel: killed once its temporary folders exist.
	cmd, _ := startXcept(t, "export", "--run", runDir, "--out", out, "--name", "a-tflite")
	for deadline := time.Now().Add(time.Minute); len(hidden(t, base)) < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no temporary folders in %s", base)
		}
	}
	kill9(t, cmd, 0)
	first := hidden(t, base)

	// TFLite, into the same folder: killed while its converter runs.
	cmd, lines := startXcept(t, "export", "--run", runDir, "--out", out, "--name", "a", "--format", "tflite")
	waitFor(t, lines, "converting with", 2*time.Minute)
	kill9(t, cmd, waitChild(t, cmd.Process.Pid, "export_tflite.py", time.Minute))
	left := hidden(t, base)
	t.Logf("left by the SavedModel kill: %v; by the TFLite kill: %v", first, left)
	if len(left) == 0 {
		t.Fatalf("the killed TFLite export left nothing: the kill came too late to test anything")
	}
	for _, f := range first {
		if slices.Contains(left, f) {
			t.Errorf("the TFLite export did not remove %s, left by the killed SavedModel export", f)
		}
	}

	res := exportJSON(t, "--run", runDir, "--out", out, "--name", "a-tflite")
	if res.Path != filepath.Join(base, "1") {
		t.Errorf("export after the kills: %s", res.Path)
	}
	onlyVersions(t, base, "1")
}

// TestPrepareKill9DuringModelBuild: a kill -9 while the model is built
// publishes nothing and leaves no builder running; the next prepare
// removes the killed one's work folder.
func TestPrepareKill9DuringModelBuild(t *testing.T) {
	data := prepareData(t)
	parent := t.TempDir()
	out := filepath.Join(parent, "ds")
	cmd, _ := startXcept(t, "prepare", "--data", data, "--out", out, "--image-size", "71", "--weights", "none")
	kill9(t, cmd, waitChild(t, cmd.Process.Pid, "build_model.py", 2*time.Minute))
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the killed prepare published %s: %v", out, err)
	}
	if code, _, stderr := runXcept(t, nil, "-q", "prepare", "--data", data, "--out", out, "--no-model"); code != 0 {
		t.Fatalf("prepare after the kill: exit %d: %s", code, stderr)
	}
	if left := hidden(t, parent); len(left) != 0 {
		t.Errorf("work folders left beside --out: %v", left)
	}
}
