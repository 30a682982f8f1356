package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/model"
	runs "github.com/xcept/xcept/internal/run"
	"github.com/xcept/xcept/internal/testenv"
)

// worker is one xcept process of a test cluster.
type worker struct {
	cmd   *exec.Cmd
	lines <-chan string
}

// startCluster starts one xcept per task of cluster with args plus
// --cluster and --task.
func startCluster(t *testing.T, cluster string, args ...string) []worker {
	t.Helper()
	var ws []worker
	for i := range strings.Split(cluster, ",") {
		cmd, lines := startXcept(t, append(slices.Clone(args), "--cluster", cluster, "--task", strconv.Itoa(i))...)
		ws = append(ws, worker{cmd, lines})
	}
	return ws
}

// exitCode is the code of a finished process's Wait error.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// finishCluster waits for every worker and fails unless all exit 0; it
// returns their stderr.
func finishCluster(t *testing.T, ws []worker) []string {
	t.Helper()
	var out []string
	for i, w := range ws {
		stderr, err := finish(w.cmd, w.lines)
		if err != nil {
			t.Fatalf("worker %d: exit %d:\n%s", i, exitCode(err), stderr)
		}
		out = append(out, stderr)
	}
	return out
}

// sameHistory compares two history.csv files' metrics (not the timings).
func sameHistory(t *testing.T, want, got string) {
	t.Helper()
	a, b := readCSV(t, want), readCSV(t, got)
	if len(a) != len(b) {
		t.Fatalf("history: %d rows, want %d:\n%v\n%v", len(b), len(a), b, a)
	}
	for i := 1; i < len(a); i++ {
		if a[i][0] != b[i][0] || a[i][1] != b[i][1] {
			t.Errorf("history row %d: epoch/phase %v, want %v", i, b[i][:2], a[i][:2])
		}
		for c := 2; c < 2+5; c++ { // loss, accuracy, val_loss, val_accuracy, learning_rate
			x, _ := strconv.ParseFloat(a[i][c], 64)
			y, _ := strconv.ParseFloat(b[i][c], 64)
			if math.Abs(x-y) > 1e-5*math.Max(1, math.Abs(x)) {
				t.Errorf("history row %d, %s: %v, want %v", i, a[0][c], y, x)
			}
		}
	}
}

// checkpointVariables reads variables of checkpoint name of the run.
func checkpointVariables(t *testing.T, runDir, name string, vars []string) map[string][]float32 {
	t.Helper()
	r, err := runs.Open(runDir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Open(r.Info.Model, graph.SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := r.Restore(m.Session, name); err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for _, v := range vars {
		tensor, err := m.Session.Variable(v)
		if err != nil {
			t.Fatal(err)
		}
		out[v], _ = tensor.Float32s()
		tensor.Close()
	}
	return out
}

// sameWeights compares the variables of two runs' checkpoint name: their
// relative L2 difference must be at most 1e-5, and no value may differ by
// more than 1e-5 in the head, 1e-4 in the base. Adding two shards' gradients
// rounds differently from one batch's sum, and Adam divides each gradient by
// its running magnitude, so an element whose gradient is near zero (common
// in a fine-tuned conv) moves by a learning-rate-sized step whichever way its
// rounding falls: measured 2.3e-5 in block13 after 8 fine-tuning steps at
// lr 1e-4, the head within 7.3e-6.
func sameWeights(t *testing.T, want, got, name string, vars ...string) {
	t.Helper()
	a, b := checkpointVariables(t, want, name, vars), checkpointVariables(t, got, name, vars)
	for _, v := range vars {
		worst, diff, norm := 0.0, 0.0, 0.0
		for i := range a[v] {
			d := float64(a[v][i] - b[v][i])
			worst = math.Max(worst, math.Abs(d))
			diff += d * d
			norm += float64(a[v][i]) * float64(a[v][i])
		}
		rel := math.Sqrt(diff / math.Max(norm, 1e-30))
		t.Logf("checkpoint %s, %s: largest difference %.3g, relative L2 difference %.3g over %d values", name, v, worst, rel, len(a[v]))
		limit := 1e-5
		if !slices.Contains(headVars, v) {
			limit = 1e-4
		}
		if worst > limit || rel > 1e-5 {
			t.Errorf("checkpoint %s, %s: differs from the one-process run by up to %.3g (limit %g), relative L2 %.3g (limit 1e-5)", name, v, worst, limit, rel)
		}
	}
}

// onlyChiefFiles checks that the run folder holds no partial checkpoint
// and, with scratch, that no worker's scratch folder is left.
func onlyChiefFiles(t *testing.T, runDir string, scratch bool) {
	t.Helper()
	// Only dead workers' folders count: another cluster (a benchmark) may
	// be running on this machine.
	var left []string
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "xcept-worker1-p*-*"))
	for _, d := range dirs {
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(d), "xcept-worker1-p%d-", &pid); err == nil && !running(pid) {
			left = append(left, d)
		}
	}
	if scratch && len(left) > 0 {
		t.Errorf("worker 1 left its scratch folders %v", left)
	}
	tmp, _ := filepath.Glob(filepath.Join(runDir, "checkpoints", ".*"))
	if len(tmp) > 0 {
		t.Errorf("partial checkpoints left in %s: %v", runDir, tmp)
	}
}

var headVars = []string{"fc/kernel", "fc/bias", "logits/kernel", "logits/bias"}

// copyDataset copies a prepared dataset without its caches, keeping
// symbolic links (its model) as links: a dataset whose feature cache is
// still to be built.
func copyDataset(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "ds")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		switch {
		case d.Name() == ".cache":
			return filepath.SkipDir
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, to)
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// sameFeatureCache checks that the dataset copies a and b hold one feature
// cache each, with the same key and byte-for-byte the same files.
func sameFeatureCache(t *testing.T, a, b string) {
	t.Helper()
	caches := func(ds string) []string {
		dirs, _ := filepath.Glob(filepath.Join(ds, ".cache", "features", "[^.]*"))
		return dirs
	}
	ca, cb := caches(a), caches(b)
	if len(ca) != 1 || len(cb) != 1 || filepath.Base(ca[0]) != filepath.Base(cb[0]) {
		t.Fatalf("feature caches %v and %v: want one of the same key in each", ca, cb)
	}
	if left, _ := filepath.Glob(filepath.Join(b, ".cache", "features", ".*")); len(left) > 0 {
		t.Errorf("the cluster's build left %v", left)
	}
	entries, err := os.ReadDir(ca[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		x, err1 := os.ReadFile(filepath.Join(ca[0], e.Name()))
		y, err2 := os.ReadFile(filepath.Join(cb[0], e.Name()))
		if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
			t.Errorf("feature cache %s: the cluster's %s is not one process's (%v, %v)", filepath.Base(ca[0]), e.Name(), err1, err2)
		}
	}
	t.Logf("the cluster's feature cache equals one process's byte for byte: %d files", len(entries))
}

// TestClusterTrainsAsOneProcess: two workers on loopback, each with half
// of every global batch (batches of 16, the last one uneven), train the
// frozen phase on cached features and then fine-tune exactly as one
// process does on the whole batches: the chief's history and checkpoints
// equal the single run's to 1e-5, and only the chief writes the run. The
// feature cache, which the two workers build in parts on copies of the
// dataset without one, is one process's byte for byte, and validation,
// which each worker runs on its share of the batches, gives the single
// run's numbers.
func TestClusterTrainsAsOneProcess(t *testing.T) {
	ds := trainDataset(t)
	ds1, ds2 := copyDataset(t, ds), copyDataset(t, ds)
	cfg := writeTrainConfig(t, "")
	one, two := filepath.Join(t.TempDir(), "one"), filepath.Join(t.TempDir(), "two")
	for _, phase := range [][]string{
		{"train", "--data", ds1, "--epochs", "2"},
		{"finetune", "--epochs", "1"},
	} {
		args := append([]string{"--config", cfg, phase[0], "--run", one}, phase[1:]...)
		if code, _, stderr := runXcept(t, nil, args...); code != 0 {
			t.Fatalf("one process, %s: exit %d: %s", phase[0], code, stderr)
		}
		args[4] = two
		if phase[0] == "train" {
			args[6] = ds2
		}
		stderr := finishCluster(t, startCluster(t, strings.Join(testenv.FreeAddrs(t, 2), ","), args...))
		sameHistory(t, filepath.Join(one, "history.csv"), filepath.Join(two, "history.csv"))
		if phase[0] == "train" {
			for i, e := range stderr {
				if !strings.Contains(e, fmt.Sprintf("worker %d (", i)) || !strings.Contains(e, "part of 2") {
					t.Errorf("worker %d did not say it computed its part of the feature cache:\n%s", i, e)
				}
			}
			sameFeatureCache(t, ds1, ds2)
		}
	}
	a, _ := runs.Open(one)
	b, _ := runs.Open(two)
	if !slices.Equal(a.Info.FeatureBlocks, b.Info.FeatureBlocks) {
		t.Errorf("the cluster chose feature blocks %v, one process %v", b.Info.FeatureBlocks, a.Info.FeatureBlocks)
	}
	sameWeights(t, one, two, runs.Last, append(headVars, "block13_sepconv2/pointwise_kernel")...)
	onlyChiefFiles(t, two, true)

	// Global batches of 31 leave 1 of the 94 images for the last: worker
	// 0's share of it would be empty, which fine-tuning cannot run.
	for i, w := range startCluster(t, strings.Join(testenv.FreeAddrs(t, 2), ","), "--config", cfg, "finetune", "--run", two, "--epochs", "1", "--batch-size", "31") {
		stderr, err := finish(w.cmd, w.lines)
		if exitCode(err) != cli.ExitUsage || !strings.Contains(stderr, "a worker's share of it is empty") {
			t.Errorf("worker %d fine-tuning with an empty share: exit %d, want %d saying so:\n%s", i, exitCode(err), cli.ExitUsage, stderr)
		}
	}
}

// TestClusterUncachedTrainStep: the frozen phase without the feature cache
// (train_step on images, through dp_train_step) matches one process too,
// with global batches of 31: the last of the 94 training images' batches
// holds one image, so worker 0's shard of it is empty (its step runs the
// head alone on no features: the base's fused CPU convolutions fail on an
// empty batch).
func TestClusterUncachedTrainStep(t *testing.T) {
	ds := trainDataset(t)
	cfg := writeTrainConfig(t, "")
	one, two := filepath.Join(t.TempDir(), "one"), filepath.Join(t.TempDir(), "two")
	args := []string{"--config", cfg, "train", "--run", one, "--data", ds, "--epochs", "1", "--feature-cache=false", "--batch-size", "31"}
	if code, _, stderr := runXcept(t, nil, args...); code != 0 {
		t.Fatalf("one process: exit %d: %s", code, stderr)
	}
	args[4] = two
	finishCluster(t, startCluster(t, strings.Join(testenv.FreeAddrs(t, 2), ","), args...))
	sameHistory(t, filepath.Join(one, "history.csv"), filepath.Join(two, "history.csv"))
	sameWeights(t, one, two, runs.Last, headVars...)
}

// TestClusterRefusesMismatchedWorkers: workers started with different
// configurations refuse to train (exit 2) before the first step, and the
// chief's run folder holds no checkpoint.
func TestClusterRefusesMismatchedWorkers(t *testing.T) {
	ds := trainDataset(t)
	runDir := filepath.Join(t.TempDir(), "run")
	cluster := strings.Join(testenv.FreeAddrs(t, 2), ",")
	var ws []worker
	for i, lr := range []string{"1e-3", "2e-3"} {
		cmd, lines := startXcept(t, "--config", writeTrainConfig(t, ""), "train", "--data", ds, "--run", runDir, "--epochs", "1",
			"--lr", lr, "--cluster", cluster, "--task", strconv.Itoa(i))
		ws = append(ws, worker{cmd, lines})
	}
	for i, w := range ws {
		stderr, err := finish(w.cmd, w.lines)
		if exitCode(err) != cli.ExitUsage || !strings.Contains(stderr, "not training the same thing") {
			t.Errorf("worker %d: exit %d, want %d saying the workers differ:\n%s", i, exitCode(err), cli.ExitUsage, stderr)
		}
	}
	r, err := runs.Open(runDir)
	if err == nil && (r.HasCheckpoint(runs.Last) || r.HasCheckpoint(runs.Best)) {
		t.Error("a refused cluster wrote a checkpoint")
	}
}

// TestClusterBadSpecExits2: a TF_CONFIG or --cluster that cannot be a
// cluster is one line and exit 2, before anything is read or written.
func TestClusterBadSpecExits2(t *testing.T) {
	runDir := filepath.Join(t.TempDir(), "run")
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"TF_CONFIG": `{"cluster":{"worker":["a:1","b:2"]},"task":{"type":"worker","index":7}}`}, nil, "TF_CONFIG: task.index 7"},
		{nil, []string{"--cluster", "a:1,nope", "--task", "0"}, `"nope" is not host:port`},
	} {
		args := append([]string{"train", "--data", t.TempDir(), "--run", runDir}, c.args...)
		code, _, stderr := runXcept(t, c.env, args...)
		if code != cli.ExitUsage || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v %v: exit %d, %q; want 2 and one line with %q", c.env, c.args, code, stderr, c.want)
		}
		os.Unsetenv("TF_CONFIG")
	}
	if _, err := os.Stat(runDir); err == nil {
		t.Error("a bad cluster spec created the run folder")
	}
}

// TestClusterKill9AndResume: kill -9 of worker 1 mid-epoch makes the chief
// exit 7 within 60 s with one line naming worker 1, leaving only complete
// checkpoints; both workers restarted with --resume complete the run, and
// history.csv holds every epoch once.
func TestClusterKill9AndResume(t *testing.T) {
	ds := trainDataset(t)
	runDir := filepath.Join(t.TempDir(), "run")
	cfg := writeTrainConfig(t, "")
	// The kill lands a second into epoch 2 of 2 (24 steps of 4 images).
	args := []string{"--config", cfg, "train", "--data", ds, "--run", runDir, "--epochs", "2", "--feature-cache=false", "--batch-size", "4"}
	ws := startCluster(t, strings.Join(testenv.FreeAddrs(t, 2), ","), args...)
	waitFor(t, ws[0].lines, "epoch 1/2", 10*time.Minute)
	time.Sleep(time.Second)
	ws[1].cmd.Process.Signal(syscall.SIGKILL)
	ws[1].cmd.Wait()
	killed := time.Now()
	stderr, err := finish(ws[0].cmd, ws[0].lines)
	took := time.Since(killed)
	t.Logf("the chief exited %.1f s after the kill: %s", took.Seconds(), strings.TrimSpace(stderr))
	last := strings.TrimSpace(stderr)
	last = last[strings.LastIndexByte(last, '\n')+1:]
	if exitCode(err) != cli.ExitPeer || !strings.Contains(last, "worker 1 (") || took > time.Minute {
		t.Fatalf("chief after the kill: exit %d after %v, last line %q; want %d within 60 s naming worker 1", exitCode(err), took, last, cli.ExitPeer)
	}
	onlyChiefFiles(t, runDir, false) // the killed worker's scratch stays until a worker starts
	r, err := runs.Open(runDir)
	if err != nil || !r.HasCheckpoint(runs.Last) {
		t.Fatalf("no complete last checkpoint after the kill (%v)", err)
	}

	ws = startCluster(t, strings.Join(testenv.FreeAddrs(t, 2), ","), "--config", cfg, "train", "--run", runDir, "--resume", "--epochs", "2", "--feature-cache=false", "--batch-size", "4")
	finishCluster(t, ws)
	rows := readCSV(t, filepath.Join(runDir, "history.csv"))
	var epochs []string
	for _, row := range rows[1:] {
		epochs = append(epochs, row[0])
	}
	if !slices.Equal(epochs, []string{"1", "2"}) {
		t.Errorf("history after the resume has epochs %v, want 1, 2 once each", epochs)
	}
	onlyChiefFiles(t, runDir, true)
}
