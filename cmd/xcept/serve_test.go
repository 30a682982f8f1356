package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/testmodel"
)

func TestServeRefusesBadInput(t *testing.T) {
	empty := t.TempDir()
	file := filepath.Join(empty, "model.pb")
	os.WriteFile(file, []byte("x"), 0o644)
	bare := t.TempDir() // a SavedModel without its version folder: the tutorial's mistake
	os.WriteFile(filepath.Join(bare, "saved_model.pb"), []byte("x"), 0o644)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		want string
	}{
		{"no model", []string{"serve"}, nil, cli.ExitUsage, "--model DIR is required"},
		{"missing folder", []string{"serve", "--model", filepath.Join(empty, "nope")}, nil, cli.ExitData, "no such file or directory"},
		{"a file", []string{"serve", "--model", file}, nil, cli.ExitData, "is a file"},
		{"no version", []string{"serve", "--model", empty}, nil, cli.ExitModel, "has no complete version folder"},
		{"no version folder", []string{"serve", "--model", bare}, nil, cli.ExitModel, "is a SavedModel itself, but serve (like TF Serving) expects version folders: move it to " + filepath.Join(bare, "1")},
		{"negative batch", []string{"serve", "--model", empty, "--max-batch", "-1"}, nil, cli.ExitUsage, "serve.max_batch (--max-batch) -1"},
		{"no workers", []string{"serve", "--model", empty, "--workers", "0"}, nil, cli.ExitUsage, "serve.workers (--workers) 0: want 1 or more"},
		{"bad name", []string{"serve", "--model", empty, "--name", "a/b"}, nil, cli.ExitUsage, `serve.name (--name) "a/b"`},
		{"bad port", []string{"serve", "--model", empty, "--port", "70000"}, nil, cli.ExitUsage, "serve.port (--port) 70000"},
		{"bad duration flag", []string{"serve", "--model", empty, "--batch-timeout", "soon"}, nil, cli.ExitUsage, "invalid argument \"soon\""},
		{"bad duration in the environment", []string{"serve", "--model", empty}, map[string]string{"XCEPT_SERVE_TIMEOUT": "forever"}, cli.ExitUsage,
			`serve.timeout (--timeout) "forever"`},
		{"zero timeout", []string{"serve", "--model", empty, "--timeout", "0s"}, nil, cli.ExitUsage, "serve.timeout (--timeout) 0s: want more than 0"},
		{"request pixels under image pixels", []string{"serve", "--model", empty, "--max-request-pixels", "1000"}, nil, cli.ExitUsage,
			"serve.max_request_pixels (--max-request-pixels) 1000: want at least serve.max_pixels"},
		{"batch pixels under image pixels", []string{"serve", "--model", empty, "--max-batch-pixels", "1000"}, nil, cli.ExitUsage,
			"serve.max_batch_pixels (--max-batch-pixels) 1000: want at least serve.max_pixels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runXcept(t, tt.env, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit %d, stderr %q; want exit %d and one line containing %q", code, stderr, tt.code, tt.want)
			}
		})
	}
}

// Defaults < --config < XCEPT_* < flags, for the serve section.
func TestServeConfigLayers(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("serve:\n  max_batch: 8\n  batch_timeout: 1ms\n  poll: 0\n  max_body_mb: 2.5\n  workers: 3\n"), 0o644)
	t.Setenv("XCEPT_SERVE_BATCH_TIMEOUT", "7ms")
	t.Setenv("XCEPT_SERVE_WORKERS", "2")
	g := &Globals{ConfigFile: cfg, Output: cli.Output{Stdout: io.Discard, Stderr: io.Discard}}
	cmd := NewServeCmd(g)
	if err := cmd.ParseFlags([]string{"--model", dir, "--workers", "4", "--timeout", "3s"}); err != nil {
		t.Fatal(err)
	}
	v, err := g.Config(cmd.Flags(), serveKeys)
	if err != nil {
		t.Fatal(err)
	}
	var o ServeOptions
	o.Server.Dir = dir
	if err := o.fromConfig(v); err != nil {
		t.Fatal(err)
	}
	c := o.Server
	if c.Name != filepath.Base(dir) || o.Host != "127.0.0.1" || o.Port != 8501 {
		t.Errorf("defaults: name %q host %q port %d", c.Name, o.Host, o.Port)
	}
	if c.Batch.MaxBatch != 8 || c.Poll != 0 || c.MaxBodyBytes != 2_500_000 {
		t.Errorf("file: max batch %d, poll %v, body %d", c.Batch.MaxBatch, c.Poll, c.MaxBodyBytes)
	}
	if c.Batch.Timeout != 7*time.Millisecond {
		t.Errorf("environment over file: batch timeout %v, want 7ms", c.Batch.Timeout)
	}
	if c.Batch.Workers != 4 || c.Timeout != 3*time.Second {
		t.Errorf("flags over environment: workers %d, timeout %v", c.Batch.Workers, c.Timeout)
	}
}

func servePNG(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 13)
	}
	img.Set(0, 0, color.RGBA{255, 0, 0, 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The real thing: xcept serve in its own process answers predict requests,
// and on SIGTERM lets a request in flight finish, then exits 0.
func TestServeAnswersAndStopsOnSIGTERM(t *testing.T) {
	dir := testmodel.TinyServingExport(t)
	cmd, line, stderr := startServe(t, "--model", dir, "--port", "0", "--json", "--max-batch", "4", "--poll", "0")
	var ready struct {
		Event, URL, Model, Predict string
		Version                    int64
		Device                     struct{ Device, Type string }
	}
	if err := json.Unmarshal(line, &ready); err != nil || ready.Event != "listening" || ready.Model != "tiny" || ready.Version != 1 ||
		ready.Device.Device != cpu0 || ready.Device.Type != "CPU" {
		t.Fatalf("listening line %q: %v", line, err)
	}
	if !strings.HasPrefix(ready.URL, "http://127.0.0.1:") {
		t.Errorf("listening on %s, want loopback", ready.URL)
	}

	one := `{"b64": "` + base64.StdEncoding.EncodeToString(servePNG(t)) + `"}`
	post := func(n int) (int, []byte) {
		body := `{"instances": [` + strings.TrimSuffix(strings.Repeat(one+",", n), ",") + `]}`
		resp, err := http.Post(ready.Predict, "application/json", strings.NewReader(body))
		if err != nil {
			return 0, []byte(err.Error())
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, data
	}
	code, body := post(1)
	var answer struct {
		Predictions []struct {
			Probabilities []float64
			Classes       []string
		}
	}
	if code != 200 || json.Unmarshal(body, &answer) != nil || len(answer.Predictions) != 1 || len(answer.Predictions[0].Probabilities) != 3 {
		t.Fatalf("predict: %d %s", code, body)
	}

	// A request of 48 images takes the model a while: SIGTERM arrives while it runs.
	type result struct {
		code int
		body []byte
	}
	slow := make(chan result, 1)
	go func() {
		c, b := post(48)
		slow <- result{c, b}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !inFlight(ready.URL) {
		if time.Now().After(deadline) {
			t.Fatal("the request never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	r := <-slow
	if r.code != 200 || !bytes.Contains(r.body, []byte(`"predictions"`)) {
		t.Errorf("the request in flight at SIGTERM: %d %.200s", r.code, r.body)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) || err != nil {
		t.Errorf("after SIGTERM: %v; stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "device CPU:0 ("+cpu0+", runtime.device auto), precision ") ||
		!strings.Contains(stderr.String(), `serving model "tiny" version 1 on http://127.0.0.1:`) || !strings.Contains(stderr.String(), "serve: stopped") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}

// startServe starts `xcept serve args...` in its own process (killed when
// t ends) and returns it, its first stdout line (--json's listening event)
// and its stderr so far and to come; t fails when no line comes.
func startServe(t *testing.T, args ...string) (*exec.Cmd, []byte, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), "XCEPT_TEST_AS_MAIN=1", "XCEPT_RUNTIME_INTRA_OP_THREADS=2")
	stdout, _ := cmd.StdoutPipe()
	stderr := new(bytes.Buffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		cmd.Wait()
		t.Fatalf("xcept serve %s: no listening line; stderr: %s", strings.Join(args, " "), stderr.String())
	}
	return cmd, bytes.Clone(sc.Bytes()), stderr
}

// inFlight reads the metrics: is a request being answered?
func inFlight(url string) bool {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return bytes.Contains(data, []byte("xcept_serve_requests_in_flight 1\n"))
}

// TestServeReject: serve.reject (config key or --reject) adds "unknown"
// and "class" to serving_default's answer by the export's threshold, in
// xcept serve's own process on a real export; an export without a
// threshold is exit 5 with one line.
func TestServeReject(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("serve:\n  reject: true\n"), 0o644)
	for file, args := range map[string][]string{"": {"--model", dir, "--reject"}, cfg: {"--model", dir}} {
		g := &Globals{ConfigFile: file, Output: cli.Output{Stdout: io.Discard, Stderr: io.Discard}}
		cmd := NewServeCmd(g)
		if err := cmd.ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		v, err := g.Config(cmd.Flags(), serveKeys)
		if err != nil {
			t.Fatal(err)
		}
		var o ServeOptions
		o.Server.Dir = dir
		if err := o.fromConfig(v); err != nil || !o.Reject {
			t.Errorf("%v: reject %v, %v", args, o.Reject, err)
		}
	}

	res := exportJSON(t, "--run", trainedRun(t), "--out", t.TempDir(), "--images", "4", "--min-agreement", "0")
	reject := res.Calibration.Reject
	cmd, line, stderr := startServe(t, "--model", filepath.Dir(res.Path), "--port", "0", "--json", "--reject", "--poll", "0")
	var ready struct{ Predict string }
	if err := json.Unmarshal(line, &ready); err != nil {
		t.Fatalf("listening line %q: %v", line, err)
	}
	images, _ := filepath.Glob(filepath.Join(filepath.Dir(trainDataset(t)), "images", "*", "*"))
	var instances []string
	for _, p := range images[:8] {
		instances = append(instances, `{"b64": "`+base64.StdEncoding.EncodeToString(mustRead(t, p))+`"}`)
	}
	resp, err := http.Post(ready.Predict, "application/json", strings.NewReader(`{"instances": [`+strings.Join(instances, ",")+`]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var answer struct {
		Predictions []struct {
			Probabilities []float32
			Classes       []string
			Unknown       *bool
			Class         string
		}
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &answer) != nil || len(answer.Predictions) != 8 {
		t.Fatalf("predict: %d %s", resp.StatusCode, body)
	}
	for i, p := range answer.Predictions {
		top := 0
		for j := range p.Probabilities {
			if p.Probabilities[j] > p.Probabilities[top] {
				top = j
			}
		}
		unknown := reject.Unknown(p.Probabilities)
		want := p.Classes[top]
		if unknown {
			want = "unknown"
		}
		if p.Unknown == nil || *p.Unknown != unknown || p.Class != want {
			t.Errorf("image %d: %v (%s, threshold %v): unknown %v class %q, want %v %q", i, p.Probabilities, reject.Says(p.Probabilities), reject.Threshold, p.Unknown, p.Class, unknown, want)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if !strings.Contains(stderr.String(), `answering "unknown" below `+reject.Describe()+` (version 1's threshold`) {
		t.Errorf("stderr does not name the threshold %+v:\n%s", reject, stderr.String())
	}

	code, _, errOut := runXcept(t, nil, "-q", "serve", "--model", testmodel.TinyServingExport(t), "--reject", "--port", "0")
	if code != cli.ExitModel || !strings.Contains(errOut, `records no "unknown" threshold`) || strings.Count(errOut, "\n") != 1 {
		t.Errorf("an export without a threshold: exit %d, %q; want %d and one line", code, errOut, cli.ExitModel)
	}
}
