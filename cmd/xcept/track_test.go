package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/testenv"
	"github.com/xcept/xcept/internal/track"
)

// mlflowRun is what MLflow's own Python client reads back of a run.
type mlflowRun struct {
	Params    map[string]string       `json:"params"`
	Metrics   map[string][][2]float64 `json:"metrics"`
	Artifacts []string                `json:"artifacts"`
}

func readMLflow(t *testing.T, srv *testenv.MLflowServer, runID string) mlflowRun {
	t.Helper()
	out, err := exec.Command(testenv.MLflowPython(t), "../../internal/track/testdata/read_run.py", srv.URI, runID).Output()
	if err != nil {
		t.Fatalf("read_run.py: %v", err)
	}
	var r mlflowRun
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func mlflowRunID(t *testing.T, runDir string) string {
	t.Helper()
	var st struct {
		RunID string `json:"run_id"`
	}
	readJSON(t, filepath.Join(runDir, track.StateFile), &st)
	if st.RunID == "" {
		t.Fatalf("%s names no MLflow run", track.StateFile)
	}
	return st.RunID
}

// checkAgainstFolder: the parameters are config.yaml's, and every
// history.csv value is logged once, at its epoch.
// MLflow parameters never change once logged, so after a second finetune
// with other settings only the keys of finetune_config.* are compared (when
// firstFinetune is false).
func checkAgainstFolder(t *testing.T, runDir string, got mlflowRun, firstFinetune bool) {
	t.Helper()
	params, err := track.Params(runDir)
	if err != nil {
		t.Fatal(err)
	}
	if !firstFinetune {
		for k := range params {
			if strings.HasPrefix(k, track.FinetunePrefix) {
				if _, ok := got.Params[k]; ok {
					params[k] = got.Params[k]
				}
			}
		}
	}
	if !reflect.DeepEqual(got.Params, params) {
		t.Errorf("MLflow params differ from the run's configuration:\n got %v\nwant %v", got.Params, params)
	}
	rows := readCSV(t, filepath.Join(runDir, "history.csv"))
	head := rows[0]
	for col := 2; col < len(head); col++ {
		var want [][2]float64
		for _, r := range rows[1:] {
			step, _ := strconv.ParseFloat(r[0], 64)
			v, _ := strconv.ParseFloat(r[col], 64)
			want = append(want, [2]float64{step, v})
		}
		h := append([][2]float64(nil), got.Metrics[head[col]]...)
		sort.Slice(h, func(i, j int) bool { return h[i][0] < h[j][0] })
		if !reflect.DeepEqual(h, want) {
			t.Errorf("metric %s in MLflow %v, history.csv %v", head[col], h, want)
		}
	}
}

// TestMLflowTracking: train, finetune, evaluate and export with
// MLFLOW_TRACKING_URI set, against a real `mlflow server`, read back with
// MLflow's client; then a finetune with the server down finishes normally
// with one warning, and `xcept track` sends the rest with no duplicates.
func TestMLflowTracking(t *testing.T) {
	srv := testenv.StartMLflow(t)
	ds := trainDataset(t)
	runDir := filepath.Join(t.TempDir(), "runs", "tracked")
	cfg := writeTrainConfig(t, "")
	env := map[string]string{"MLFLOW_TRACKING_URI": srv.URI, "MLFLOW_EXPERIMENT_NAME": "xcept-tests"}
	for _, args := range [][]string{
		{"train", "--data", ds, "--run", runDir, "--epochs", "3"},
		{"finetune", "--run", runDir, "--epochs", "1"},
		{"evaluate", "--run", runDir},
		{"export", "--run", runDir, "--images", "16"},
	} {
		code, _, stderr := runXcept(t, env, append([]string{"--config", cfg, "-q"}, args...)...)
		if code != 0 || strings.Contains(stderr, "mlflow") {
			t.Fatalf("%s: exit %d: %s", args[0], code, stderr)
		}
	}
	id := mlflowRunID(t, runDir)
	got := readMLflow(t, srv, id)
	checkAgainstFolder(t, runDir, got, true)
	if _, ok := got.Metrics["eval/accuracy"]; !ok {
		t.Errorf("evaluate's accuracy is not in MLflow: %v", keys(got.Metrics))
	}
	for _, want := range []string{"history.csv", "config.yaml", "config-finetune.yaml", "report.html", "report.json", "confusion.png", "curves.png"} {
		if !contains(got.Artifacts, want) {
			t.Errorf("artifact %s missing from MLflow: %v", want, got.Artifacts)
		}
	}
	if !hasPrefix(got.Artifacts, "export/tracked/1/saved_model.pb") {
		t.Errorf("the export is not in MLflow's artifacts: %v", got.Artifacts)
	}

	srv.Stop()
	code, _, stderr := runXcept(t, env, "--config", cfg, "-q", "finetune", "--run", runDir, "--epochs", "2")
	if code != 0 {
		t.Fatalf("finetune with the tracking server down: exit %d: %s", code, stderr)
	}
	if n := strings.Count(stderr, "warning: mlflow"); n != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("server down: %d lines about mlflow, want one:\n%s", n, stderr)
	}
	srv.Start()
	code, stdout, stderr := runXcept(t, env, "track", "--run", runDir)
	if code != 0 {
		t.Fatalf("track: exit %d: %s", code, stderr)
	}
	t.Log(strings.TrimSpace(stdout))
	checkAgainstFolder(t, runDir, readMLflow(t, srv, id), false)
	code, stdout, _ = runXcept(t, env, "--json", "track", "--run", runDir)
	var again track.Summary
	if code != 0 || json.Unmarshal([]byte(stdout), &again) != nil || again.Metrics+again.Params+again.Artifacts != 0 {
		t.Errorf("a second track sent %s (exit %d), want nothing", stdout, code)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func hasPrefix(list []string, s string) bool {
	for _, x := range list {
		if strings.HasPrefix(x, s) {
			return true
		}
	}
	return false
}

// TestTrackRefusesBadInput: no server, a non-http address, not a run.
func TestTrackRefusesBadInput(t *testing.T) {
	t.Setenv("MLFLOW_TRACKING_URI", "")
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"track", "--run", dir}, 2, "no tracking server"},
		{[]string{"track", "--run", dir, "--mlflow-uri", "file:./mlruns"}, 2, "tracking.mlflow_uri"},
		{[]string{"track", "--mlflow-uri", "http://127.0.0.1:9"}, 2, "--run DIR is required"},
		{[]string{"track", "--run", dir, "--mlflow-uri", "http://127.0.0.1:9"}, 4, "not an xcept run"},
	} {
		code, _, stderr := runXcept(t, nil, c.args...)
		if code != c.code || !strings.Contains(stderr, c.msg) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d %q, want %d and one line with %q", c.args, code, stderr, c.code, c.msg)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
