// Package track mirrors a run folder into an MLflow tracking server through
// MLflow's documented REST API: the resolved configuration as parameters,
// every epoch of history.csv as metrics (step = epoch), the figures of
// evaluate and export as metrics, and the run's files as artifacts.
//
// The run folder stays the source of truth. Sync is incremental and
// idempotent: it asks the server what it already has (the metric history,
// the parameters) and sends only the rest, so a server that was down for a
// while, or a second `xcept track`, never duplicates a metric.
package track

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client speaks MLflow's REST API (api/2.0/mlflow) to one tracking server.
type Client struct {
	Base string // http(s)://host:port, no trailing slash
	HTTP *http.Client
}

// NewClient checks that uri is an MLflow server's http(s) address.
func NewClient(uri string) (*Client, error) {
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an MLflow tracking server address: xcept logs through MLflow's REST API, so give http(s)://HOST:PORT of a running `mlflow server`", uri)
	}
	return &Client{Base: strings.TrimRight(uri, "/"), HTTP: &http.Client{Timeout: 10 * time.Second}}, nil
}

// APIError is an error answer of the server.
type APIError struct {
	Status int
	Code   string // MLflow's error_code, e.g. RESOURCE_DOES_NOT_EXIST
	Msg    string
}

func (e *APIError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("MLflow server: %s: %s", e.Code, e.Msg)
	}
	return fmt.Sprintf("MLflow server: HTTP %d: %s", e.Status, e.Msg)
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any, out any) error {
	var rd io.Reader
	if body != nil {
		js, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(js)
	}
	u := c.Base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.send(req, out)
}

func (c *Client) send(req *http.Request, out any) error {
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		e := &APIError{Status: resp.StatusCode}
		var doc struct {
			Code string `json:"error_code"`
			Msg  string `json:"message"`
		}
		if json.Unmarshal(data, &doc) == nil && doc.Code != "" {
			e.Code, e.Msg = doc.Code, doc.Msg
		} else {
			e.Msg = strings.TrimSpace(string(data))
			if len(e.Msg) > 200 {
				e.Msg = e.Msg[:200]
			}
		}
		return e
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	return json.Unmarshal(data, out)
}

// NotFound reports whether err is MLflow's RESOURCE_DOES_NOT_EXIST.
func NotFound(err error) bool {
	e, ok := err.(*APIError)
	return ok && (e.Code == "RESOURCE_DOES_NOT_EXIST" || e.Status == http.StatusNotFound)
}

// ExperimentID returns the id of the experiment called name, creating it.
func (c *Client) ExperimentID(ctx context.Context, name string) (string, error) {
	var got struct {
		Experiment struct {
			ID string `json:"experiment_id"`
		} `json:"experiment"`
	}
	err := c.do(ctx, http.MethodGet, "/api/2.0/mlflow/experiments/get-by-name", url.Values{"experiment_name": {name}}, nil, &got)
	if err == nil {
		return got.Experiment.ID, nil
	}
	if !NotFound(err) {
		return "", err
	}
	var made struct {
		ID string `json:"experiment_id"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/2.0/mlflow/experiments/create", nil, map[string]any{"name": name}, &made); err != nil {
		return "", err
	}
	return made.ID, nil
}

// RunInfo is what the server says of a run.
type RunInfo struct {
	ID           string `json:"run_id"`
	ExperimentID string `json:"experiment_id"`
	ArtifactURI  string `json:"artifact_uri"`
	Status       string `json:"status"`
}

// Param is one run parameter.
type Param struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type runDoc struct {
	Run struct {
		Info RunInfo `json:"info"`
		Data struct {
			Params []Param `json:"params"`
		} `json:"data"`
	} `json:"run"`
}

// CreateRun starts a run in the experiment.
func (c *Client) CreateRun(ctx context.Context, experimentID, name string, tags map[string]string) (RunInfo, error) {
	var ts []Param
	for k, v := range tags {
		ts = append(ts, Param{k, v})
	}
	var got runDoc
	err := c.do(ctx, http.MethodPost, "/api/2.0/mlflow/runs/create", nil, map[string]any{
		"experiment_id": experimentID, "run_name": name, "start_time": time.Now().UnixMilli(), "tags": ts,
	}, &got)
	return got.Run.Info, err
}

// GetRun returns a run's info and its parameters.
func (c *Client) GetRun(ctx context.Context, runID string) (RunInfo, map[string]string, error) {
	var got runDoc
	if err := c.do(ctx, http.MethodGet, "/api/2.0/mlflow/runs/get", url.Values{"run_id": {runID}}, nil, &got); err != nil {
		return RunInfo{}, nil, err
	}
	params := map[string]string{}
	for _, p := range got.Run.Data.Params {
		params[p.Key] = p.Value
	}
	return got.Run.Info, params, nil
}

// Metric is one value of a metric at a step.
type Metric struct {
	Key       string  `json:"key"`
	Value     float64 `json:"value"`
	Timestamp int64   `json:"timestamp"`
	Step      int64   `json:"step"`
}

// MetricHistory returns every logged value of key.
func (c *Client) MetricHistory(ctx context.Context, runID, key string) ([]Metric, error) {
	var got struct {
		Metrics []Metric `json:"metrics"`
	}
	err := c.do(ctx, http.MethodGet, "/api/2.0/mlflow/metrics/get-history", url.Values{"run_id": {runID}, "metric_key": {key}}, nil, &got)
	return got.Metrics, err
}

// MLflow's limits per log-batch request.
const (
	batchMetrics = 1000
	batchParams  = 100
)

// LogBatch sends metrics and parameters, in as many requests as MLflow's
// per-request limits need.
func (c *Client) LogBatch(ctx context.Context, runID string, metrics []Metric, params []Param) error {
	for len(metrics) > 0 || len(params) > 0 {
		m := metrics[:min(len(metrics), batchMetrics)]
		p := params[:min(len(params), batchParams)]
		metrics, params = metrics[len(m):], params[len(p):]
		// MLflow answers 500 to a null list: send only the lists there are.
		body := map[string]any{"run_id": runID}
		if len(m) > 0 {
			body["metrics"] = m
		}
		if len(p) > 0 {
			body["params"] = p
		}
		if err := c.do(ctx, http.MethodPost, "/api/2.0/mlflow/runs/log-batch", nil, body, nil); err != nil {
			return err
		}
	}
	return nil
}

// SetStatus marks the run RUNNING, FINISHED, FAILED or KILLED.
func (c *Client) SetStatus(ctx context.Context, runID, status string) error {
	body := map[string]any{"run_id": runID, "status": status}
	if status != "RUNNING" {
		body["end_time"] = time.Now().UnixMilli()
	}
	return c.do(ctx, http.MethodPost, "/api/2.0/mlflow/runs/update", nil, body, nil)
}

// UploadArtifact stores data as the run's artifact at relPath (slash-separated)
// through the server's artifact proxy (mlflow server serves artifacts by
// default; an artifact root the server does not proxy cannot be reached over
// REST and is reported as such).
func (c *Client) UploadArtifact(ctx context.Context, info RunInfo, relPath string, data io.Reader, size int64) error {
	root, ok := strings.CutPrefix(info.ArtifactURI, "mlflow-artifacts:")
	if !ok {
		return fmt.Errorf("the run's artifact store %s is not served by the tracking server; start `mlflow server` with --serve-artifacts (its default) so that xcept can upload artifacts over REST", info.ArtifactURI)
	}
	// mlflow-artifacts:/PATH or mlflow-artifacts://HOST:PORT/PATH
	if rest, ok := strings.CutPrefix(root, "//"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			root = rest[i:]
		}
	}
	p := "/api/2.0/mlflow-artifacts/artifacts/" + strings.Trim(root, "/") + "/" + escapePath(relPath)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.Base+p, data)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	return c.send(req, nil)
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}
