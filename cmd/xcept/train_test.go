package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/demodata"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/model"
	runs "github.com/xcept/xcept/internal/run"
	"github.com/xcept/xcept/internal/testenv"
	"github.com/xcept/xcept/internal/testmodel"
	"github.com/xcept/xcept/internal/train"
)

var trainData testenv.Once[string]

// trainDataset is a prepared demo dataset (3 classes, 96 px) whose model is
// the shared tiny test model, made once per test binary.
func trainDataset(t *testing.T) string {
	t.Helper()
	modelDir := testmodel.Tiny(t)
	return trainData.Get(t, "training dataset", func() (string, error) {
		dir, err := os.MkdirTemp("", "xcept-train-")
		if err != nil {
			return "", err
		}
		gen := demodata.Defaults()
		gen.Classes, gen.PerClass, gen.Width, gen.Height, gen.Seed = 3, 40, 96, 96, 3
		// The tiny model is built for the same class names (circle, square, triangle) and size.
		return demoDataset(t.Context(), dir, gen, 96, modelDir)
	})
}

// trainConfig is a fast configuration for tests.
func writeTrainConfig(t *testing.T, extra string) string {
	path := filepath.Join(t.TempDir(), "train.yaml")
	cfg := "seed: 5\ntrain:\n  batch_size: 16\n  learning_rate: 1.0e-3\n  cache_views: 2\nfinetune:\n  learning_rate: 1.0e-4\nruntime:\n  intra_op_threads: 2\n" + extra
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestTrainAndFinetuneEndToEnd(t *testing.T) {
	ds := trainDataset(t)
	runDir := filepath.Join(t.TempDir(), "runs", "e2e")
	cfg := writeTrainConfig(t, "")
	code, stdout, stderr := runXcept(t, nil, "--config", cfg, "--json", "train", "--data", ds, "--run", runDir, "--epochs", "3")
	if code != 0 {
		t.Fatalf("train: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 4 {
		t.Fatalf("--json printed %d lines, want 3 epochs + result:\n%s", len(lines), stdout)
	}
	var result map[string]any // the bare result object, last, as every verb prints it
	if err := json.Unmarshal([]byte(lines[3]), &result); err != nil || result["phase"] != "train" || result["checkpoint"] == nil || result["result"] != nil {
		t.Errorf("last --json line %s (%v): want the bare result object", lines[3], err)
	}
	rows := readCSV(t, filepath.Join(runDir, "history.csv"))
	if len(rows) != 4 {
		t.Fatalf("history.csv has %d rows, want header + 3", len(rows))
	}
	best := 0.0
	for _, r := range rows[1:] {
		v, _ := strconv.ParseFloat(r[5], 64)
		best = max(best, v)
	}
	t.Logf("frozen phase with cached features: best val_accuracy %.3f over 3 epochs (chance 0.333)", best)
	if best < 0.6 {
		t.Errorf("best val_accuracy %.3f: not clearly above chance", best)
	}
	checkTensorBoard(t, runDir, rows)
	checkResultHint(t, lines[3], runDir, rows)
	checkFeatureChoice(t, runDir, stderr)
	checkCalibrated(t, runDir, "train")

	code, _, stderr = runXcept(t, nil, "--config", cfg, "finetune", "--run", runDir, "--epochs", "1")
	if code != 0 {
		t.Fatalf("finetune: exit %d: %s", code, stderr)
	}
	rows = readCSV(t, filepath.Join(runDir, "history.csv"))
	if len(rows) != 5 || rows[4][0] != "4" || rows[4][1] != "finetune" {
		t.Errorf("history after finetune: %v", rows)
	}
	if _, err := os.Stat(filepath.Join(runDir, "config-finetune.yaml")); err != nil {
		t.Error(err)
	}
	if !strings.Contains(stderr, "calibrated on ") {
		t.Errorf("finetune did not say it calibrated:\n%s", stderr)
	}
	checkCalibrated(t, runDir, "finetune")
}

// checkFeatureChoice: model.feature_blocks auto (the default) chose one of
// the model's feature choices before the phase, said so on one line and
// recorded it in run.json; the history holds the phase's epochs only (the
// trials write nothing: checked by the caller's row count).
func checkFeatureChoice(t *testing.T, runDir, stderr string) {
	t.Helper()
	r, err := runs.Open(runDir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := model.ReadInfo(r.Info.Model)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Choosable() || !slices.ContainsFunc(info.FeatureChoices, func(c []string) bool { return slices.Equal(c, r.Info.FeatureBlocks) }) {
		t.Errorf("run.json feature_blocks %v: want one of the model's choices %v", r.Info.FeatureBlocks, info.FeatureChoices)
	}
	want := "feature blocks: the head reads " + strings.Join(r.Info.FeatureBlocks, ",") + " (best val_accuracy on the validation split: block14 "
	if n := strings.Count(stderr, "feature blocks: "); n != 1 || !strings.Contains(stderr, want) {
		t.Errorf("train stderr: want one line starting %q:\n%s", want, stderr)
	}
}

// checkCalibrated: run.json holds the temperature fitted after phase, the
// fit did not raise the validation NLL, and the serving model restored from
// the best checkpoint answers softmax(logits / T) of the trainer's logits.
func checkCalibrated(t *testing.T, runDir, phase string) {
	t.Helper()
	r, err := runs.Open(runDir)
	if err != nil {
		t.Fatal(err)
	}
	fit := r.Info.Calibration
	if fit == nil || fit.Phase != phase || fit.Split != "val" || fit.Images == 0 {
		t.Fatalf("run.json calibration after %s: %+v", phase, fit)
	}
	t.Logf("%s: T %.4f on %d validation images, ECE %.4f → %.4f, NLL %.4f → %.4f", phase, fit.Temperature, fit.Images,
		fit.Before.ECE, fit.After.ECE, fit.Before.NLL, fit.After.NLL)
	if fit.Temperature < calibrate.MinTemperature || fit.Temperature > calibrate.MaxTemperature || fit.After.NLL > fit.Before.NLL+1e-9 {
		t.Errorf("fit %+v: T out of range or NLL raised", fit)
	}
	trainer, err := model.Open(r.Info.Model, graph.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer trainer.Close()
	serving, err := model.OpenServing(r.Info.Model, graph.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer serving.Close()
	for _, s := range []*graph.Session{trainer.Session, serving.Session} {
		if err := r.Restore(s, runs.Best); err != nil {
			t.Fatal(err)
		}
	}
	n, size := 4, trainer.Info.ImageSize
	images := make([]uint8, n*size*size*3)
	for i := range images {
		images[i] = uint8(i * 7 % 251)
	}
	logits, err := trainer.ImageLogits(model.Batch{Images: images, Labels: make([]int32, n)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := serving.Predict(images, n)
	if err != nil {
		t.Fatal(err)
	}
	want := calibrate.Scale(logits, trainer.Info.NumClasses, fit.Temperature)
	for i := range want {
		if d := got[i] - want[i]; d > 1e-5 || d < -1e-5 {
			t.Fatalf("serving probability %d = %v, softmax(logits / %.4f) = %v", i, got[i], fit.Temperature, want[i])
		}
	}
}

// checkResultHint: --json's result carries the hint rule's verdict on the
// best epoch of history.csv, as a field that is there even when empty.
func checkResultHint(t *testing.T, line, runDir string, rows [][]string) {
	t.Helper()
	var res map[string]any // the result line is a bare object
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		t.Fatalf("result line %q: %v", line, err)
	}
	hint, ok := res["hint"].(string)
	if !ok {
		t.Fatalf("--json result has no hint field: %s", line)
	}
	best := int(res["best_epoch"].(float64))
	spec := testmodel.TinySpec() // trainDataset's model
	o := train.Outcome{Phase: train.PhaseTrain, Run: runDir, Classes: len(spec.Classes), Weights: spec.Weights, Dropout: spec.Dropout}
	for _, r := range rows[1:] {
		if r[0] == strconv.Itoa(best) {
			o.TrainAccuracy, _ = strconv.ParseFloat(r[3], 64)
			o.ValAccuracy, _ = strconv.ParseFloat(r[5], 64)
		}
	}
	if want := train.Hint(o); hint != want {
		t.Errorf("result hint %q, want %q (best epoch %d: %+v)", hint, want, best, o)
	}
}

// checkTensorBoard reads the run's event files with TensorBoard's own
// EventAccumulator and compares them with history.csv.
func checkTensorBoard(t *testing.T, runDir string, rows [][]string) {
	py := testenv.Python(t)
	script := `
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1]); acc.Reload()
print(json.dumps({tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}))
`
	cmd := exec.Command(py, "-c", script, runDir)
	cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=3")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("EventAccumulator: %v", err)
	}
	var scalars map[string][][2]float64
	if err := json.Unmarshal(out, &scalars); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	header := rows[0]
	for col := 2; col < len(header); col++ {
		series := scalars[header[col]]
		if len(series) != len(rows)-1 {
			t.Errorf("TensorBoard %s: %d points, history.csv %d", header[col], len(series), len(rows)-1)
			continue
		}
		for i, r := range rows[1:] {
			want, _ := strconv.ParseFloat(r[col], 64)
			if series[i][0] != float64(i+1) || float32(series[i][1]) != float32(want) {
				t.Errorf("TensorBoard %s epoch %d = %v, history.csv %v", header[col], i+1, series[i], want)
			}
		}
	}
}

// TestResumeAfterKill9 kills a training process mid-epoch with SIGKILL,
// watching that no checkpoint is ever seen half-written, then resumes.
func TestResumeAfterKill9(t *testing.T) {
	ds := trainDataset(t)
	runDir := filepath.Join(t.TempDir(), "runs", "killed")
	cfg := writeTrainConfig(t, "")
	// The kill lands 300 ms into epoch 2 of 3: mid-run however fast the
	// machine (an uncached epoch of the 94 training images takes seconds).
	args := []string{"--config", cfg, "train", "--data", ds, "--run", runDir, "--epochs", "3", "--feature-cache=false"}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "XCEPT_TEST_AS_MAIN=1")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var partial []string
	var watch sync.WaitGroup
	watch.Add(1)
	go func() { // the kill window: look at the checkpoints as often as we can
		defer watch.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, name := range []string{"last", "best"} {
				dir := filepath.Join(runDir, "checkpoints", name)
				if _, err := os.Stat(dir); err == nil {
					for _, f := range []string{"ckpt.index", "state.json"} {
						if _, err := os.Stat(filepath.Join(dir, f)); err != nil && dirStillThere(dir) {
							partial = append(partial, filepath.Join(dir, f))
						}
					}
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	// Kill during the second epoch: after the first epoch's line, a moment in.
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "epoch 1/3") {
			break
		}
	}
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	close(stop)
	watch.Wait()
	if len(partial) > 0 {
		t.Errorf("checkpoint files missing while their folder existed: %v", partial)
	}
	code, _, errOut := runXcept(t, nil, "--config", cfg, "train", "--run", runDir, "--resume", "--epochs", "3", "--feature-cache=false")
	if code != 0 {
		t.Fatalf("resume: exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "resuming") {
		t.Errorf("resume did not say it resumed: %s", errOut)
	}
	rows := readCSV(t, filepath.Join(runDir, "history.csv"))
	var epochs []string
	for _, r := range rows[1:] {
		epochs = append(epochs, r[0])
	}
	if strings.Join(epochs, ",") != "1,2,3" {
		t.Errorf("history epochs after kill and resume: %v", epochs)
	}
}

// dirStillThere tells a folder being swapped out (renamed away between two
// Stat calls) from one that really lacks a file.
func dirStillThere(dir string) bool {
	_, err := os.Stat(dir)
	return err == nil
}

func TestTrainRefusesBadInputBeforeWriting(t *testing.T) {
	ds := trainDataset(t)
	unknown := writeTrainConfig(t, "trian:\n  epochs: 3\n")
	gen := demodata.Defaults()
	gen.Classes, gen.PerClass, gen.Width, gen.Height = 2, 12, 96, 96
	twoClass := filepath.Dir(tempDemoDataset(t, gen, 96, testmodel.Tiny(t))) // a model of 3 classes
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown key", []string{"--config", unknown, "train", "--data", ds}, cli.ExitUsage, "unknown key trian.epochs"},
		{"negative epochs", []string{"train", "--data", ds, "--epochs", "-2"}, cli.ExitUsage, "train.epochs"},
		{"bad env", []string{"train", "--data", ds}, cli.ExitUsage, "callbacks.reduce_lr.factor"},
		{"class mismatch", []string{"train", "--data", filepath.Join(twoClass, "ds")}, cli.ExitData, "the model has 3 classes"},
		{"no dataset", []string{"train", "--data", filepath.Join(twoClass, "nope")}, cli.ExitData, "nope"},
		{"resume nothing", []string{"train", "--resume"}, cli.ExitData, "holds no run"},
		{"finetune nothing", []string{"finetune"}, cli.ExitData, "train one first"},
	}
	for _, c := range cases {
		runDir := filepath.Join(t.TempDir(), "runs", "x")
		env := map[string]string{}
		if c.name == "bad env" {
			env["XCEPT_CALLBACKS_REDUCE_LR_FACTOR"] = "3"
		}
		code, _, stderr := runXcept(t, env, append(c.args, "--run", runDir)...)
		if code != c.code || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and one line containing %q", c.name, code, stderr, c.code, c.want)
		}
		if _, err := os.Stat(runDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the run folder was created", c.name)
		}
		os.Unsetenv("XCEPT_CALLBACKS_REDUCE_LR_FACTOR")
	}
}

// TestCtrlCSavesAndExits130: SIGINT finishes the step underway, saves the
// last checkpoint mid-epoch and exits 130; --resume then completes the run.
func TestCtrlCSavesAndExits130(t *testing.T) {
	ds := trainDataset(t)
	runDir := filepath.Join(t.TempDir(), "runs", "ctrl-c")
	cfg := writeTrainConfig(t, "")
	cmd, lines := startXcept(t, "--config", cfg, "train", "--data", ds, "--run", runDir, "--epochs", "3", "--feature-cache=false")
	waitFor(t, lines, "epoch 1/3", 10*time.Minute)
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	rest, err := finish(cmd, lines)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != cli.ExitInterrupted {
		t.Fatalf("after SIGINT: %v, stderr %q", err, rest)
	}
	var state struct {
		Epoch int `json:"epoch"`
		Step  int `json:"step"`
	}
	data, err := os.ReadFile(filepath.Join(runDir, "checkpoints", "last", "state.json"))
	if err != nil || json.Unmarshal(data, &state) != nil || state.Epoch < 1 || state.Epoch >= 3 {
		t.Fatalf("last checkpoint after SIGINT: %s (%v)", data, err)
	}
	t.Logf("interrupted at epoch %d, step %d of the next", state.Epoch, state.Step)
	code, _, errOut := runXcept(t, nil, "--config", cfg, "train", "--run", runDir, "--resume", "--epochs", "3", "--feature-cache=false")
	if code != 0 {
		t.Fatalf("resume: exit %d: %s", code, errOut)
	}
	if rows := readCSV(t, filepath.Join(runDir, "history.csv")); len(rows) != 4 || rows[3][0] != "3" {
		t.Errorf("history after resume: %v", rows)
	}
}

// TestTrainMixedBFloat16 trains with the CPU's mixed precision policy for
// real: the run builds its own bfloat16 model and the loss falls.
func TestTrainMixedBFloat16(t *testing.T) {
	ds := trainDataset(t)
	runDir := filepath.Join(t.TempDir(), "runs", "bf16")
	code, _, stderr := runXcept(t, nil, "--config", writeTrainConfig(t, ""), "train", "--data", ds, "--run", runDir,
		"--epochs", "4", "--precision", "mixed_bfloat16")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	start := "device CPU:0 (/job:localhost/replica:0/task:0/device:CPU:0, runtime.device auto), precision mixed_bfloat16\n"
	if strings.Count(stderr, start) != 1 || strings.Contains(stderr, "warning: mixed_float16") {
		t.Errorf("want the start line %q once and no float16 warning in:\n%s", start, stderr)
	}
	info, err := os.ReadFile(filepath.Join(runDir, "model", "model.json"))
	if err != nil || !strings.Contains(string(info), `"precision": "mixed_bfloat16"`) {
		t.Fatalf("run model: %v %.200s", err, info)
	}
	rows := readCSV(t, filepath.Join(runDir, "history.csv"))
	first, _ := strconv.ParseFloat(rows[1][2], 64)
	last, _ := strconv.ParseFloat(rows[len(rows)-1][2], 64)
	t.Logf("mixed_bfloat16 training loss %.4f -> %.4f over %d epochs", first, last, len(rows)-1)
	if !(last < first*0.9) {
		t.Errorf("mixed_bfloat16 loss did not decrease: %.4f -> %.4f", first, last)
	}
	// The serving model answers float32 probabilities (the C API reads
	// them as float32, or predict fails) that sum to 1.
	images, _ := filepath.Glob(filepath.Join(filepath.Dir(ds), "images", "*", "*"))
	code, lines, stderr := predictJSON(t, "--run", runDir, images[0])
	if code != 0 || len(lines) != 1 {
		t.Fatalf("predict with the mixed_bfloat16 run: exit %d, %d lines: %s", code, len(lines), stderr)
	}
	sum := 0.0
	for _, p := range probsOf(lines[0]) {
		sum += p
	}
	if math.Abs(sum-1) > 1e-3 {
		t.Errorf("mixed_bfloat16 probabilities %v sum to %v", probsOf(lines[0]), sum)
	}
}

// TestOneWriterPerRun runs a second train (and finetune, export and
// evaluate into the run) while a first train is writing the run: each is
// refused with exit 6 naming the holder, the first finishes untouched, and a
// reader that writes elsewhere (evaluate --out) works alongside.
func TestOneWriterPerRun(t *testing.T) {
	ds := trainDataset(t)
	runDir := filepath.Join(t.TempDir(), "runs", "shared")
	cfg := writeTrainConfig(t, "")
	cmd, lines := startXcept(t, "--config", cfg, "train", "--data", ds, "--run", runDir, "--epochs", "3", "--feature-cache=false")
	waitFor(t, lines, "epoch 1/3", 10*time.Minute)
	holder := "in use by xcept train (pid " + strconv.Itoa(cmd.Process.Pid) + ", started "
	for _, args := range [][]string{
		{"train", "--data", ds, "--run", runDir, "--epochs", "2", "--lr", "0.01", "--resume"},
		{"finetune", "--run", runDir, "--epochs", "1"},
		{"export", "--run", runDir},
		{"evaluate", "--run", runDir},
	} {
		code, _, errOut := runXcept(t, nil, append([]string{"--config", cfg}, args...)...)
		if code != cli.ExitBusy || !strings.Contains(errOut, holder) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%s while train writes the run: exit %d, %q (want %d naming %q)", args[0], code, errOut, cli.ExitBusy, holder)
		}
	}
	reports := t.TempDir()
	if code, _, errOut := runXcept(t, nil, "--config", cfg, "-q", "evaluate", "--run", runDir, "--split", "val", "--out", reports); code != 0 {
		t.Errorf("evaluate --out elsewhere alongside the train: exit %d: %s", code, errOut)
	}
	if rest, err := finish(cmd, lines); err != nil {
		t.Fatalf("the first train: %v: %s", err, rest)
	}
	rows := readCSV(t, filepath.Join(runDir, "history.csv"))
	if len(rows) != 1+3 {
		t.Errorf("history.csv has %d rows, want a header and 3 epochs: %v", len(rows), rows)
	}
	if _, err := os.Stat(filepath.Join(runDir, "report.json")); err == nil {
		t.Errorf("a refused evaluate wrote into the run")
	}
}
