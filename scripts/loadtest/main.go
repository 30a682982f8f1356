// Command loadtest drives an xcept serve (or TF Serving) predict endpoint
// with concurrent clients for a fixed time and reports throughput, latency
// percentiles, errors and the server's batch sizes. scripts/loadtest.sh
// runs it; `make loadtest` runs that.
//
//	go run ./scripts/loadtest -url http://127.0.0.1:8501/v1/models/shapes:predict -clients 8 -duration 20s
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/xcept/xcept/internal/serve/grpcapi/pb"
)

type options struct {
	url      string
	clients  int
	duration time.Duration
	images   int // per request
	size     int // generated JPEG side
	variants int // distinct request bodies
	metrics  string
	grpc     string // HOST:PORT: gRPC instead of REST
	timeout  time.Duration
}

// Report is what one run measured.
type Report struct {
	Clients       int     `json:"clients"`
	Seconds       float64 `json:"seconds"`
	Requests      int     `json:"requests"`
	Errors        int     `json:"errors"`
	FirstError    string  `json:"first_error,omitempty"`
	ImagesPerReq  int     `json:"images_per_request"`
	RequestsPerS  float64 `json:"requests_per_second"`
	ImagesPerS    float64 `json:"images_per_second"`
	P50Ms         float64 `json:"p50_ms"`
	P90Ms         float64 `json:"p90_ms"`
	P99Ms         float64 `json:"p99_ms"`
	MaxMs         float64 `json:"max_ms"`
	MeanBatchRows float64 `json:"mean_batch_rows,omitempty"`
	Runs          float64 `json:"model_runs,omitempty"`
}

func main() {
	var o options
	asJSON := flag.Bool("json", false, "print the report as JSON")
	flag.StringVar(&o.url, "url", "", "predict URL, e.g. http://127.0.0.1:8501/v1/models/NAME:predict (required)")
	flag.IntVar(&o.clients, "clients", 8, "concurrent clients, each sending its next request when the last is answered")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "how long to send")
	flag.IntVar(&o.images, "images", 1, "images per request")
	flag.IntVar(&o.size, "size", 320, "side of the generated JPEG images, in pixels")
	flag.IntVar(&o.variants, "variants", 16, "distinct images (so that nothing can be cached)")
	flag.StringVar(&o.metrics, "metrics", "", "the server's /metrics URL, to report its batch sizes (xcept serve)")
	flag.StringVar(&o.grpc, "grpc", "", "send through TF Serving's gRPC API at HOST:PORT instead (model name from -url)")
	flag.DurationVar(&o.timeout, "timeout", time.Minute, "how long one request may take")
	flag.Parse()
	if o.url == "" && o.grpc == "" || o.clients < 1 || o.duration <= 0 || o.images < 1 || o.variants < 1 {
		fmt.Fprintln(os.Stderr, "loadtest: -url is required; -clients, -duration, -images and -variants must be positive")
		os.Exit(2)
	}
	r, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(r)
	} else {
		fmt.Printf("%d clients, %.0fs: %d requests (%d images each), %d errors; %.1f req/s, %.1f images/s; latency p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms",
			r.Clients, r.Seconds, r.Requests, r.ImagesPerReq, r.Errors, r.RequestsPerS, r.ImagesPerS, r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs)
		if r.Runs > 0 {
			fmt.Printf("; %.0f model runs of %.2f images on average", r.Runs, r.MeanBatchRows)
		}
		fmt.Println()
		if r.FirstError != "" {
			fmt.Println("first error:", r.FirstError)
		}
	}
	if r.Errors > 0 {
		os.Exit(1)
	}
}

// bodies are distinct request bodies of o.images generated JPEGs each
// (JSON for REST), and the JPEGs themselves (for gRPC).
func bodies(o options) ([][]byte, [][][]byte, error) {
	out := make([][]byte, o.variants)
	raw := make([][][]byte, o.variants)
	for v := range out {
		var items []string
		for i := range o.images {
			img := image.NewRGBA(image.Rect(0, 0, o.size, o.size*3/4))
			seed := v*o.images + i
			for y := 0; y < img.Rect.Dy(); y++ {
				for x := 0; x < img.Rect.Dx(); x++ {
					img.Set(x, y, color.RGBA{uint8(x + seed*37), uint8(y*2 + seed*11), uint8((x ^ y) + seed), 255})
				}
			}
			var buf bytes.Buffer
			if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
				return nil, nil, err
			}
			raw[v] = append(raw[v], buf.Bytes())
			items = append(items, `{"b64": "`+base64.StdEncoding.EncodeToString(buf.Bytes())+`"}`)
		}
		out[v] = []byte(`{"instances": [` + strings.Join(items, ", ") + `]}`)
	}
	return out, raw, nil
}

func run(o options) (*Report, error) {
	reqs, raw, err := bodies(o)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.clients}, Timeout: o.timeout}
	send := func(n int) error { return predict(client, o.url, reqs[n%len(reqs)], o.images) }
	if o.grpc != "" {
		conn, err := grpc.NewClient(o.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		stub := pb.NewPredictionServiceClient(conn)
		model := o.model()
		send = func(n int) error { return predictGRPC(stub, model, raw[n%len(raw)], o.timeout) }
	}
	before, _ := scrape(o.metrics)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      int
		first     string
	)
	start := time.Now()
	stop := start.Add(o.duration)
	var wg sync.WaitGroup
	for c := range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := c; time.Now().Before(stop); n += o.clients {
				t0 := time.Now()
				err := send(n)
				d := time.Since(t0)
				mu.Lock()
				latencies = append(latencies, d)
				if err != nil {
					errs++
					if first == "" {
						first = err.Error()
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	after, _ := scrape(o.metrics)
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		i := min(len(latencies)-1, int(p*float64(len(latencies))))
		return float64(latencies[i].Microseconds()) / 1000
	}
	r := &Report{
		Clients: o.clients, Seconds: elapsed, Requests: len(latencies), Errors: errs, FirstError: first,
		ImagesPerReq: o.images,
		RequestsPerS: float64(len(latencies)) / elapsed, ImagesPerS: float64(len(latencies)*o.images) / elapsed,
		P50Ms: pct(0.50), P90Ms: pct(0.90), P99Ms: pct(0.99), MaxMs: pct(1),
	}
	if runs := after["xcept_serve_batch_size_count"] - before["xcept_serve_batch_size_count"]; runs > 0 {
		r.Runs = runs
		r.MeanBatchRows = (after["xcept_serve_batch_size_sum"] - before["xcept_serve_batch_size_sum"]) / runs
	}
	return r, nil
}

// predict sends one request and checks the answer has a row per image.
func predict(client *http.Client, url string, body []byte, images int) error {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, data)
	}
	var answer struct {
		Predictions []json.RawMessage `json:"predictions"`
	}
	if err := json.Unmarshal(data, &answer); err != nil {
		return fmt.Errorf("answer is not JSON: %v", err)
	}
	if len(answer.Predictions) != images {
		return errors.New("answer has " + strconv.Itoa(len(answer.Predictions)) + " predictions for " + strconv.Itoa(images) + " images")
	}
	return nil
}

// model is the model name of the predict URL (.../v1/models/NAME:predict).
func (o options) model() string {
	name := o.url[strings.LastIndex(o.url, "/")+1:]
	return strings.TrimSuffix(name, ":predict")
}

// predictGRPC sends one gRPC Predict of encoded images and checks the answer.
func predictGRPC(stub pb.PredictionServiceClient, model string, images [][]byte, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req := &pb.PredictRequest{ModelSpec: &pb.ModelSpec{Name: model}, Inputs: map[string]*pb.TensorProto{
		"image_bytes": {Dtype: pb.DataType_DT_STRING, TensorShape: &pb.TensorShapeProto{Dim: []*pb.TensorShapeProto_Dim{{Size: int64(len(images))}}}, StringVal: images},
	}}
	resp, err := stub.Predict(ctx, req)
	if err != nil {
		return err
	}
	p := resp.GetOutputs()["probabilities"]
	if p == nil || len(p.GetTensorShape().GetDim()) == 0 || p.GetTensorShape().GetDim()[0].GetSize() != int64(len(images)) {
		return fmt.Errorf("answer has no probabilities row per image: %v", p.GetTensorShape())
	}
	return nil
}

var sample = regexp.MustCompile(`(?m)^(xcept_serve_batch_size_(?:sum|count)) ([0-9.e+]+)$`)

// scrape reads the batch size sums from the server's metrics.
func scrape(url string) (map[string]float64, error) {
	out := map[string]float64{}
	if url == "" {
		return out, nil
	}
	resp, err := http.Get(url)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return out, err
	}
	for _, m := range sample.FindAllStringSubmatch(string(data), -1) {
		out[m[1]], _ = strconv.ParseFloat(m[2], 64)
	}
	return out, nil
}
