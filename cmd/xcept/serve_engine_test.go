package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/infer"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/ort"
	runs "github.com/xcept/xcept/internal/run"
	"github.com/xcept/xcept/internal/serve"
	"github.com/xcept/xcept/internal/testenv"
	"github.com/xcept/xcept/internal/testmodel"
	"github.com/xcept/xcept/internal/versions"
)

// serveEngines is TestEnginesAgree's serve part: the same real-weights model
// served by xcept serve's TF-Serving REST API on TensorFlow (its serving
// SavedModel) and on onnxruntime, both as an ONNX export (NAME.onnx and
// labels.txt) and as the SavedModel through its conversion, with batching
// on. predict_images (the same pixels) must agree to 1e-5; serving_default
// decodes in TensorFlow's graph on one side and in Go on the other, so it is
// held to what the decoders allow (PNG: lossless, only the resize's
// rounding to whole levels differs; JPEG: the IDCTs differ too).
func serveEngines(t *testing.T, r *runs.Run) {
	photos := testenv.KitchenPhotos(t)
	onnxPath, ok, err := infer.CachedONNXPath(r)
	if err != nil || !ok {
		t.Fatalf("no cached conversion: %v", err)
	}
	servingDir := filepath.Join(r.Info.Model, model.ServingDir)
	base := t.TempDir()
	layout := func(name string) string {
		d := filepath.Join(base, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	tfDir, smDir, onnxDir := layout("tf"), layout("sm"), layout("onnx")
	for _, d := range []string{tfDir, smDir} {
		if err := os.Symlink(servingDir, filepath.Join(d, "1")); err != nil {
			t.Fatal(err)
		}
	}
	v1 := filepath.Join(onnxDir, "1")
	os.Mkdir(v1, 0o755)
	copyFile(t, onnxPath, filepath.Join(v1, "kitchen.onnx"))
	copyFile(t, filepath.Join(servingDir, contract.LabelsAsset), filepath.Join(v1, versions.ONNXLabels))

	opts := graph.SessionOptions{IntraOpThreads: 2, InterOpThreads: 1}
	ortOpts := ort.Options{IntraOpThreads: 2, InterOpThreads: 1}
	var converted []string
	convert := func(_ context.Context, dir string) (string, error) {
		converted = append(converted, dir)
		return onnxPath, nil // the run's checkpoint is the serving model's own weights
	}
	start := func(dir string, load serve.Loader, complete func(string) (string, bool)) string {
		s, err := serve.New(serve.Config{
			Dir: dir, Name: "kitchen", Complete: complete,
			Batch:   serve.BatchConfig{MaxBatch: 4, Timeout: 2 * time.Millisecond, Workers: 1, MaxQueue: 16, MaxBatchPixels: 1 << 26},
			Timeout: 5 * time.Minute, MaxBodyBytes: 1 << 28, Limits: serve.Limits{MaxPixels: 1 << 24, MaxRequestPixels: 1 << 28},
		}, load)
		if err != nil {
			t.Fatalf("serve %s: %v", dir, err)
		}
		t.Cleanup(func() { s.Close() })
		ts := httptest.NewServer(s.Handler())
		t.Cleanup(ts.Close)
		return ts.URL
	}
	tfURL := start(tfDir, serve.SavedModelLoader(opts, false), nil)
	onnxURL := start(onnxDir, serve.ONNXLoader(t.Context(), ortOpts, convert, false), versions.CompleteAny)
	smURL := start(smDir, serve.ONNXLoader(t.Context(), ortOpts, convert, false), versions.CompleteAny)
	if len(converted) != 1 || converted[0] != filepath.Join(smDir, "1") {
		t.Errorf("conversions asked for: %v; want only the SavedModel version %s", converted, filepath.Join(smDir, "1"))
	}

	files, err := infer.ScanLabelled(photos, r.Info.Classes, "photos")
	if err != nil {
		t.Fatal(err)
	}
	var jpegs, pngs []string
	var pixels, resized [][]float32
	for _, f := range files {
		data := mustRead(t, f.Path)
		jpegs = append(jpegs, `{"b64": "`+base64.StdEncoding.EncodeToString(data)+`"}`)
		img, ferr := infer.Decode(f.Input, infer.Limits{})
		if ferr != nil {
			t.Fatal(ferr)
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		pngs = append(pngs, `{"b64": "`+base64.StdEncoding.EncodeToString(buf.Bytes())+`"}`)
		sq := infer.Square(img, testmodel.RealSize, imageio.Squash)
		px := make([]float32, len(sq))
		for i, v := range sq {
			px[i] = float32(v)
		}
		pixels = append(pixels, px)
		resized = append(resized, imageio.ResizeFloat(img, testmodel.RealSize, imageio.Squash))
	}
	predict := func(url, body string) [][]float32 {
		t.Helper()
		resp, err := http.Post(url+"/v1/models/kitchen:predict", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got struct {
			Predictions []json.RawMessage `json:"predictions"`
			Error       string            `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: status %d, %v %s", url, resp.StatusCode, err, got.Error)
		}
		out := make([][]float32, len(got.Predictions))
		for i, p := range got.Predictions {
			var obj struct {
				Probabilities []float32 `json:"probabilities"`
				Classes       []string  `json:"classes"`
			}
			if json.Unmarshal(p, &obj) == nil && obj.Probabilities != nil {
				if obj.Classes != nil && strings.Join(obj.Classes, ",") != strings.Join(r.Info.Classes, ",") {
					t.Errorf("%s: classes %v", url, obj.Classes)
				}
				out[i] = obj.Probabilities
			} else if err := json.Unmarshal(p, &out[i]); err != nil {
				t.Fatalf("%s: prediction %s: %v", url, p, err)
			}
		}
		return out
	}
	worst := func(a, b [][]float32) float64 {
		if len(a) != len(b) {
			t.Fatalf("%d and %d predictions", len(a), len(b))
		}
		w := 0.0
		for i := range a {
			w = max(w, maxAbs(a[i], b[i]))
		}
		return w
	}
	instances := func(items []string) string { return `{"instances": [` + strings.Join(items, ",") + `]}` }
	images := imagesRequest(pixels, testmodel.RealSize)

	want := predict(tfURL, images)
	for name, url := range map[string]string{"onnx export": onnxURL, "savedmodel converted": smURL} {
		d := worst(want, predict(url, images))
		t.Logf("serve %s, predict_images, %d real photos: max |Δp| onnxruntime vs TensorFlow = %.2g", name, len(files), d)
		if d > 1e-5 {
			t.Errorf("serve %s: predict_images max |Δp| = %g, want ≤ 1e-5", name, d)
		}
	}
	// serving_default on onnxruntime is Go's decoding and float resize,
	// then the same model: it equals predict_images on those pixels.
	if d := worst(predict(onnxURL, imagesRequest(resized, testmodel.RealSize)), predict(onnxURL, instances(pngs))); d > 1e-6 {
		t.Errorf("onnxruntime serving_default vs predict_images on Go's pixels: max |Δp| = %g", d)
	}
	// PNG decodes to the same pixels in both, and both resize in float:
	// the engines agree. JPEG's decoders differ by a few levels (imageio's
	// parity test), which a real-weights model can turn into 1e-2.
	for _, tt := range []struct {
		name  string
		items []string
		bound float64
	}{{"png", pngs, 1e-5}, {"jpeg", jpegs, 5e-2}} {
		d := worst(predict(tfURL, instances(tt.items)), predict(onnxURL, instances(tt.items)))
		t.Logf("serve serving_default, %d real photos as %s: max |Δp| onnxruntime (Go decodes) vs TensorFlow (its graph decodes) = %.2g", len(files), tt.name, d)
		if d > tt.bound {
			t.Errorf("serving_default %s: max |Δp| = %g, want ≤ %g", tt.name, d, tt.bound)
		}
	}
}

// imagesRequest is a predict_images request of float pixels (size×size×3
// each), one instance per image.
func imagesRequest(images [][]float32, size int) string {
	rows := make([]string, len(images))
	for i, px := range images {
		rows[i] = floatRows(px, size)
	}
	return fmt.Sprintf(`{"signature_name": %q, "instances": [%s]}`, contract.SigImages, strings.Join(rows, ","))
}

// floatRows is one image's pixels as a JSON instance, [[[r, g, b], ...], ...].
func floatRows(px []float32, size int) string {
	var b strings.Builder
	f := func(v float32) string { return strconv.FormatFloat(float64(v), 'g', -1, 32) }
	b.WriteByte('[')
	for y := range size {
		if y > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('[')
		for x := range size {
			if x > 0 {
				b.WriteByte(',')
			}
			p := px[(y*size+x)*3:]
			b.WriteString("[" + f(p[0]) + "," + f(p[1]) + "," + f(p[2]) + "]")
		}
		b.WriteByte(']')
	}
	b.WriteByte(']')
	return b.String()
}
