package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/demodata"
	"github.com/xcept/xcept/internal/report"
	runs "github.com/xcept/xcept/internal/run"
)

// -update rewrites the golden files. Defined here only when no other test
// file of the package defines it first (package-level flag variables are
// initialised before any init runs).
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files in testdata")
	}
}

func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// evalFixture writes labels.txt and predictions files for the tests: 3
// classes, 10 samples, with probability columns, by class name.
func evalFixture(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	files := map[string]string{
		"labels.txt": "cat\ndog\nowl\n",
		"preds.csv": `file,true,pred,prob:cat,prob:dog,prob:owl
a.jpg,cat,cat,0.8,0.15,0.05
b.jpg,cat,cat,0.6,0.3,0.1
c.jpg,cat,dog,0.3,0.6,0.1
d.jpg,dog,dog,0.1,0.85,0.05
e.jpg,dog,dog,0.2,0.7,0.1
f.jpg,dog,cat,0.5,0.4,0.1
g.jpg,owl,owl,0.05,0.05,0.9
h.jpg,owl,owl,0.1,0.1,0.8
i.jpg,owl,dog,0.2,0.45,0.35
j.jpg,owl,owl,0.1,0.2,0.7
`,
		"by-index.csv":     "true,pred\n0,0\n1,2\n2,2\n",
		"unknown.csv":      "true,pred\ncat,cat\nzebra,cat\n",
		"out-of-range.csv": "true,pred\n0,0\n1,3\n",
		"history.csv":      "epoch,phase,loss,accuracy,val_loss,val_accuracy,learning_rate\n1,train,1.2,0.5,1.3,0.45,0.001\n2,train,0.8,0.7,0.9,0.65,0.001\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestEvaluateExitCodes(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string // substring of the one-line error
	}{
		{"report", []string{"--predictions", "preds.csv", "--labels", "labels.txt", "--out", "out"}, cli.ExitOK, ""},
		{"by index, default out", []string{"--predictions", "by-index.csv", "--labels", "labels.txt"}, cli.ExitOK, ""},
		{"gates pass", []string{"--predictions", "preds.csv", "--labels", "labels.txt", "--out", "out",
			"--min-accuracy", "0.7", "--min-recall", "0.6", "--min-recall", "owl=0.75"}, cli.ExitOK, ""},
		{"gates fail", []string{"--predictions", "preds.csv", "--labels", "labels.txt", "--out", "out",
			"--min-accuracy", "0.8", "--min-recall", "dog=0.7"}, cli.ExitGate,
			`gate failed: accuracy 0.7000 < 0.8000 by 0.1000 (--min-accuracy 0.8); recall of "dog" 0.6667 < 0.7000 by 0.0333 (--min-recall dog=0.7)`},
		{"ece gate fails", []string{"--predictions", "preds.csv", "--labels", "labels.txt", "--out", "out", "--max-ece", "0.01"}, cli.ExitGate,
			"gate failed: expected calibration error 0.2400 > 0.0100 by 0.2300 (--max-ece 0.01)"},
		{"ece gate passes", []string{"--predictions", "preds.csv", "--labels", "labels.txt", "--out", "out", "--max-ece", "0.3"}, cli.ExitOK, ""},
		{"ece not a fraction", []string{"--predictions", "preds.csv", "--labels", "labels.txt", "--max-ece", "5"}, cli.ExitUsage,
			"--max-ece 5: want a fraction from 0 to 1"},
		{"ece without probabilities", []string{"--predictions", "by-index.csv", "--labels", "labels.txt", "--max-ece", "0.1"}, cli.ExitUsage,
			"--max-ece 0.1 needs probabilities: the predictions have no probability columns"},
		{"missing predictions", []string{"--predictions", "nope.csv", "--labels", "labels.txt"}, cli.ExitData,
			"predictions file nope.csv: no such file or directory"},
		{"missing labels", []string{"--predictions", "preds.csv", "--labels", "nope.txt"}, cli.ExitData,
			"labels file nope.txt: no such file or directory"},
		{"missing history", []string{"--predictions", "preds.csv", "--labels", "labels.txt", "--history", "nope.csv", "--out", "out"}, cli.ExitData,
			"history file nope.csv"},
		{"class not in labels", []string{"--predictions", "unknown.csv", "--labels", "labels.txt"}, cli.ExitData,
			`predictions file unknown.csv line 3: true class "zebra" is not in labels.txt`},
		{"index out of range", []string{"--predictions", "out-of-range.csv", "--labels", "labels.txt"}, cli.ExitData,
			`predictions file out-of-range.csv line 3: pred class "3" is not in labels.txt (want one of its 3 names or an index 0-2)`},
		{"gate on unknown class", []string{"--predictions", "preds.csv", "--labels", "labels.txt", "--min-recall", "zebra=0.5"}, cli.ExitUsage,
			`--min-recall zebra=0.5: no class "zebra" among the 3 classes in labels.txt`},
		{"threshold not a fraction", []string{"--predictions", "preds.csv", "--labels", "labels.txt", "--min-accuracy", "90"}, cli.ExitUsage,
			"--min-accuracy 90: want a fraction from 0 to 1"},
		{"no predictions flag", []string{"--labels", "labels.txt"}, cli.ExitUsage, "--predictions FILE is required"},
		{"no labels flag", []string{"--predictions", "preds.csv"}, cli.ExitUsage, "--labels labels.txt is required"},
		{"bad top-k", []string{"--predictions", "preds.csv", "--labels", "labels.txt", "--top-k", "0"}, cli.ExitUsage, "--top-k 0"},
		{"ood without run", []string{"--predictions", "preds.csv", "--labels", "labels.txt", "--ood", "."}, cli.ExitUsage, "--ood needs --run"},
		{"tta without run", []string{"--predictions", "preds.csv", "--labels", "labels.txt", "--tta"}, cli.ExitUsage, "--tta needs --run"},
		{"auroc not a fraction", []string{"--run", "r", "--ood", ".", "--min-ood-auroc", "2"}, cli.ExitUsage, "--min-ood-auroc 2: want a fraction from 0 to 1"},
		{"auroc gate without ood", []string{"--run", "r", "--min-ood-auroc", "0.9"}, cli.ExitUsage, "--min-ood-auroc 0.9 needs --ood DIR"},
		{"missing ood folder", []string{"--run", "r", "--ood", "nope"}, cli.ExitData, "--ood nope: no such folder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(evalFixture(t))
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"evaluate"}, tt.args...), &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, stderr.String())
			}
			if tt.stderr != "" && !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tt.stderr)
			}
			if n := strings.Count(stderr.String(), "\n"); n > 1 {
				t.Errorf("stderr has %d lines, want one: %q", n, stderr.String())
			}
			if tt.code == cli.ExitOK || tt.code == cli.ExitGate {
				out := "out"
				if !contains(tt.args, "--out") {
					out = "by-index-report"
				}
				for _, f := range []string{"predictions.csv", "report.txt", "report.json", "confusion.csv", "confusion.png", "report.html"} {
					if _, err := os.Stat(filepath.Join(out, f)); err != nil {
						t.Errorf("%s not written: %v", f, err)
					}
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestEvaluateRefusesToOverwriteItsInput(t *testing.T) {
	dir := evalFixture(t)
	t.Chdir(dir)
	var stdout, stderr bytes.Buffer
	args := []string{"evaluate", "--predictions", "preds.csv", "--labels", "labels.txt", "--out", "out"}
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	// Evaluating the written predictions.csv again into the same folder
	// would replace the file being read.
	stderr.Reset()
	args = []string{"evaluate", "--predictions", "out/predictions.csv", "--labels", "labels.txt", "--out", "out"}
	if code := run(context.Background(), args, &stdout, &stderr); code != cli.ExitUsage ||
		!strings.Contains(stderr.String(), "would overwrite the input") {
		t.Errorf("exit %d, stderr %q; want a usage error", code, stderr.String())
	}
	// Into another folder it reads back to the same report.
	args = []string{"evaluate", "--predictions", "out/predictions.csv", "--labels", "labels.txt", "--out", "again"}
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	first, _ := os.ReadFile("out/report.json")
	second, _ := os.ReadFile("again/report.json")
	if !bytes.Equal(first, second) {
		t.Errorf("report.json differs after reading predictions.csv back:\n%s\n%s", first, second)
	}
}

// TestEvaluateOutput pins what people and scripts read on stdout.
func TestEvaluateOutput(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		golden string
	}{
		{"text", []string{"--min-accuracy", "0.8", "--min-recall", "0.6"}, "evaluate_text.golden"},
		{"json", []string{"--json", "--top-k", "2", "--history", "history.csv"}, "evaluate_json.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wd, _ := os.Getwd()
			golden := filepath.Join(wd, "testdata", tt.golden)
			t.Chdir(evalFixture(t))
			var stdout, stderr bytes.Buffer
			args := append([]string{"evaluate", "--predictions", "preds.csv", "--labels", "labels.txt", "--out", "out"}, tt.args...)
			run(context.Background(), args, &stdout, &stderr)
			if tt.name == "json" {
				var s map[string]any
				if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
					t.Fatalf("--json output is not JSON: %v", err)
				}
				if s["accuracy"] != 0.7 || s["top_k_accuracy"] != 1.0 || s["k"] != 2.0 {
					t.Errorf("summary accuracy %v, top-k %v (k %v)", s["accuracy"], s["top_k_accuracy"], s["k"])
				}
				if _, err := os.Stat("out/curves.png"); err != nil {
					t.Errorf("--history given but no curves.png: %v", err)
				}
			}
			compareGolden(t, golden, stdout.Bytes())
		})
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if updating() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/xcept -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (rerun with -update if intended)\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

// testEvaluateRun evaluates the trained run on its test and validation
// splits and on a labelled folder.
func testEvaluateRun(t *testing.T, runDir string) {
	out := t.TempDir()
	code, stdout, stderr := runXcept(t, nil, "evaluate", "--run", runDir, "--confusion", "--out", filepath.Join(out, "test"))
	if code != 0 {
		t.Fatalf("evaluate --run: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "report: "+filepath.Join(out, "test", "report.html")) || !strings.Contains(stdout, "weighted avg") {
		t.Errorf("text summary:\n%s", stdout)
	}
	r, err := runs.Open(runDir)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := dataset.ReadManifest(r.Info.Dataset)
	if err != nil {
		t.Fatal(err)
	}
	records := map[string]int{}
	for _, s := range ds.Splits {
		records[s.Name] = s.Records
	}
	rows := readCSV(t, filepath.Join(out, "test", "predictions.csv"))
	if len(rows)-1 != records["test"] {
		t.Errorf("predictions.csv has %d rows, the test split %d records", len(rows)-1, records["test"])
	}
	for _, f := range []string{"report.txt", "report.json", "confusion.csv", "confusion.png", "curves.png", "report.html"} {
		if _, err := os.Stat(filepath.Join(out, "test", f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	page, _ := os.ReadFile(filepath.Join(out, "test", "report.html"))
	if !bytes.Contains(page, []byte(`id="gallery"`)) || !bytes.Contains(page, []byte("data:image/jpeg;base64,")) {
		t.Error("report.html has no gallery of mistakes with the records' images")
	}

	// On the validation split, the best checkpoint must score what training
	// measured for it: the same images, unaugmented, the same weights.
	code, stdout, stderr = runXcept(t, nil, "--json", "evaluate", "--run", runDir, "--split", "val", "--out", filepath.Join(out, "val"))
	var sum report.Summary
	if code != 0 || json.Unmarshal([]byte(stdout), &sum) != nil {
		t.Fatalf("--split val --json: exit %d: %s %s", code, stdout, stderr)
	}
	var state struct {
		BestEpoch int `json:"best_epoch"`
	}
	if err := r.LoadState("best", &state); err != nil {
		t.Fatal(err)
	}
	history := readCSV(t, r.Path("history.csv"))
	valAccuracy, _ := strconv.ParseFloat(history[state.BestEpoch][5], 64)
	if history[0][5] != "val_accuracy" || sum.Samples != records["val"] || math.Abs(sum.Accuracy-valAccuracy) > 1e-6 {
		t.Errorf("val accuracy %.6f on %d images; training recorded %s %.6f at the best epoch %d",
			sum.Accuracy, sum.Samples, history[0][5], valAccuracy, state.BestEpoch)
	}
	t.Logf("best epoch %d: val accuracy %.4f (training said %.4f)", state.BestEpoch, sum.Accuracy, valAccuracy)

	// A labelled folder: images decoded and resized as prepare does; an
	// unreadable one is skipped with a warning.
	folder := t.TempDir()
	for _, p := range quadrantImages(t, 2, 55) {
		class := filepath.Base(filepath.Dir(p))
		os.MkdirAll(filepath.Join(folder, class), 0o755)
		os.WriteFile(filepath.Join(folder, class, filepath.Base(p)), mustRead(t, p), 0o644)
	}
	os.WriteFile(filepath.Join(folder, "square", "broken.jpg"), []byte("not a jpeg"), 0o644)
	code, stdout, stderr = runXcept(t, nil, "--json", "evaluate", "--run", runDir, "--split", folder, "--out", filepath.Join(out, "folder"))
	sum = report.Summary{}
	if code != 0 || json.Unmarshal([]byte(stdout), &sum) != nil || sum.Samples != 6 {
		t.Errorf("--split DIR: exit %d, %d samples, want 6: %s", code, sum.Samples, stderr)
	}
	if !strings.Contains(stderr, "skipped "+filepath.Join(folder, "square", "broken.jpg")+": not-an-image") {
		t.Errorf("the broken file was not reported: %q", stderr)
	}
}

// testEvaluateRunExitCodes: gates (3), bad paths and class mismatches (4),
// bad flags (2), in --run mode.
func testEvaluateRunExitCodes(t *testing.T, runDir string) {
	dir := t.TempDir()
	// A labelled folder with a class the model does not know.
	zebra := filepath.Join(dir, "zebra-folder")
	os.MkdirAll(filepath.Join(zebra, "zebra"), 0o755)
	os.WriteFile(filepath.Join(zebra, "zebra", "z.png"), mustRead(t, quadrantImages(t, 1, 66)[0]), 0o644)
	// A run whose dataset has other classes than its model: two classes.
	gen := demodata.Defaults()
	gen.Classes, gen.PerClass, gen.Width, gen.Height = 2, 12, quadrantSize, quadrantSize
	twoDS := tempDemoDataset(t, gen, 128, "")
	r, _ := runs.Open(runDir)
	mismatched := filepath.Join(dir, "mismatched")
	info := r.Info
	info.Dataset = twoDS
	if _, err := runs.Create(mismatched, info); err != nil {
		t.Fatal(err)
	}
	notRun := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"gate fails", []string{"--run", runDir, "--min-accuracy", "1"}, cli.ExitGate, "gate failed: accuracy"},
		{"gate passes", []string{"--run", runDir, "--min-accuracy", "0.4", "--min-recall", "circle=0.01"}, cli.ExitOK, ""},
		{"gate on unknown class", []string{"--run", runDir, "--min-recall", "zebra=0.5"}, cli.ExitUsage, `no class "zebra"`},
		{"missing run", []string{"--run", filepath.Join(dir, "nope")}, cli.ExitData, "no such run folder"},
		{"not a run", []string{"--run", notRun}, cli.ExitData, "not an xcept run"},
		{"missing split folder", []string{"--run", runDir, "--split", filepath.Join(dir, "nope")}, cli.ExitData, "--split " + filepath.Join(dir, "nope") + ": no such folder"},
		{"unknown class folder", []string{"--run", runDir, "--split", zebra}, cli.ExitData, `class folder "zebra" is not a class of the model`},
		{"dataset of other classes", []string{"--run", mismatched}, cli.ExitData, "the model has 3 classes (circle, square, triangle) but the dataset"},
		{"run and predictions", []string{"--run", runDir, "--predictions", "p.csv"}, cli.ExitUsage, "exclude each other"},
		{"labels with run", []string{"--run", runDir, "--labels", "l.txt"}, cli.ExitUsage, "--labels is for --predictions"},
		{"bad batch", []string{"--run", runDir, "--batch", "0"}, cli.ExitUsage, "--batch 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runXcept(t, nil, append([]string{"evaluate", "--out", filepath.Join(dir, "out")}, tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.want)
			}
			// Besides the start line naming the device (issue 18), one line at most.
			rest := regexp.MustCompile(`(?m)^device .*\n`).ReplaceAllString(stderr, "")
			if n := strings.Count(rest, "\n"); n > 1 {
				t.Errorf("stderr has %d lines besides the device line, want one: %q", n, stderr)
			}
		})
	}
}
