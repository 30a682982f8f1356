package track

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/xcept/xcept/internal/run"
)

// StateFile, in the run folder, names the MLflow run that mirrors it and the
// artifacts already uploaded (by content hash).
const StateFile = "mlflow.json"

// Settings say where to track.
type Settings struct {
	URI        string // http(s)://HOST:PORT of an `mlflow server`
	Experiment string // MLflow experiment name; "" is DefaultExperiment
}

// DefaultExperiment is the experiment runs go to unless told otherwise.
const DefaultExperiment = "xcept"

type state struct {
	URI          string            `json:"tracking_uri"`
	ExperimentID string            `json:"experiment_id"`
	RunID        string            `json:"run_id"`
	Artifacts    map[string]string `json:"artifacts"` // slash path -> sha256 uploaded
}

// Summary says what one Sync sent.
type Summary struct {
	RunID     string `json:"mlflow_run_id"`
	Params    int    `json:"params"`
	Metrics   int    `json:"metrics"`
	Artifacts int    `json:"artifacts"`
}

// Sync mirrors the run folder into the MLflow run recorded in it (creating
// one on first use, or when the recorded one is on another server or gone).
// It sends only what the server lacks, so it can be called as often as
// wanted: after every epoch, at the end of a verb, or by `xcept track`.
func Sync(ctx context.Context, runDir string, s Settings) (*Summary, error) {
	c, err := NewClient(s.URI)
	if err != nil {
		return nil, err
	}
	st, err := loadState(runDir)
	if err != nil {
		return nil, err
	}
	info, params, err := c.openRun(ctx, runDir, s, st)
	if err != nil {
		return nil, err
	}
	sum := &Summary{RunID: info.ID}
	if sum.Params, err = c.syncParams(ctx, runDir, info.ID, params); err != nil {
		return sum, err
	}
	if sum.Metrics, err = c.syncMetrics(ctx, runDir, info.ID); err != nil {
		return sum, err
	}
	sum.Artifacts, err = c.syncArtifacts(ctx, runDir, info, st)
	if serr := saveState(runDir, st); err == nil {
		err = serr
	}
	return sum, err
}

func loadState(runDir string) (*state, error) {
	st := &state{Artifacts: map[string]string{}}
	data, err := os.ReadFile(filepath.Join(runDir, StateFile))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("%s: %v; remove it to start a new MLflow run", filepath.Join(runDir, StateFile), err)
	}
	if st.Artifacts == nil {
		st.Artifacts = map[string]string{}
	}
	return st, nil
}

func saveState(runDir string, st *state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return run.WriteFile(filepath.Join(runDir, StateFile), append(data, '\n'))
}

// openRun returns the MLflow run of the folder and its logged parameters.
func (c *Client) openRun(ctx context.Context, runDir string, s Settings, st *state) (RunInfo, map[string]string, error) {
	if st.RunID != "" && st.URI == c.Base {
		info, params, err := c.GetRun(ctx, st.RunID)
		if err == nil {
			return info, params, nil
		}
		if !NotFound(err) {
			return RunInfo{}, nil, err
		}
	}
	exp := s.Experiment
	if exp == "" {
		exp = DefaultExperiment
	}
	expID, err := c.ExperimentID(ctx, exp)
	if err != nil {
		return RunInfo{}, nil, err
	}
	abs, _ := filepath.Abs(runDir)
	info, err := c.CreateRun(ctx, expID, filepath.Base(abs), map[string]string{
		"mlflow.source.name": "xcept", "mlflow.source.type": "LOCAL", "xcept.run_dir": abs,
	})
	if err != nil {
		return RunInfo{}, nil, err
	}
	*st = state{URI: c.Base, ExperimentID: expID, RunID: info.ID, Artifacts: map[string]string{}}
	// Recorded at once: a later failure must not leave a second MLflow run
	// for the same folder behind.
	if err := saveState(runDir, st); err != nil {
		return RunInfo{}, nil, err
	}
	return info, map[string]string{}, nil
}

// FinetunePrefix marks the parameters of config-finetune.yaml that differ
// from config.yaml (MLflow parameters cannot change once logged).
const FinetunePrefix = "finetune_config."

// Params returns the parameters of a run folder: config.yaml flattened to
// dotted keys, and the keys of config-finetune.yaml whose value differs, under
// FinetunePrefix.
func Params(runDir string) (map[string]string, error) {
	base, err := flatConfig(filepath.Join(runDir, run.ConfigFile))
	if err != nil {
		return nil, err
	}
	ft, err := flatConfig(filepath.Join(runDir, "config-finetune.yaml"))
	if err != nil {
		return nil, err
	}
	for k, v := range ft {
		if base[k] != v {
			base[FinetunePrefix+k] = v
		}
	}
	return base, nil
}

func flatConfig(path string) (map[string]string, error) {
	out := map[string]string{}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	flatten("", doc, out)
	return out, nil
}

func flatten(prefix string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			flatten(key, e, out)
		}
	case nil:
		out[prefix] = ""
	default:
		if prefix != "" {
			out[prefix] = fmt.Sprint(x)
		}
	}
}

func (c *Client) syncParams(ctx context.Context, runDir, runID string, logged map[string]string) (int, error) {
	want, err := Params(runDir)
	if err != nil {
		return 0, err
	}
	var send []Param
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if _, ok := logged[k]; !ok {
			send = append(send, Param{k, want[k]})
		}
	}
	return len(send), c.LogBatch(ctx, runID, nil, send)
}

// Metrics returns what a run folder holds as metrics: every history.csv
// column per epoch (step = epoch), and the figures of evaluate (report.json)
// and of each export (its manifest), at the step of the last epoch.
func Metrics(runDir string) ([]Metric, error) {
	ms, last, err := historyMetrics(filepath.Join(runDir, run.HistoryFile))
	if err != nil {
		return nil, err
	}
	figs, err := figures(runDir)
	if err != nil {
		return nil, err
	}
	for _, k := range slices.Sorted(maps.Keys(figs)) {
		ms = append(ms, Metric{Key: k, Value: figs[k], Step: last})
	}
	return ms, nil
}

func historyMetrics(path string) ([]Metric, int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, 0, err
	}
	head := rows[0]
	var ms []Metric
	var last int64
	for _, row := range rows[1:] {
		step, err := strconv.ParseInt(row[0], 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: epoch %q: %v", path, row[0], err)
		}
		last = step
		for i := 2; i < len(row) && i < len(head); i++ {
			v, err := strconv.ParseFloat(row[i], 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			ms = append(ms, Metric{Key: head[i], Value: v, Step: step})
		}
	}
	return ms, last, nil
}

// figures are the numbers of evaluate's report.json (eval/...) and of every
// export's manifest (export/NAME/...), flattened.
func figures(runDir string) (map[string]float64, error) {
	out := map[string]float64{}
	if err := addFigures(filepath.Join(runDir, "report.json"), "eval", out); err != nil {
		return nil, err
	}
	for _, m := range exportManifests(runDir) {
		// export/NAME/export.json, or a SavedModel's export/NAME[/VERSION]/assets.extra/...
		rel, _ := filepath.Rel(filepath.Join(runDir, "export"), m)
		name := strings.Split(filepath.ToSlash(rel), "/")[0]
		if err := addFigures(m, "export/"+metricName(name), out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func exportManifests(runDir string) []string {
	a, _ := filepath.Glob(filepath.Join(runDir, "export", "*", "export.json"))
	b, _ := filepath.Glob(filepath.Join(runDir, "export", "*", "assets.extra", "xcept_export.json"))
	c, _ := filepath.Glob(filepath.Join(runDir, "export", "*", "*", "assets.extra", "xcept_export.json"))
	return append(append(a, b...), c...)
}

func addFigures(path, prefix string, out map[string]float64) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	numbers(prefix, doc, out)
	return nil
}

func numbers(prefix string, v any, out map[string]float64) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			numbers(prefix+"/"+metricName(k), e, out)
		}
	case float64:
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			out[prefix] = x
		}
	}
}

// metricName keeps the characters MLflow allows in a metric name
// (alphanumerics, _ - . space /).
func metricName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("_-. ", r):
			return r
		}
		return '_'
	}, s)
}

// syncMetrics sends each metric value the server does not hold at its step.
// The server's own history decides, so nothing is sent twice even if an
// earlier Sync died between sending and recording.
func (c *Client) syncMetrics(ctx context.Context, runDir, runID string) (int, error) {
	all, err := Metrics(runDir)
	if err != nil {
		return 0, err
	}
	have := map[string]map[int64][]float64{}
	var send []Metric
	now := time.Now().UnixMilli()
	for _, m := range all {
		h, ok := have[m.Key]
		if !ok {
			logged, err := c.MetricHistory(ctx, runID, m.Key)
			if err != nil && !NotFound(err) {
				return 0, err
			}
			h = map[int64][]float64{}
			for _, l := range logged {
				h[l.Step] = append(h[l.Step], l.Value)
			}
			have[m.Key] = h
		}
		if containsValue(h[m.Step], m.Value) {
			continue
		}
		m.Timestamp = now
		send = append(send, m)
	}
	return len(send), c.LogBatch(ctx, runID, send, nil)
}

// containsValue compares as MLflow stores values (float64 through JSON).
func containsValue(vs []float64, v float64) bool {
	for _, x := range vs {
		if x == v || math.Abs(x-v) <= 1e-12*math.Max(1, math.Abs(v)) {
			return true
		}
	}
	return false
}

// skipped are the parts of a run folder that are not artifacts: the
// checkpoints (large, and the run folder keeps them), caches, a dataset
// prepared into the run, locks and temporary files, and this package's state.
func skipped(rel string, d fs.DirEntry) bool {
	base := d.Name()
	if strings.HasPrefix(base, ".") || strings.HasSuffix(base, ".tmp") || base == StateFile {
		return true
	}
	if d.IsDir() {
		return rel == "checkpoints" || rel == "dataset" || rel == "model"
	}
	return false
}

// Artifacts lists the run folder's files to upload, as slash paths.
func Artifacts(runDir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(runDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == runDir {
			return nil
		}
		rel, _ := filepath.Rel(runDir, p)
		rel = filepath.ToSlash(rel)
		if skipped(rel, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			out = append(out, rel)
		}
		return nil
	})
	return out, err
}

func (c *Client) syncArtifacts(ctx context.Context, runDir string, info RunInfo, st *state) (int, error) {
	files, err := Artifacts(runDir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, rel := range files {
		p := filepath.Join(runDir, filepath.FromSlash(rel))
		sum, size, err := fileSHA(p)
		if err != nil {
			return n, err
		}
		if st.Artifacts[rel] == sum {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return n, err
		}
		err = c.UploadArtifact(ctx, info, rel, f, size)
		f.Close()
		if err != nil {
			return n, fmt.Errorf("uploading %s: %w", rel, err)
		}
		st.Artifacts[rel] = sum
		n++
	}
	return n, nil
}

func fileSHA(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}
