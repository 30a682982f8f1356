package track

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xcept/xcept/internal/testenv"
)

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

const historyHead = "epoch,phase,loss,accuracy,val_loss,val_accuracy,learning_rate,seconds,images_per_second\n"

// fakeRun is a run folder with what the verbs write into one.
func fakeRun(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "flowers")
	write(t, filepath.Join(dir, "run.json"), `{"format":"xcept-run","version":1}`)
	write(t, filepath.Join(dir, "config.yaml"), "seed: 42\ntrain:\n  epochs: 3\n  learning_rate: 0.001\nmodel:\n  weights: none\n  image_size: 96\n")
	write(t, filepath.Join(dir, "history.csv"), historyHead+
		"1,train,1.1,0.4,1.0,0.5,0.001,1.5,100\n2,train,0.9,0.6,0.8,0.7,0.001,1.4,110\n")
	write(t, filepath.Join(dir, "checkpoints", "best", "ckpt.index"), "not an artifact")
	write(t, filepath.Join(dir, ".lock"), "not an artifact")
	return dir
}

type readBack struct {
	Params     map[string]string       `json:"params"`
	Metrics    map[string][][2]float64 `json:"metrics"`
	Artifacts  []string                `json:"artifacts"`
	Experiment string                  `json:"experiment"`
	RunName    string                  `json:"run_name"`
}

// read asks MLflow's own Python client what the server holds for the run.
func read(t *testing.T, s *testenv.MLflowServer, runID string) readBack {
	t.Helper()
	out, err := exec.Command(testenv.MLflowPython(t), "testdata/read_run.py", s.URI, runID).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("read_run.py: %v: %s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var rb readBack
	if err := json.Unmarshal(out, &rb); err != nil {
		t.Fatalf("read_run.py printed %q: %v", out, err)
	}
	return rb
}

// TestAgainstMLflow runs against one real MLflow server (starting one takes
// seconds): see the subtests.
func TestAgainstMLflow(t *testing.T) {
	srv := testenv.StartMLflow(t)
	t.Run("Sync", func(t *testing.T) { testSync(t, srv) })
	t.Run("LiveSurvivesADeadServer", func(t *testing.T) { testLiveDeadServer(t, srv) })
}

// testSync mirrors a run folder into the server and reads it back with
// MLflow's client: parameters equal config.yaml, metrics equal history.csv
// step by step, figures and artifacts are there, and syncing again (or after
// more epochs) never sends a value twice.
func testSync(t *testing.T, srv *testenv.MLflowServer) {
	dir := fakeRun(t)
	s := Settings{URI: srv.URI, Experiment: "tests"}
	ctx := context.Background()
	sum, err := Sync(ctx, dir, s)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Params != 5 || sum.Metrics != 14 || sum.Artifacts != 3 {
		t.Errorf("first sync sent %+v, want 5 params, 14 metric values (2 epochs × 7), 3 artifacts", sum)
	}
	again, err := Sync(ctx, dir, s)
	if err != nil {
		t.Fatal(err)
	}
	if again.Params+again.Metrics+again.Artifacts != 0 || again.RunID != sum.RunID {
		t.Errorf("second sync sent %+v, want nothing to the same run %s", again, sum.RunID)
	}

	// A finetune epoch, its configuration, a report and an export.
	write(t, filepath.Join(dir, "history.csv"), historyHead+
		"1,train,1.1,0.4,1.0,0.5,0.001,1.5,100\n2,train,0.9,0.6,0.8,0.7,0.001,1.4,110\n3,finetune,0.5,0.8,0.6,0.75,0.0001,3,50\n")
	write(t, filepath.Join(dir, "config-finetune.yaml"), "seed: 42\ntrain:\n  epochs: 3\n  learning_rate: 0.001\nmodel:\n  weights: none\n  image_size: 96\nfinetune:\n  learning_rate: 0.0001\n")
	write(t, filepath.Join(dir, "report.json"), `{"accuracy": 0.9, "macro avg": {"f1-score": 0.85}, "classes": ["a"]}`)
	write(t, filepath.Join(dir, "export", "flowers", "1", "assets.extra", "xcept_export.json"), `{"verification": {"agreement": 1.0}}`)
	third, err := Sync(ctx, dir, s)
	if err != nil {
		t.Fatal(err)
	}
	if third.Params != 1 || third.Metrics != 10 || third.Artifacts != 4 {
		t.Errorf("third sync sent %+v, want 1 param (finetune's learning rate), 7+3 metric values (an epoch, two evaluate figures, one export figure), 4 artifacts", third)
	}

	rb := read(t, srv, sum.RunID)
	wantParams := map[string]string{
		"seed": "42", "train.epochs": "3", "train.learning_rate": "0.001", "model.weights": "none", "model.image_size": "96",
		"finetune_config.finetune.learning_rate": "0.0001",
	}
	if !reflect.DeepEqual(rb.Params, wantParams) {
		t.Errorf("params read back %v, want %v", rb.Params, wantParams)
	}
	if got, want := rb.Metrics["val_accuracy"], [][2]float64{{1, 0.5}, {2, 0.7}, {3, 0.75}}; !reflect.DeepEqual(got, want) {
		t.Errorf("val_accuracy history %v, want %v", got, want)
	}
	for key, want := range map[string][][2]float64{
		"eval/accuracy":                         {{3, 0.9}},
		"eval/macro avg/f1-score":               {{3, 0.85}},
		"export/flowers/verification/agreement": {{3, 1}},
	} {
		if got := rb.Metrics[key]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", key, got, want)
		}
	}
	for key, h := range rb.Metrics {
		steps := map[float64]int{}
		for _, p := range h {
			if steps[p[0]]++; steps[p[0]] > 1 {
				t.Errorf("%s: step %v logged twice: %v", key, p[0], h)
			}
		}
	}
	wantArt := []string{"config-finetune.yaml", "config.yaml", "export/flowers/1/assets.extra/xcept_export.json", "history.csv", "report.json", "run.json"}
	if !reflect.DeepEqual(rb.Artifacts, wantArt) {
		t.Errorf("artifacts %v, want %v", rb.Artifacts, wantArt)
	}
	if rb.Experiment != "tests" || rb.RunName != "flowers" {
		t.Errorf("experiment %q run %q, want tests / flowers", rb.Experiment, rb.RunName)
	}
}

// testLiveDeadServer: with the server gone mid-run, live tracking warns
// once and returns at once; Sync later sends the rest, no duplicates.
func testLiveDeadServer(t *testing.T, srv *testenv.MLflowServer) {
	dir := fakeRun(t)
	s := Settings{URI: srv.URI}
	var mu sync.Mutex
	var warnings []string
	warn := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		warnings = append(warnings, format)
	}
	live := NewLive(dir, s, warn)
	first := live.Finish(time.Minute)
	if first == nil || len(warnings) != 0 {
		t.Fatalf("live sync with the server up: %+v, warnings %v", first, warnings)
	}
	srv.Stop()
	rows := historyHead + "1,train,1.1,0.4,1.0,0.5,0.001,1.5,100\n2,train,0.9,0.6,0.8,0.7,0.001,1.4,110\n"
	for epoch := 3; epoch <= 6; epoch++ {
		rows += strings.Replace("E,train,0.5,0.8,0.6,0.75,0.001,1,100\n", "E", string(rune('0'+epoch)), 1)
		write(t, filepath.Join(dir, "history.csv"), rows)
		start := time.Now()
		live.Kick()
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("Kick took %v with the server down", d)
		}
	}
	start := time.Now()
	live.Finish(30 * time.Second)
	t.Logf("Finish with the server down took %v", time.Since(start))
	if len(warnings) != 1 {
		t.Errorf("%d warnings, want exactly one: %v", len(warnings), warnings)
	}

	srv.Start()
	sum, err := Sync(context.Background(), dir, s)
	if err != nil {
		t.Fatal(err)
	}
	if sum.RunID != first.RunID || sum.Metrics != 4*7 {
		t.Errorf("catch-up sync %+v, want the same run %s and 28 metric values (epochs 3-6)", sum, first.RunID)
	}
	rb := read(t, srv, sum.RunID)
	var steps []float64
	for _, p := range rb.Metrics["loss"] {
		steps = append(steps, p[0])
	}
	sort.Float64s(steps)
	if !reflect.DeepEqual(steps, []float64{1, 2, 3, 4, 5, 6}) {
		t.Errorf("loss logged at steps %v, want 1..6 once each", steps)
	}
}
