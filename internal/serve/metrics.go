package serve

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// metrics are the server's Prometheus metrics, written in the text
// exposition format (version 0.0.4) by hand: a few counters and histograms
// do not need a client library and its dependencies.
type metrics struct {
	model string

	mu       sync.Mutex
	requests map[[2]string]uint64 // {api, HTTP code}
	errors   map[string]uint64    // status code name
	latency  map[string]*histogram
	batch    *histogram
	run      *histogram
	reloads  map[bool]uint64
	dropRows uint64 // rows dropped unrun: their callers had gone

	version  atomic.Int64
	inFlight atomic.Int64
}

// The api label: a small fixed set, so a scanner probing random paths
// cannot grow the metrics without bound.
const (
	apiPredict  = "predict"
	apiStatus   = "status"
	apiMetadata = "metadata"
	apiHealth   = "healthz"
	apiMetrics  = "metrics"
	apiOther    = "other"
)

var (
	latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	batchBuckets   = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}
)

func newMetrics(model string) *metrics {
	m := &metrics{
		model:    model,
		requests: map[[2]string]uint64{},
		errors:   map[string]uint64{},
		latency:  map[string]*histogram{},
		batch:    newHistogram(batchBuckets),
		run:      newHistogram(latencyBuckets),
		reloads:  map[bool]uint64{},
	}
	m.version.Store(-1)
	return m
}

type histogram struct {
	bounds []float64
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	n      uint64
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i, _ := slices.BinarySearch(h.bounds, v) // the first bound >= v: buckets are "le"
	h.counts[i]++
	h.sum += v
	h.n++
}

func (m *metrics) request(api string, code int, d time.Duration, errCode string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[[2]string{api, strconv.Itoa(code)}]++
	h := m.latency[api]
	if h == nil {
		h = newHistogram(latencyBuckets)
		m.latency[api] = h
	}
	h.observe(d.Seconds())
	if errCode != "" {
		m.errors[errCode]++
	}
}

func (m *metrics) observeBatch(rows int, run time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batch.observe(float64(rows))
	m.run.observe(run.Seconds())
}

func (m *metrics) dropped(rows int) {
	m.mu.Lock()
	m.dropRows += uint64(rows)
	m.mu.Unlock()
}

func (m *metrics) reloaded(ok bool) {
	m.mu.Lock()
	m.reloads[ok]++
	m.mu.Unlock()
}

func (m *metrics) setVersion(v int64) { m.version.Store(v) }

// write prints every metric, sorted, in the text exposition format.
func (m *metrics) write(w io.Writer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	model := `model="` + escapeLabel(m.model) + `"`

	header(&b, "xcept_serve_requests_total", "counter", "HTTP requests answered, by API and status code.")
	keys := make([][2]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return strings.Compare(a[0]+" "+a[1], b[0]+" "+b[1]) })
	for _, k := range keys {
		fmt.Fprintf(&b, "xcept_serve_requests_total{api=%q,code=%q} %d\n", k[0], k[1], m.requests[k])
	}

	header(&b, "xcept_serve_errors_total", "counter", "Requests that failed, by TensorFlow status code (INVALID_ARGUMENT: bad input, DEADLINE_EXCEEDED: timeout, ...).")
	codes := make([]string, 0, len(m.errors))
	for c := range m.errors {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		fmt.Fprintf(&b, "xcept_serve_errors_total{code=%q} %d\n", c, m.errors[c])
	}

	header(&b, "xcept_serve_request_duration_seconds", "histogram", "Time from request to response, by API.")
	apis := make([]string, 0, len(m.latency))
	for a := range m.latency {
		apis = append(apis, a)
	}
	slices.Sort(apis)
	for _, a := range apis {
		m.latency[a].write(&b, "xcept_serve_request_duration_seconds", fmt.Sprintf("api=%q", a))
	}

	header(&b, "xcept_serve_batch_size", "histogram", "Rows (images) per model run: concurrent requests joined by dynamic batching.")
	m.batch.write(&b, "xcept_serve_batch_size", "")
	header(&b, "xcept_serve_run_duration_seconds", "histogram", "Time of one model run.")
	m.run.write(&b, "xcept_serve_run_duration_seconds", "")

	header(&b, "xcept_serve_cancelled_rows_total", "counter", "Rows (images) not run because their request had timed out or its client had gone.")
	fmt.Fprintf(&b, "xcept_serve_cancelled_rows_total %d\n", m.dropRows)

	header(&b, "xcept_serve_model_version", "gauge", "Version being served (-1: none).")
	fmt.Fprintf(&b, "xcept_serve_model_version{%s} %d\n", model, m.version.Load())
	header(&b, "xcept_serve_model_loads_total", "counter", "Version loads, by result.")
	fmt.Fprintf(&b, "xcept_serve_model_loads_total{%s,result=\"ok\"} %d\n", model, m.reloads[true])
	fmt.Fprintf(&b, "xcept_serve_model_loads_total{%s,result=\"failed\"} %d\n", model, m.reloads[false])
	header(&b, "xcept_serve_requests_in_flight", "gauge", "Requests being answered.")
	fmt.Fprintf(&b, "xcept_serve_requests_in_flight %d\n", m.inFlight.Load())

	_, err := io.WriteString(w, b.String())
	return err
}

func header(b *strings.Builder, name, typ, help string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (h *histogram) write(b *strings.Builder, name, labels string) {
	sep := ""
	if labels != "" {
		sep = ","
	}
	cum := uint64(0)
	for i, bound := range h.bounds {
		cum += h.counts[i]
		fmt.Fprintf(b, "%s_bucket{%s%sle=%q} %d\n", name, labels, sep, strconv.FormatFloat(bound, 'g', -1, 64), cum)
	}
	fmt.Fprintf(b, "%s_bucket{%s%sle=\"+Inf\"} %d\n", name, labels, sep, h.n)
	braces := ""
	if labels != "" {
		braces = "{" + labels + "}"
	}
	fmt.Fprintf(b, "%s_sum%s %s\n", name, braces, strconv.FormatFloat(h.sum, 'g', -1, 64))
	fmt.Fprintf(b, "%s_count%s %d\n", name, braces, h.n)
}

// escapeLabel escapes a label value: backslash, double quote and newline.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
