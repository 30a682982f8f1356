package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/xcept/xcept/internal/testenv"
	"github.com/xcept/xcept/internal/testmodel"
)

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// restProbabilities posts a predict body and returns the first row's probabilities.
func restProbabilities(t *testing.T, url, body string) []float32 {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var answer struct {
		Predictions []json.RawMessage
	}
	if resp.StatusCode != 200 || json.Unmarshal(data, &answer) != nil || len(answer.Predictions) != 1 {
		t.Fatalf("REST predict: %d %.300s", resp.StatusCode, data)
	}
	var row struct {
		Probabilities []float32
	}
	if json.Unmarshal(answer.Predictions[0], &row) != nil || len(row.Probabilities) == 0 {
		// predict_images answers the probabilities row itself when it is the only output.
		var probs []float32
		if err := json.Unmarshal(answer.Predictions[0], &probs); err != nil {
			t.Fatalf("REST prediction %s", answer.Predictions[0])
		}
		return probs
	}
	return row.Probabilities
}

func sameFloat32(a []float32, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != float32(b[i]) || math.IsNaN(b[i]) {
			return false
		}
	}
	return true
}

// TestServeGRPCWithTFServingClient: xcept serve --grpc-port, in its own
// process, against TF Serving's own Python client (tensorflow-serving-api):
// Predict on encoded images and on predict_images pixels answers exactly
// what REST answers, GetModelMetadata lists the signatures, GetModelStatus
// the version, bad requests get INVALID_ARGUMENT / NOT_FOUND and the server
// stays up; grpc.health.v1 says SERVING, then drains on SIGTERM.
func TestServeGRPCWithTFServingClient(t *testing.T) {
	py := testenv.Python(t)
	dir := testmodel.TinyServingExport(t)
	port := freePort(t)
	cmd, line, stderr := startServe(t, "--model", dir, "--port", "0", "--grpc-port", fmt.Sprint(port), "--json", "--poll", "0")
	var ready struct {
		Event, URL, Predict, GRPC string
	}
	if err := json.Unmarshal(line, &ready); err != nil || ready.GRPC != fmt.Sprintf("127.0.0.1:%d", port) {
		t.Fatalf("listening line %q: %v", line, err)
	}

	// The same image both ways: encoded, and as predict_images pixels.
	img := servePNG(t)
	work := t.TempDir()
	imgFile := filepath.Join(work, "x.png")
	os.WriteFile(imgFile, img, 0o644)
	const size = 96 // the tiny model's
	pixels := make([][][][]float32, 1)
	pixels[0] = make([][][]float32, size)
	for y := range pixels[0] {
		pixels[0][y] = make([][]float32, size)
		for x := range pixels[0][y] {
			pixels[0][y][x] = []float32{float32((x * 7) % 256), float32((y * 5) % 256), float32((x + y) % 256)}
		}
	}
	pj, _ := json.Marshal(pixels)
	pixFile := filepath.Join(work, "pixels.json")
	os.WriteFile(pixFile, pj, 0o644)
	restBytes := restProbabilities(t, ready.Predict, `{"instances": [{"b64": "`+base64.StdEncoding.EncodeToString(img)+`"}]}`)
	restPixels := restProbabilities(t, ready.Predict, `{"signature_name": "predict_images", "instances": `+string(pj)+`}`)

	c := exec.Command(py, "testdata/tfserving_grpc_client.py", ready.GRPC, "tiny", imgFile, pixFile)
	c.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=3")
	var cerr bytes.Buffer
	c.Stderr = &cerr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("TF Serving's Python client: %v\n%s\nserver: %s", err, cerr.String(), stderr.String())
	}
	var got struct {
		Bytes        [][]float64       `json:"bytes"`
		BytesClasses []string          `json:"bytes_classes"`
		BytesVersion int64             `json:"bytes_version"`
		Pixels       [][]float64       `json:"pixels"`
		Signatures   []string          `json:"signatures"`
		Inputs       map[string]int    `json:"serving_inputs"`
		Status       [][]any           `json:"status"`
		Malformed    []string          `json:"malformed"`
		NotAnImage   []string          `json:"not_an_image"`
		Unknown      []string          `json:"unknown_model"`
		After        [][]float64       `json:"after"`
		Extra        map[string]string `json:"-"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("client printed %q: %v", out, err)
	}
	if len(got.Bytes) != 1 || !sameFloat32(restBytes, got.Bytes[0]) {
		t.Errorf("gRPC Predict on image_bytes %v, REST %v: want the same float32s", got.Bytes, restBytes)
	}
	if len(got.Pixels) != 1 || !sameFloat32(restPixels, got.Pixels[0]) || len(got.After) != 1 || !sameFloat32(restPixels, got.After[0]) {
		t.Errorf("gRPC Predict on predict_images %v (after the bad requests %v), REST %v", got.Pixels, got.After, restPixels)
	}
	if strings.Join(got.BytesClasses, ",") != "circle,square,triangle" || got.BytesVersion != 1 {
		t.Errorf("classes %v, version %d", got.BytesClasses, got.BytesVersion)
	}
	if !contains(got.Signatures, "serving_default") || !contains(got.Signatures, "predict_images") || got.Inputs["image_bytes"] != 7 {
		t.Errorf("GetModelMetadata: signatures %v, serving inputs %v", got.Signatures, got.Inputs)
	}
	if fmt.Sprint(got.Status) != "[[1 AVAILABLE]]" {
		t.Errorf("GetModelStatus: %v", got.Status)
	}
	for name, c := range map[string][]string{"malformed": got.Malformed, "not an image": got.NotAnImage, "unknown model": got.Unknown} {
		want := "INVALID_ARGUMENT"
		if name == "unknown model" {
			want = "NOT_FOUND"
		}
		if len(c) != 2 || c[0] != want {
			t.Errorf("%s request: %v, want %s", name, c, want)
		}
		t.Logf("%s: %s: %s", name, c[0], c[1])
	}

	conn, err := grpc.NewClient(ready.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, svc := range []string{"", "tiny"} {
		h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %q: %v %v", svc, h, err)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v; stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), ", gRPC on 127.0.0.1:") {
		t.Errorf("stderr does not say where gRPC is:\n%s", stderr.String())
	}
}
