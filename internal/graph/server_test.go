package graph

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xcept/xcept/internal/testenv"
)

// The collective tests run each task of a cluster in a process of its own:
// the test binary re-executed with XCEPT_TEST_WORKER=MODE,TASK,TIMEOUT_MS,
// ADDRESS0,ADDRESS1,... and XCEPT_TEST_TOY=the toy model (see TestMain).

// The global batches of the data-parallel test: least squares on two
// features, batch b of 4 examples, task i of n takes examples [4i/n, 4(i+1)/n).
func trainBatch(step, task, tasks int) (x, y []float32) {
	for e := 0; e < 4; e++ {
		g := float32(4*(step%2) + e)
		if e*tasks/4 != task {
			continue
		}
		x = append(x, g/8, 1-g/5)
		y = append(y, 2*g/8-0.5*(1-g/5)+0.1)
	}
	return x, y
}

const trainSteps = 4

// collectiveSession loads the toy model on a server of task task of the
// cluster addrs, or in process when addrs is nil.
func collectiveSession(model string, task int, addrs []string, timeoutMs int64) (*Session, error) {
	opts := SessionOptions{IntraOpThreads: 1, InterOpThreads: 1, OperationTimeoutMs: timeoutMs}
	if addrs != nil {
		leader := "/job:worker/replica:0/task:0"
		srv, err := NewServer(ServerDef{Cluster: map[string][]string{"worker": addrs}, Job: "worker", Task: task,
			Config: SessionOptions{CollectiveGroupLeader: leader}})
		if err != nil {
			return nil, fmt.Errorf("NewServer: %w", err)
		}
		opts.Target = srv.Target
		opts.CollectiveGroupLeader = leader
		opts.DeviceFilters = []string{fmt.Sprintf("/job:worker/task:%d", task)}
	}
	return LoadSavedModel(model, opts)
}

func scalars(feeds map[string]*Tensor, groupSize, instanceKey int) {
	feeds["group_size"], _ = NewScalar(int32(groupSize))
	feeds["group_key"], _ = NewScalar(int32(1))
	feeds["instance_key"], _ = NewScalar(int32(instanceKey))
}

// trainFeeds are task's feeds of train_step at step: its shard of the
// global batch and fresh instance keys per step.
func trainFeeds(step, task, tasks int) map[string]*Tensor {
	x, y := trainBatch(step, task, tasks)
	feeds := map[string]*Tensor{}
	feeds["x"], _ = NewTensor([]int64{int64(len(y)), 2}, x)
	feeds["y"], _ = NewTensor([]int64{int64(len(y))}, y)
	feeds["lr"], _ = NewScalar(float32(0.5))
	scalars(feeds, tasks, 10+step)
	return feeds
}

// runTrainSteps runs the toy train_step signature and returns one line per step
// (the group's mean loss, then the weights), as %.9g.
func runTrainSteps(s *Session, task, tasks int) ([]string, error) {
	var lines []string
	for step := 0; step < trainSteps; step++ {
		out, err := s.Run("train_step", trainFeeds(step, task, tasks), "loss", "lin")
		if err != nil {
			return nil, fmt.Errorf("task %d step %d: %w", task, step, err)
		}
		loss, _ := out[0].Float32s()
		lin, _ := out[1].Float32s()
		lines = append(lines, fmt.Sprintf("%.9g %.9g %.9g", loss[0], lin[0], lin[1]))
	}
	return lines, nil
}

// saveRestoreRun runs the steps, saves a checkpoint at prefix, runs them
// again, restores the checkpoint and runs them once more: the first and last
// runs' lines, which a resumed run must repeat.
func saveRestoreRun(s *Session, task, tasks int, prefix string) ([]string, error) {
	first, err := runTrainSteps(s, task, tasks)
	if err != nil {
		return nil, err
	}
	if err := s.Save(prefix); err != nil {
		return nil, fmt.Errorf("task %d save: %w", task, err)
	}
	if _, err := runTrainSteps(s, task, tasks); err != nil {
		return nil, err
	}
	if err := s.Restore(prefix); err != nil {
		return nil, fmt.Errorf("task %d restore: %w", task, err)
	}
	last, err := runTrainSteps(s, task, tasks)
	return append(first, last...), err
}

// collectiveWorker is one task's process; it prints what it computed.
func collectiveWorker(model, spec string) error {
	f := strings.Split(spec, ",")
	task, _ := strconv.Atoi(f[1])
	timeout, _ := strconv.ParseInt(f[2], 10, 64)
	addrs := f[3:]
	s, err := collectiveSession(model, task, addrs, timeout)
	if err != nil {
		return err
	}
	switch f[0] {
	case "allreduce":
		for step := 0; step < 3; step++ {
			feeds := map[string]*Tensor{}
			feeds["x"], _ = NewTensor([]int64{3}, []float32{float32(task + 1), float32(10 * (task + 1)), float32(step)})
			scalars(feeds, len(addrs), 100+step)
			out, err := s.Run("allreduce", feeds, "y")
			if err != nil {
				return fmt.Errorf("step %d: %w", step, err)
			}
			y, _ := out[0].Float32s()
			fmt.Printf("task %d step %d y %v\n", task, step, y)
		}
	case "train", "train-kill":
		if f[0] == "train-kill" && task == 1 {
			// Task 1 runs one step, then SIGKILLs itself (as kill -9 would).
			if _, err := s.Run("train_step", trainFeeds(0, task, len(addrs)), "loss"); err != nil {
				return err
			}
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		lines, err := saveRestoreRun(s, task, len(addrs), filepath.Join(os.Getenv("XCEPT_TEST_DIR"), fmt.Sprintf("ckpt-%d", task)))
		if err != nil {
			return err
		}
		for _, l := range lines {
			fmt.Println("train", l)
		}
	default:
		return errors.New("unknown mode " + f[0])
	}
	if err := s.Close(); err != nil {
		return err
	}
	return waitForPeers(os.Getenv("XCEPT_TEST_DIR"), task, len(addrs))
}

// waitForPeers returns once every task has finished its steps: a task that
// exits as soon as its last collective returns can still be sending its part
// to a peer, which then fails with Unavailable (seen with 88 MB tensors).
func waitForPeers(dir string, task, tasks int) error {
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("done-%d", task)), nil, 0o644); err != nil {
		return err
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		n := 0
		for i := 0; i < tasks; i++ {
			if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("done-%d", i))); err == nil {
				n++
			}
		}
		if n == tasks {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("task %d: only %d of %d tasks finished within a minute", task, n, tasks)
		}
	}
}

// runWorkers runs one process per task and returns their outputs.
func runWorkers(t *testing.T, mode string, tasks int, timeoutMs int64) (outs []string, errs []error) {
	t.Helper()
	model := toyModel(t)
	addrs := testenv.FreeAddrs(t, 2)[:tasks]
	if tasks == 1 {
		addrs = append(addrs, testenv.FreeAddrs(t, 1)...) // a cluster of two whose task 1 never starts
	}
	dir := t.TempDir()
	cmds := make([]*exec.Cmd, tasks)
	outs, errs = make([]string, tasks), make([]error, tasks)
	done := make(chan int, tasks)
	for task := range cmds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "XCEPT_TEST_TOY="+model, "XCEPT_TEST_DIR="+dir,
			fmt.Sprintf("XCEPT_TEST_WORKER=%s,%d,%d,%s", mode, task, timeoutMs, strings.Join(addrs, ",")))
		cmds[task] = cmd
		go func(task int) {
			out, err := cmd.CombinedOutput()
			outs[task], errs[task] = string(out), err
			done <- task
		}(task)
	}
	timeout := time.After(5 * time.Minute)
	for range cmds {
		select {
		case <-done:
		case <-timeout:
			for _, c := range cmds {
				if c.Process != nil {
					c.Process.Kill()
				}
			}
			t.Fatal("the tasks did not finish in 5 minutes")
		}
	}
	return outs, errs
}

// TestCollectiveAcrossTwoProcesses runs the toy model's allreduce signature
// (CollectiveReduceV2, mean) in two processes, each with an in-process
// server of a two-task cluster on loopback and a session on its own server.
func TestCollectiveAcrossTwoProcesses(t *testing.T) {
	outs, errs := runWorkers(t, "allreduce", 2, 0)
	for task, out := range outs {
		if errs[task] != nil {
			t.Fatalf("task %d: %v\n%s", task, errs[task], out)
		}
		for step := 0; step < 3; step++ {
			want := fmt.Sprintf("task %d step %d y [1.5 15 %d]", task, step, step)
			if !strings.Contains(out, want) {
				t.Errorf("task %d: no %q in\n%s", task, want, out)
			}
		}
	}
}

// TestCollectiveDataParallelEqualsOneProcess: two tasks, each with half of
// every global batch and the gradient averaged by the collective inside
// train_step, end with the weights and losses of one process on the full
// batches (group of one), to 1e-5; a checkpoint saved through each task's
// distributed session and restored continues as the one process's does.
func TestCollectiveDataParallelEqualsOneProcess(t *testing.T) {
	s, err := collectiveSession(toyModel(t), 0, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want, err := saveRestoreRun(s, 0, 1, filepath.Join(t.TempDir(), "ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	outs, errs := runWorkers(t, "train", 2, 0)
	for task, out := range outs {
		if errs[task] != nil {
			t.Fatalf("task %d: %v\n%s", task, errs[task], out)
		}
		var got []string
		for _, l := range strings.Split(out, "\n") {
			if rest, ok := strings.CutPrefix(l, "train "); ok {
				got = append(got, rest)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("task %d printed %d steps, want %d:\n%s", task, len(got), len(want), out)
		}
		for step := range want {
			w, g := strings.Fields(want[step]), strings.Fields(got[step])
			for i := range w {
				a, _ := strconv.ParseFloat(w[i], 64)
				b, _ := strconv.ParseFloat(g[i], 64)
				if math.Abs(a-b) > 1e-5 {
					t.Errorf("task %d step %d: %s, one process %s", task, step, got[step], want[step])
				}
			}
		}
	}
	t.Logf("one process: %v", want)
}

// TestCollectiveTimesOutWithoutPeer: a task whose peer never comes fails its
// step with DeadlineExceeded once the session's operation timeout passes,
// instead of waiting forever.
func TestCollectiveTimesOutWithoutPeer(t *testing.T) {
	start := time.Now()
	outs, errs := runWorkers(t, "allreduce", 1, 3000)
	if errs[0] == nil || !strings.Contains(outs[0], "DeadlineExceeded") {
		t.Fatalf("a lone task: %v\n%s", errs[0], outs[0])
	}
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("a lone task took %v to fail", d)
	}
	t.Logf("%s", outs[0])
}

// TestCollectiveGroupOfOne: with group_size 1 the allreduce signature is the
// identity in a plain in-process session, so a single-process trainer needs
// no server.
func TestCollectiveGroupOfOne(t *testing.T) {
	s := loadToy(t)
	x, _ := NewTensor([]int64{2}, []float32{3, -4})
	feeds := map[string]*Tensor{"x": x}
	scalars(feeds, 1, 7)
	for i := 0; i < 2; i++ {
		y := run1(t, s, "allreduce", feeds, "y")
		v, _ := y.Float32s()
		if len(v) != 2 || v[0] != 3 || v[1] != -4 {
			t.Fatalf("allreduce over one task = %v, want [3 -4]", v)
		}
	}
}

// TestCollectivePeerKilled: task 1 SIGKILLs itself after its first step;
// task 0 fails either with Unavailable ("Collective ops is aborted by:
// Socket closed", when it was still receiving task 1's part of that step) or
// at its next step with DeadlineExceeded once the session's operation
// timeout (5 s) passes. Without a timeout that wait has no end (measured:
// still waiting after 90 s), so a trainer must set one.
func TestCollectivePeerKilled(t *testing.T) {
	start := time.Now()
	outs, errs := runWorkers(t, "train-kill", 2, 5000)
	d := time.Since(start)
	if errs[1] == nil || !strings.Contains(errs[1].Error(), "killed") {
		t.Fatalf("task 1 was not killed: %v\n%s", errs[1], outs[1])
	}
	if errs[0] == nil || !strings.Contains(outs[0], "tensorflow DeadlineExceeded") && !strings.Contains(outs[0], "tensorflow Unavailable") {
		t.Fatalf("task 0 after its peer died: %v\n%s", errs[0], outs[0])
	}
	if d > 60*time.Second {
		t.Errorf("task 0 took %v to fail", d)
	}
	t.Logf("task 0 failed after %v: %s", d, strings.TrimSpace(outs[0]))
}
