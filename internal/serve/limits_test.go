package serve

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// pngHeaderOnly is a PNG whose header says w×h but whose pixel data is
// missing: a server that decodes it fails (400); one that checks budgets
// on headers first refuses it for its size without decoding.
func pngHeaderOnly(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk := append([]byte("IHDR"), ihdr...)
	b = binary.BigEndian.AppendUint32(b, 13)
	b = append(b, chunk...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(chunk))
}

// A request whose images together are over serve.max_request_pixels is
// refused with 413 from the headers alone, and the model does not run.
func TestRequestPixelBudget(t *testing.T) {
	cfg := fakeConfig(fakeDir(t, 1))
	cfg.Limits.MaxRequestPixels = 25_000
	s, l := fakeServer(t, cfg, nil)
	l.model(1).resetBatches()
	ts := startServer(t, s)
	img := pngHeaderOnly(100, 100) // 10,000 pixels: within max_pixels
	r := do(t, ts.Client(), "POST", ts.URL+"/v1/models/shapes:predict", imageBody(img, img, img))
	if r.code != http.StatusRequestEntityTooLarge || !strings.Contains(r.errorMessage(t), "serve.max_request_pixels") || !strings.Contains(r.errorMessage(t), "30000 pixels") {
		t.Errorf("3 × 10,000 pixels over 25,000: %d %s, want 413 naming serve.max_request_pixels", r.code, r.body)
	}
	if b := l.model(1).batchSizes(); len(b) != 0 {
		t.Errorf("the model ran %v for a refused request", b)
	}
	// Within the budget, the same header-only image is decoded, and fails as such.
	r = do(t, ts.Client(), "POST", ts.URL+"/v1/models/shapes:predict", imageBody(img, img))
	if r.code != http.StatusBadRequest {
		t.Errorf("2 header-only PNGs within the budget: %d %s, want 400 from decoding", r.code, r.body)
	}
}

// The batcher never builds a run over serve.max_batch_pixels: a request of
// 8 images of 100 pixels under a 300-pixel budget runs in parts of at most
// 3, and concurrent requests are joined only within the budget.
func TestBatchPixelBudget(t *testing.T) {
	cfg := fakeConfig(fakeDir(t, 1))
	cfg.Batch.MaxBatch = 8
	cfg.Batch.MaxBatchPixels = 300
	cfg.Limits.MaxPixels = 300
	s, l := fakeServer(t, cfg, nil)
	m := l.model(1)
	m.resetBatches()
	ts := startServer(t, s)
	imgs := make([][]byte, 8)
	for i := range imgs {
		imgs[i] = pngBytes(t, testImage(10, 10, i))
	}
	got := decode[rowAnswer](t, do(t, ts.Client(), "POST", ts.URL+"/v1/models/shapes:predict", imageBody(imgs...)))
	for i, p := range got.Predictions {
		if !slices.Equal(p.Probabilities, fakeProbs(imgs[i], 1)) {
			t.Errorf("row %d answered with another row's probabilities", i)
		}
	}
	sizes := m.batchSizes()
	total := 0
	for _, n := range sizes {
		total += n
		if n > 3 {
			t.Errorf("a run of %d images of 100 pixels: over the 300-pixel budget (runs %v)", n, sizes)
		}
	}
	if total != 8 {
		t.Errorf("runs %v: want the 8 rows run once each", sizes)
	}
}

// A request that needs more runs than serve.max_queue can ever hold is a
// 413 saying the limit, not a 503 "already waiting" on an idle server.
func TestRequestThatCanNeverBeQueued(t *testing.T) {
	cfg := fakeConfig(fakeDir(t, 1)) // batches of 4, a queue of 64: at most 256 rows
	s, _ := fakeServer(t, cfg, nil)
	ts := startServer(t, s)
	row := func(n int) string {
		rows := make([]string, n)
		for i := range rows {
			rows[i] = `{"a": [1, 2], "b": 3}`
		}
		return `{"signature_name": "two_inputs", "instances": [` + strings.Join(rows, ",") + `]}`
	}
	r := do(t, ts.Client(), "POST", ts.URL+"/v1/models/shapes:predict", row(10_000))
	msg := r.errorMessage(t)
	if r.code != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "10000 instances") || !strings.Contains(msg, "serve.max_queue") || strings.Contains(msg, "waiting for the model") {
		t.Errorf("10,000 instances: %d %s, want 413 saying the limit", r.code, r.body)
	}
	if r := do(t, ts.Client(), "POST", ts.URL+"/v1/models/shapes:predict", row(256)); r.code != http.StatusOK {
		t.Errorf("256 instances (64 runs of 4): %d %s", r.code, r.body)
	}
}

// A request that times out while queued behind a long run is dropped: the
// model never runs it, and the metrics count its rows as cancelled.
func TestTimedOutRequestIsNotRun(t *testing.T) {
	cfg := fakeConfig(fakeDir(t, 1))
	cfg.Timeout = 300 * time.Millisecond
	s, l := fakeServer(t, cfg, nil)
	m := l.model(1)
	m.resetBatches()
	release := m.hold()
	defer release()
	ts := startServer(t, s)
	url := ts.URL + "/v1/models/shapes:predict"
	first := make(chan response, 1)
	go func() { first <- do(t, ts.Client(), "POST", url, imageBody(pngBytes(t, testImage(4, 4, 1)))) }()
	waitFor(t, "the first request to run", 5*time.Second, func() bool { return m.running.Load() == 1 })
	queued := imageBody(pngBytes(t, testImage(4, 4, 2)), pngBytes(t, testImage(4, 4, 3)))
	if r := do(t, ts.Client(), "POST", url, queued); r.code != http.StatusGatewayTimeout {
		t.Fatalf("queued behind a held run: %d %s, want 504", r.code, r.body)
	}
	release()
	<-first
	waitFor(t, "the worker to pass the dropped request", 5*time.Second, func() bool {
		return strings.Contains(metricsText(t, ts.URL), "xcept_serve_cancelled_rows_total 2\n")
	})
	time.Sleep(50 * time.Millisecond)
	if sizes := m.batchSizes(); !slices.Equal(sizes, []int{1}) {
		t.Errorf("runs %v: want only the first request's (the timed-out one was run)", sizes)
	}
}

func metricsText(t *testing.T, base string) string {
	t.Helper()
	r := do(t, http.DefaultClient, "GET", base+"/metrics", "")
	if r.code != http.StatusOK {
		t.Fatalf("/metrics: %d", r.code)
	}
	return string(r.body)
}

// Decoding waits for the decode budget only while the request lives: a
// request whose time is up stops there, decoding nothing.
func TestDecodeStopsWhenTheRequestIsDone(t *testing.T) {
	b := NewBudget(100)
	if err := b.acquire(context.Background(), 100); err != nil { // every pixel taken
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	img := pngBytes(t, testImage(10, 10, 1))
	_, err := ParsePredict(ctx, []byte(imageBody(img)), fakeSignatures, Limits{MaxPixels: 10_000, Decode: b})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ParsePredict = %v, want the deadline while waiting to decode", err)
	}
	b.release(100)
	if _, err := ParsePredict(context.Background(), []byte(imageBody(img)), fakeSignatures, Limits{MaxPixels: 10_000, Decode: b}); err != nil {
		t.Errorf("with the budget free: %v", err)
	}
}
