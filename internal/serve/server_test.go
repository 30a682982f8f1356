package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xcept/xcept/internal/contract"
)

// predictions decodes a row response of serving_default.
type rowAnswer struct {
	Predictions []struct {
		Probabilities []float32 `json:"probabilities"`
		Classes       []string  `json:"classes"`
	} `json:"predictions"`
}

type columnarAnswer struct {
	Outputs struct {
		Probabilities [][]float32 `json:"probabilities"`
		Classes       [][]string  `json:"classes"`
	} `json:"outputs"`
}

func decode[T any](t testing.TB, r response) T {
	t.Helper()
	var v T
	if r.code != http.StatusOK {
		t.Fatalf("status %d: %s", r.code, r.body)
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	return v
}

func imageBody(imgs ...[]byte) string {
	parts := make([]string, len(imgs))
	for i, img := range imgs {
		parts[i] = `{"b64": "` + b64(img) + `"}`
	}
	return `{"instances": [` + strings.Join(parts, ", ") + `]}`
}

// The documented request layouts get answers in TF Serving's shapes, with
// each row's outputs computed from that row's image.
func TestServerAnswersInTFServingShapes(t *testing.T) {
	s, _ := fakeServer(t, fakeConfig(fakeDir(t, 1)), nil)
	ts := startServer(t, s)
	url := ts.URL + "/v1/models/shapes:predict"
	imgs := [][]byte{pngBytes(t, testImage(5, 4, 1)), jpegBytes(t, testImage(8, 8, 2)), pngBytes(t, testImage(3, 9, 3))}

	row := decode[rowAnswer](t, do(t, ts.Client(), "POST", url, imageBody(imgs...)))
	if len(row.Predictions) != len(imgs) {
		t.Fatalf("%d predictions for %d instances", len(row.Predictions), len(imgs))
	}
	for i, p := range row.Predictions {
		if !slices.Equal(p.Probabilities, fakeProbs(imgs[i], 1)) || !slices.Equal(p.Classes, fakeClasses) {
			t.Errorf("prediction %d = %+v, want the probabilities of image %d", i, p, i)
		}
	}

	named := `{"signature_name": "serving_default", "instances": [{"image_bytes": {"b64": "` + b64(imgs[0]) + `"}}]}`
	if got := decode[rowAnswer](t, do(t, ts.Client(), "POST", url, named)); !slices.Equal(got.Predictions[0].Probabilities, fakeProbs(imgs[0], 1)) {
		t.Errorf("named instance: %+v", got)
	}

	col := decode[columnarAnswer](t, do(t, ts.Client(), "POST", url,
		`{"inputs": {"image_bytes": [{"b64": "`+b64(imgs[1])+`"}, {"b64": "`+b64(imgs[2])+`"}]}}`))
	if len(col.Outputs.Probabilities) != 2 || !slices.Equal(col.Outputs.Probabilities[1], fakeProbs(imgs[2], 1)) || !slices.Equal(col.Outputs.Classes[0], fakeClasses) {
		t.Errorf("columnar: %+v", col)
	}

	// One output: bare values, not objects.
	r := do(t, ts.Client(), "POST", url, `{"signature_name": "predict_images", "instances": [`+nested(4, 4, 3, 0.5)+`]}`)
	one := decode[struct{ Predictions [][]float32 }](t, r)
	if len(one.Predictions) != 1 || len(one.Predictions[0]) != 3 {
		t.Errorf("one output, row layout: %s", r.body)
	}
	r = do(t, ts.Client(), "POST", url, `{"signature_name": "two_inputs", "inputs": {"a": [[1, 2], [3, 4]], "b": [10, 20]}}`)
	if got := decode[struct{ Outputs []float64 }](t, r); !slices.Equal(got.Outputs, []float64{12, 32}) {
		t.Errorf("two inputs, columnar: %s", r.body)
	}
	// A scalar output (never batched) in the columnar layout.
	r = do(t, ts.Client(), "POST", url, `{"signature_name": "total", "inputs": [1, 2, 3]}`)
	if got := decode[struct{ Outputs int64 }](t, r); got.Outputs != 6 {
		t.Errorf("scalar output: %s", r.body)
	}
	r = do(t, ts.Client(), "POST", url, `{"signature_name": "echo", "instances": [true]}`)
	if !strings.Contains(string(r.body), `{"out_bytes": {"b64": "/wAA"}, "text": "true \"quoted\""}`) {
		t.Errorf("binary output: %s", r.body)
	}
	if r.version != "1" {
		t.Errorf("X-Xcept-Model-Version %q, want 1", r.version)
	}
}

func TestStatusAndMetadata(t *testing.T) {
	dir := fakeDir(t, 1, 3)
	if err := os.MkdirAll(filepath.Join(dir, "7"), 0o755); err != nil { // incomplete: ignored
		t.Fatal(err)
	}
	s, _ := fakeServer(t, fakeConfig(dir), nil)
	ts := startServer(t, s)
	r := do(t, ts.Client(), "GET", ts.URL+"/v1/models/shapes", "")
	want := `{
 "model_version_status": [
  {
   "version": "3",
   "state": "AVAILABLE",
   "status": {
    "error_code": "OK",
    "error_message": ""
   }
  }
 ]
}
`
	if r.code != 200 || string(r.body) != want {
		t.Errorf("status: %d\n%s\nwant\n%s", r.code, r.body, want)
	}
	if r := do(t, ts.Client(), "GET", ts.URL+"/v1/models/shapes/versions/3", ""); r.code != 200 {
		t.Errorf("status of version 3: %d %s", r.code, r.body)
	}
	r = do(t, ts.Client(), "GET", ts.URL+"/v1/models/shapes/metadata", "")
	if r.code != 200 {
		t.Fatalf("metadata: %d %s", r.code, r.body)
	}
	golden(t, "metadata.golden", r.body)
	if r := do(t, ts.Client(), "GET", ts.URL+"/v1/models/shapes/versions/3/metadata", ""); r.code != 200 {
		t.Errorf("metadata of version 3: %d %s", r.code, r.body)
	}
}

// URLs and methods as TF Serving routes them, with its error statuses.
func TestRoutesAndErrors(t *testing.T) {
	s, _ := fakeServer(t, fakeConfig(fakeDir(t, 1)), nil)
	ts := startServer(t, s)
	img := imageBody(pngBytes(t, testImage(4, 4, 1)))
	tests := []struct {
		method, path, body string
		code               int
		message            string
	}{
		{"POST", "/v1/models/shapes:predict", img, 200, ""},
		{"POST", "/v1/models/shapes/versions/1:predict", img, 200, ""},
		{"POST", "/V1/Models/shapes:PREDICT", img, 200, ""},
		{"POST", "/v1/models/shapes/versions/2:predict", img, 404, "Servable not found for request: Specific(shapes, 2)"},
		{"POST", "/v1/models/flowers:predict", img, 404, "Servable not found for request: Latest(flowers)"},
		{"POST", "/v1/models/shapes/labels/stable:predict", img, 400, "Unrecognized servable version label: stable"},
		{"POST", "/v1/models/shapes/versions/99999999999999999999:predict", img, 400, "Failed to convert version"},
		{"POST", "/v1/models/shapes:classify", `{"examples": []}`, 400, "classify needs a classify signature"},
		{"POST", "/v1/models/shapes:predict", `{"instances": [1]`, 400, "JSON Parse error"},
		{"POST", "/v1/models/shapes:predict", `{"signature_name": "nope", "instances": [1]}`, 400, `Serving signature name: "nope" not found`},
		{"GET", "/v1/models/shapes:predict", "", 400, "Malformed request: GET /v1/models/shapes:predict"},
		{"POST", "/v1/models/shapes/metadata", "", 400, "Malformed request"},
		{"GET", "/v1/foo", "", 400, "Malformed request"},
		{"GET", "/v1/models", "", 400, "Missing model name in request."},
		{"GET", "/v1/models/flowers", "", 404, "Could not find any versions of model flowers"},
		{"GET", "/v1/models/shapes/versions/5", "", 404, "Could not find version 5 of model shapes"},
		{"GET", "/v1/models/shapes/versions/5/metadata", "", 404, "Servable not found for request: Specific(shapes, 5)"},
		{"GET", "/v1/models/flowers/metadata", "", 404, "Servable not found for request: Latest(flowers)"},
		{"GET", "/index.html", "", 404, "no such path /index.html"},
		{"DELETE", "/v1/models/shapes", "", 400, "Malformed request: DELETE"},
	}
	for _, tt := range tests {
		r := do(t, ts.Client(), tt.method, ts.URL+tt.path, tt.body)
		if r.code != tt.code {
			t.Errorf("%s %s: status %d, want %d: %s", tt.method, tt.path, r.code, tt.code, r.body)
			continue
		}
		if tt.code != 200 {
			if msg := r.errorMessage(t); !strings.Contains(msg, tt.message) {
				t.Errorf("%s %s: error %q, want it to contain %q", tt.method, tt.path, msg, tt.message)
			}
		}
	}
}

func TestBodyLimit(t *testing.T) {
	cfg := fakeConfig(fakeDir(t, 1))
	cfg.MaxBodyBytes = 1000
	s, _ := fakeServer(t, cfg, nil)
	ts := startServer(t, s)
	big := imageBody(pngBytes(t, testImage(4, 4, 1))) + strings.Repeat(" ", 1000)
	r := do(t, ts.Client(), "POST", ts.URL+"/v1/models/shapes:predict", big)
	if r.code != http.StatusRequestEntityTooLarge || !strings.Contains(r.errorMessage(t), "over the limit of 0.0 MB (serve.max_body_mb)") {
		t.Errorf("%d %s", r.code, r.body)
	}
	// Without Content-Length (chunked), the limit holds while reading.
	req, _ := http.NewRequest("POST", ts.URL+"/v1/models/shapes:predict", struct{ *strings.Reader }{strings.NewReader(big)})
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body over the limit: %d", resp.StatusCode)
	}
}

func TestHealthz(t *testing.T) {
	s, _ := fakeServer(t, fakeConfig(fakeDir(t, 4)), nil)
	ts := startServer(t, s)
	r := do(t, ts.Client(), "GET", ts.URL+"/healthz", "")
	if r.code != 200 || string(r.body) != `{"status": "ok", "model": "shapes", "version": "4"}`+"\n" {
		t.Errorf("%d %s", r.code, r.body)
	}
}

// Concurrent requests become one run; each gets its own rows back.
func TestBatchingJoinsConcurrentRequests(t *testing.T) {
	cfg := fakeConfig(fakeDir(t, 1))
	cfg.Batch = BatchConfig{MaxBatch: 4, Timeout: 50 * time.Millisecond, Workers: 1, MaxQueue: 64}
	s, l := fakeServer(t, cfg, nil)
	ts := startServer(t, s)
	m := l.model(1)
	m.resetBatches()
	const n = 9
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img := pngBytes(t, testImage(4+i, 4, i))
			r := do(t, ts.Client(), "POST", ts.URL+"/v1/models/shapes:predict", imageBody(img))
			var got rowAnswer
			if r.code != 200 || json.Unmarshal(r.body, &got) != nil || !slices.Equal(got.Predictions[0].Probabilities, fakeProbs(img, 1)) {
				errs <- fmt.Sprintf("request %d: %d %s", i, r.code, r.body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	sizes := m.batchSizes()
	total := 0
	for _, b := range sizes {
		total += b
		if b > 4 {
			t.Errorf("a run of %d rows, over MaxBatch 4", b)
		}
	}
	if total != n || len(sizes) >= n {
		t.Errorf("runs %v: want %d rows in fewer than %d runs", sizes, n, n)
	}
}

// A request larger than MaxBatch is split into runs and joined in order.
func TestLargeRequestIsSplit(t *testing.T) {
	s, l := fakeServer(t, fakeConfig(fakeDir(t, 1)), nil) // MaxBatch 4
	ts := startServer(t, s)
	l.model(1).resetBatches()
	var imgs [][]byte
	for i := range 10 {
		imgs = append(imgs, pngBytes(t, testImage(3, 3, i)))
	}
	got := decode[rowAnswer](t, do(t, ts.Client(), "POST", ts.URL+"/v1/models/shapes:predict", imageBody(imgs...)))
	for i, p := range got.Predictions {
		if !slices.Equal(p.Probabilities, fakeProbs(imgs[i], 1)) {
			t.Errorf("row %d is not image %d's", i, i)
		}
	}
	if sizes := l.model(1).batchSizes(); !slices.Equal(sizes, []int{4, 4, 2}) {
		t.Errorf("runs %v, want [4 4 2]", sizes)
	}
}

// With batching off every request is exactly one run.
func TestBatchingOff(t *testing.T) {
	cfg := fakeConfig(fakeDir(t, 1))
	cfg.Batch.MaxBatch = 0
	s, l := fakeServer(t, cfg, nil)
	ts := startServer(t, s)
	l.model(1).resetBatches()
	imgs := [][]byte{pngBytes(t, testImage(3, 3, 1)), pngBytes(t, testImage(3, 3, 2)), pngBytes(t, testImage(3, 3, 3))}
	for _, n := range []int{1, 3, 2} {
		decode[rowAnswer](t, do(t, ts.Client(), "POST", ts.URL+"/v1/models/shapes:predict", imageBody(imgs[:n]...)))
	}
	if sizes := l.model(1).batchSizes(); !slices.Equal(sizes, []int{1, 3, 2}) {
		t.Errorf("runs %v, want [1 3 2]", sizes)
	}
}

// An image TensorFlow refuses past its header fails only its own request,
// not the others batched with it.
func TestBadImageFailsOnlyItsRequest(t *testing.T) {
	cfg := fakeConfig(fakeDir(t, 1))
	cfg.Batch = BatchConfig{MaxBatch: 8, Timeout: 100 * time.Millisecond, Workers: 1, MaxQueue: 64}
	s, l := fakeServer(t, cfg, nil)
	ts := startServer(t, s)
	l.model(1).resetBatches()
	corrupt := append(pngBytes(t, testImage(4, 4, 9)), "CORRUPT"...)
	var wg sync.WaitGroup
	codes := make([]int, 4)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img := pngBytes(t, testImage(4, 4, i))
			if i == 2 {
				img = corrupt
			}
			codes[i] = do(t, ts.Client(), "POST", ts.URL+"/v1/models/shapes:predict", imageBody(img)).code
		}()
	}
	wg.Wait()
	if !slices.Equal(codes, []int{200, 200, 400, 200}) {
		t.Errorf("codes %v, want only the corrupt image's request to fail", codes)
	}
	if sizes := l.model(1).batchSizes(); sizes[0] < 2 {
		t.Logf("runs %v: the requests were not batched together this time", sizes)
	}
}

// A full queue answers 503 at once; a request that waits longer than the
// timeout answers 504; the server then carries on.
func TestQueueFullAndTimeout(t *testing.T) {
	cfg := fakeConfig(fakeDir(t, 1))
	cfg.Batch = BatchConfig{MaxBatch: 1, Workers: 1, MaxQueue: 2}
	cfg.Timeout = 300 * time.Millisecond
	s, l := fakeServer(t, cfg, nil)
	ts := startServer(t, s)
	release := l.model(1).hold()
	defer release()
	body := imageBody(pngBytes(t, testImage(4, 4, 1)))
	codes := make(chan int, 6)
	for range 6 {
		go func() { codes <- do(t, ts.Client(), "POST", ts.URL+"/v1/models/shapes:predict", body).code }()
	}
	got := map[int]int{}
	for range 6 {
		got[<-codes]++
	}
	// One run in flight, one taken by the worker waiting for a slot... at
	// most 1 + 1 + MaxQueue requests wait; the rest are refused.
	if got[http.StatusServiceUnavailable] < 2 || got[http.StatusGatewayTimeout] < 1 || got[503]+got[504] != 6 {
		t.Errorf("codes %v: want 503s for the overflow and 504s for the rest", got)
	}
	release()
	waitFor(t, "the queue to drain", 5*time.Second, func() bool {
		return do(t, ts.Client(), "POST", ts.URL+"/v1/models/shapes:predict", body).code == 200
	})
}

// metrics lines: # comments, or name{labels} value.
var metricLine = regexp.MustCompile(`^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+-]+$`)

func TestMetrics(t *testing.T) {
	s, _ := fakeServer(t, fakeConfig(fakeDir(t, 2)), nil)
	ts := startServer(t, s)
	body := imageBody(pngBytes(t, testImage(4, 4, 1)), pngBytes(t, testImage(4, 4, 2)))
	for range 3 {
		do(t, ts.Client(), "POST", ts.URL+"/v1/models/shapes:predict", body)
	}
	do(t, ts.Client(), "POST", ts.URL+"/v1/models/shapes:predict", `{"instances": [{"b64": "!"}]}`)
	do(t, ts.Client(), "GET", ts.URL+"/v1/models/shapes", "")
	r := do(t, ts.Client(), "GET", ts.URL+"/metrics", "")
	text := string(r.body)
	for _, want := range []string{
		`xcept_serve_requests_total{api="predict",code="200"} 3`,
		`xcept_serve_requests_total{api="predict",code="400"} 1`,
		`xcept_serve_requests_total{api="status",code="200"} 1`,
		`xcept_serve_errors_total{code="INVALID_ARGUMENT"} 1`,
		`xcept_serve_request_duration_seconds_count{api="predict"} 4`,
		`xcept_serve_batch_size_bucket{le="1"} 0`,
		`xcept_serve_batch_size_bucket{le="2"} 3`, // 3 requests of 2 images
		`xcept_serve_batch_size_count 3`,
		`xcept_serve_model_version{model="shapes"} 2`,
		`xcept_serve_model_loads_total{model="shapes",result="ok"} 1`,
		`xcept_serve_requests_in_flight 0`,
		"# TYPE xcept_serve_request_duration_seconds histogram",
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if !strings.HasPrefix(line, "# ") && !metricLine.MatchString(line) {
			t.Errorf("not in the text exposition format: %q", line)
		}
	}
	if ct := do(t, ts.Client(), "GET", ts.URL+"/metrics", ""); ct.code != 200 {
		t.Errorf("metrics: %d", ct.code)
	}
}

// Hot reload: a new version folder is loaded and swapped in; requests
// already running on the old version finish on it, and only then is it
// closed. A version that fails to load leaves the current one serving.
func TestHotReload(t *testing.T) {
	dir := fakeDir(t, 1)
	s, l := fakeServer(t, fakeConfig(dir), nil)
	ts := startServer(t, s)
	img := pngBytes(t, testImage(4, 4, 1))
	v1 := l.model(1)
	release := v1.hold()
	slow := make(chan response, 1)
	go func() { slow <- do(t, ts.Client(), "POST", ts.URL+"/v1/models/shapes:predict", imageBody(img)) }()
	waitFor(t, "the request to reach version 1", 5*time.Second, func() bool { return v1.running.Load() == 1 })

	fakeVersion(t, dir, 2)
	if err := s.Poll(); err != nil {
		t.Fatal(err)
	}
	r := do(t, ts.Client(), "POST", ts.URL+"/v1/models/shapes:predict", imageBody(img))
	if got := decode[rowAnswer](t, r); r.version != "2" || !slices.Equal(got.Predictions[0].Probabilities, fakeProbs(img, 2)) {
		t.Errorf("after the swap: version %s, %s", r.version, r.body)
	}
	if v1.closed.Load() {
		t.Fatal("version 1 closed while a request was running on it")
	}
	st := do(t, ts.Client(), "GET", ts.URL+"/v1/models/shapes", "")
	if !strings.Contains(string(st.body), `"version": "1",
   "state": "UNLOADING"`) {
		t.Errorf("status while version 1 drains:\n%s", st.body)
	}
	release()
	old := <-slow
	if got := decode[rowAnswer](t, old); old.version != "1" || !slices.Equal(got.Predictions[0].Probabilities, fakeProbs(img, 1)) {
		t.Errorf("the request that started on version 1: version %s, %s", old.version, old.body)
	}
	waitFor(t, "version 1 to close", 5*time.Second, func() bool { return v1.closed.Load() })

	// A broken version 3 is reported, and version 2 keeps serving.
	fakeVersion(t, dir, 3)
	broken := filepath.Join(dir, "3", "broken")
	os.WriteFile(broken, nil, 0o644)
	if err := s.Poll(); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("loading a broken version: %v", err)
	}
	st = do(t, ts.Client(), "GET", ts.URL+"/v1/models/shapes", "")
	for _, want := range []string{`"version": "3",
   "state": "END",
   "status": {
    "error_code": "DATA_LOSS",
    "error_message": "Could not read variables: checksum mismatch"`, `"version": "2",
   "state": "AVAILABLE"`, `"version": "1",
   "state": "END"`} {
		if !strings.Contains(string(st.body), want) {
			t.Errorf("status lacks %s:\n%s", want, st.body)
		}
	}
	if r := do(t, ts.Client(), "POST", ts.URL+"/v1/models/shapes:predict", imageBody(img)); r.code != 200 || r.version != "2" {
		t.Errorf("after a failed load: %d version %s", r.code, r.version)
	}
	// The same files are not retried; fixed files are.
	if err := s.Poll(); err != nil {
		t.Errorf("a failed version is retried though its files did not change: %v", err)
	}
	os.Remove(broken)
	later := time.Now().Add(time.Second)
	os.Chtimes(filepath.Join(dir, "3", contract.SavedModelFile), later, later)
	if err := s.Poll(); err != nil {
		t.Fatal(err)
	}
	if s.Version() != 3 {
		t.Errorf("serving version %d after version 3 was fixed", s.Version())
	}
}

// SIGTERM (a cancelled context): the listener closes, requests in flight
// finish, the model is unloaded, and Serve returns nil.
func TestGracefulShutdown(t *testing.T) {
	s, l := fakeServer(t, fakeConfig(fakeDir(t, 1)), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, 10*time.Second) }()
	url := "http://" + ln.Addr().String()
	m := l.model(1)
	release := m.hold()
	inflight := make(chan response, 1)
	go func() {
		inflight <- do(t, http.DefaultClient, "POST", url+"/v1/models/shapes:predict", imageBody(pngBytes(t, testImage(4, 4, 1))))
	}()
	waitFor(t, "the request to start", 5*time.Second, func() bool { return m.running.Load() == 1 })
	cancel()
	waitFor(t, "the listener to close", 5*time.Second, func() bool {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if m.closed.Load() {
		t.Fatal("the model closed under a running request")
	}
	release()
	if r := <-inflight; r.code != 200 {
		t.Errorf("the request in flight got %d: %s", r.code, r.body)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if !m.closed.Load() {
		t.Error("the model was not unloaded")
	}
}

func TestNoVersionExplains(t *testing.T) {
	tests := []struct {
		name  string
		setup func(dir string)
		want  string
	}{
		{"empty", func(string) {}, "has no complete version folder"},
		{"a SavedModel without a version folder", func(dir string) {
			os.WriteFile(filepath.Join(dir, contract.SavedModelFile), nil, 0o644)
		}, "is a SavedModel itself, but serve (like TF Serving) expects version folders: move it to"},
		{"an xcept model folder", func(dir string) {
			os.MkdirAll(filepath.Join(dir, "serving"), 0o755)
			os.WriteFile(filepath.Join(dir, "serving", contract.SavedModelFile), nil, 0o644)
		}, "is an xcept model folder: export it first"},
		{"a version without variables", func(dir string) {
			os.MkdirAll(filepath.Join(dir, "1"), 0o755)
			os.WriteFile(filepath.Join(dir, "1", contract.SavedModelFile), nil, 0o644)
		}, "has no complete version folder"},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		tt.setup(dir)
		l := &fakeLoader{}
		_, err := New(fakeConfig(dir), l.load)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	dir := fakeDir(t, 1)
	os.WriteFile(filepath.Join(dir, "1", "broken"), nil, 0o644)
	if _, err := New(fakeConfig(dir), (&fakeLoader{}).load); err == nil || !strings.Contains(err.Error(), "version 1") {
		t.Errorf("a broken only version: %v", err)
	}
}
