package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xcept/xcept/internal/filecopy"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/testmodel"
)

// These tests serve the tiny test model's serving SavedModel (96 px, 3
// classes, the builder's initial weights) laid out as TF Serving's version
// folders, through the TensorFlow C API.

var tfOpts = graph.SessionOptions{IntraOpThreads: 2, InterOpThreads: 1}

// exportTiny makes a model directory whose version folders hold the tiny
// model's serving SavedModel.
func exportTiny(t testing.TB, versions ...int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tiny")
	for _, v := range versions {
		addVersion(t, dir, v)
	}
	return dir
}

// addVersion puts a version folder in place the way an export should:
// written under a temporary name, then renamed, so that the server never
// sees it half-written.
func addVersion(t testing.TB, dir string, v int64) {
	t.Helper()
	src := filepath.Join(testmodel.Tiny(t), model.ServingDir)
	tmp := filepath.Join(dir, ".tmp-"+strconv.FormatInt(v, 10))
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := filecopy.Tree(src, tmp, filecopy.LinkOrFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, strconv.FormatInt(v, 10))); err != nil {
		t.Fatal(err)
	}
}

func tinyConfig(dir string) Config {
	return Config{
		Dir: dir, Name: "tiny",
		Batch:        BatchConfig{MaxBatch: 8, Timeout: 2 * time.Millisecond, Workers: 1, MaxQueue: 256},
		Timeout:      30 * time.Second,
		MaxBodyBytes: 8 << 20,
		Limits:       Limits{MaxPixels: 4_000_000},
	}
}

var (
	sharedOnce sync.Once
	sharedSrv  *Server
	sharedErr  error
)

// tinyServer is one server on version 1 of the tiny model, shared by the
// tests that only send requests (loading a model takes seconds).
func tinyServer(t *testing.T) *Server {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "xcept-serve-test-"+strconv.Itoa(os.Getpid()))
	sharedOnce.Do(func() {
		os.RemoveAll(dir)
		addVersion(t, dir, 1)
		sharedSrv, sharedErr = New(tinyConfig(dir), SavedModelLoader(tfOpts, false))
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedSrv
}

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		runMemoryHelper()
	}
	code := m.Run()
	if sharedSrv != nil {
		sharedSrv.Close()
		os.RemoveAll(filepath.Join(os.TempDir(), "xcept-serve-test-"+strconv.Itoa(os.Getpid())))
	}
	os.Exit(code)
}

// direct runs a signature through the C API, bypassing the server: the
// reference its answers must equal.
func direct(t *testing.T, s *Server, signature string, feeds map[string]*graph.Tensor, outputs ...string) [][]float32 {
	t.Helper()
	cur := s.mgr.acquire()
	defer cur.release()
	out, err := cur.model.(*savedModel).s.Run(signature, feeds, outputs...)
	if err != nil {
		t.Fatal(err)
	}
	res := make([][]float32, len(out))
	for i, o := range out {
		defer o.Close()
		if res[i], err = o.Float32s(); err != nil {
			t.Fatal(err)
		}
	}
	return res
}

func directBytes(t *testing.T, s *Server, imgs [][]byte) []float32 {
	t.Helper()
	in, err := graph.NewStrings([]int64{int64(len(imgs))}, imgs)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	return direct(t, s, DefaultSignature, map[string]*graph.Tensor{"image_bytes": in}, "probabilities")[0]
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// The request bodies of TF Serving's documentation, sent to the real
// model, answer in TF Serving's shapes with exactly what a direct C API
// run of serving_default gives on the same bytes.
func TestTFDocumentedRequestsEqualDirectRuns(t *testing.T) {
	s := tinyServer(t)
	ts := startServer(t, s)
	url := ts.URL + "/v1/models/tiny:predict"
	imgs := [][]byte{
		pngBytes(t, testImage(96, 96, 1)),
		jpegBytes(t, testImage(120, 80, 2)),
		gifBytes(t, testImage(50, 60, 3)),
		bmpBytes(t, testImage(33, 97, 4)),
	}
	want := directBytes(t, s, imgs)
	names := []string{"circle", "square", "triangle"}

	check := func(name string, probs [][]float32, classes [][]string) {
		t.Helper()
		var flat []float32
		for _, p := range probs {
			flat = append(flat, p...)
		}
		if d := maxDiff(flat, want); d > 1e-6 {
			t.Errorf("%s: probabilities differ from the direct run by %g\n got %v\nwant %v", name, d, flat, want)
		}
		for i, c := range classes {
			if !slices.Equal(c, names) {
				t.Errorf("%s: classes[%d] = %q", name, i, c)
			}
		}
	}
	row := decode[rowAnswer](t, do(t, ts.Client(), "POST", url, imageBody(imgs...)))
	var probs [][]float32
	var classes [][]string
	for _, p := range row.Predictions {
		probs, classes = append(probs, p.Probabilities), append(classes, p.Classes)
	}
	check("row, b64 values", probs, classes)

	var named []string
	for _, img := range imgs {
		named = append(named, `{"image_bytes": {"b64": "`+b64(img)+`"}}`)
	}
	row = decode[rowAnswer](t, do(t, ts.Client(), "POST", url, `{"signature_name": "serving_default", "instances": [`+strings.Join(named, ",")+`]}`))
	probs, classes = nil, nil
	for _, p := range row.Predictions {
		probs, classes = append(probs, p.Probabilities), append(classes, p.Classes)
	}
	check("row, named", probs, classes)

	col := decode[columnarAnswer](t, do(t, ts.Client(), "POST", url, strings.Replace(imageBody(imgs...), `"instances"`, `"inputs"`, 1)))
	check("columnar", col.Outputs.Probabilities, col.Outputs.Classes)
	col = decode[columnarAnswer](t, do(t, ts.Client(), "POST", url, strings.Replace(imageBody(imgs...), `"instances": `, `"inputs": {"image_bytes": `, 1)+"}"))
	check("columnar, named", col.Outputs.Probabilities, col.Outputs.Classes)

	// predict_images: pixel values as nested lists (one 96×96×3 instance).
	pixels := make([]float32, 96*96*3)
	for i := range pixels {
		pixels[i] = float32(i % 251)
	}
	var sb strings.Builder
	for y := 0; y < 96; y++ {
		sb.WriteString(map[bool]string{true: "[", false: ", ["}[y == 0])
		for x := 0; x < 96; x++ {
			p := pixels[3*(96*y+x):]
			fmt.Fprintf(&sb, "%s[%v, %v, %v]", map[bool]string{true: "", false: ", "}[x == 0], p[0], p[1], p[2])
		}
		sb.WriteString("]")
	}
	r := do(t, ts.Client(), "POST", url, `{"signature_name": "predict_images", "instances": [[`+sb.String()+`]]}`)
	got := decode[struct{ Predictions [][]float32 }](t, r)
	in, err := graph.NewTensor([]int64{1, 96, 96, 3}, pixels)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	wantImages := direct(t, s, "predict_images", map[string]*graph.Tensor{"images": in}, "probabilities")[0]
	if len(got.Predictions) != 1 || maxDiff(got.Predictions[0], wantImages) > 1e-6 {
		t.Errorf("predict_images: %v, want %v", got.Predictions, wantImages)
	}

	// Status and metadata name what the model has.
	st := do(t, ts.Client(), "GET", ts.URL+"/v1/models/tiny", "")
	if !strings.Contains(string(st.body), `"state": "AVAILABLE"`) {
		t.Errorf("status: %s", st.body)
	}
	var meta metadataJSON
	if err := json.Unmarshal(do(t, ts.Client(), "GET", ts.URL+"/v1/models/tiny/metadata", "").body, &meta); err != nil {
		t.Fatal(err)
	}
	sd := meta.Metadata.SignatureDef.SignatureDef["serving_default"]
	if in := sd.Inputs["image_bytes"]; in.DType != "DT_STRING" || len(in.TensorShape.Dim) != 1 || in.TensorShape.Dim[0].Size != "-1" {
		t.Errorf("metadata of serving_default's input: %+v", in)
	}
	if out := sd.Outputs["probabilities"]; out.DType != "DT_FLOAT" || len(out.TensorShape.Dim) != 2 || out.TensorShape.Dim[1].Size != "3" {
		t.Errorf("metadata of serving_default's probabilities: %+v", out)
	}
	if _, ok := meta.Metadata.SignatureDef.SignatureDef["predict_images"]; !ok {
		t.Errorf("metadata lacks predict_images")
	}
}

// Requests batched together get what each image alone gets.
func TestTFBatchedRequestsEqualSingleRuns(t *testing.T) {
	s := tinyServer(t)
	ts := startServer(t, s)
	const n = 12
	imgs := make([][]byte, n)
	want := make([][]float32, n)
	for i := range imgs {
		imgs[i] = jpegBytes(t, testImage(64+i, 90-i, 10+i))
		want[i] = directBytes(t, s, imgs[i:i+1])
	}
	var wg sync.WaitGroup
	for i := range imgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := do(t, ts.Client(), "POST", ts.URL+"/v1/models/tiny:predict", imageBody(imgs[i]))
			var got rowAnswer
			if r.code != 200 || json.Unmarshal(r.body, &got) != nil {
				t.Errorf("request %d: %d %s", i, r.code, r.body)
				return
			}
			if d := maxDiff(got.Predictions[0].Probabilities, want[i]); d > 1e-5 {
				t.Errorf("request %d: batched answer differs from the single run by %g", i, d)
			}
		}()
	}
	wg.Wait()
}

// corruptImages have valid headers (imageio's probe passes them) and data
// TensorFlow's decoders refuse or mangle.
func corruptImages(t *testing.T) map[string][]byte {
	pngImg := pngBytes(t, testImage(60, 60, 5))
	jpg := jpegBytes(t, testImage(60, 60, 6))
	gifImg := gifBytes(t, testImage(60, 60, 7))
	bmpImg := bmpBytes(t, testImage(60, 60, 8))
	flip := func(b []byte, from int) []byte {
		c := append([]byte{}, b...)
		for i := from; i < len(c); i += 7 {
			c[i] ^= 0x5A
		}
		return c
	}
	return map[string][]byte{
		"truncated PNG":  pngImg[:len(pngImg)/2],
		"garbled PNG":    flip(pngImg, 60),
		"truncated JPEG": jpg[:len(jpg)/3],
		"garbled JPEG":   flip(jpg, 700),
		"truncated GIF":  gifImg[:len(gifImg)/2],
		"truncated BMP":  bmpImg[:200],
	}
}

// Images TensorFlow cannot decode are 400s for their senders only; the
// server keeps serving everyone else.
func TestTFCorruptImagesFailAlone(t *testing.T) {
	s := tinyServer(t)
	ts := startServer(t, s)
	good := pngBytes(t, testImage(70, 70, 9))
	want := directBytes(t, s, [][]byte{good})
	var wg sync.WaitGroup
	for name, bad := range corruptImages(t) {
		for _, img := range [][]byte{bad, good} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := do(t, ts.Client(), "POST", ts.URL+"/v1/models/tiny:predict", imageBody(img))
				if bytes.Equal(img, good) {
					var got rowAnswer
					if r.code != 200 || json.Unmarshal(r.body, &got) != nil || maxDiff(got.Predictions[0].Probabilities, want) > 1e-5 {
						t.Errorf("a good image sent with the %s: %d %s", name, r.code, r.body)
					}
					return
				}
				switch r.code {
				case 400:
					t.Logf("%s: %s", name, r.errorMessage(t))
				case 200: // some damage still decodes (JPEG and GIF decoders are lenient)
					t.Logf("%s: decoded anyway", name)
				default:
					t.Errorf("%s: %d %s", name, r.code, r.body)
				}
			}()
		}
	}
	wg.Wait()
	if r := do(t, ts.Client(), "GET", ts.URL+"/healthz", ""); r.code != 200 {
		t.Errorf("healthz after corrupt images: %d", r.code)
	}
}

// Randomly damaged images of every format the graph decodes never take
// the server down: each answer is 200 or 400.
func TestTFMutatedImagesNeverCrash(t *testing.T) {
	s := tinyServer(t)
	ts := startServer(t, s)
	seeds := [][]byte{
		pngBytes(t, testImage(40, 30, 1)), jpegBytes(t, testImage(40, 30, 2)),
		gifBytes(t, testImage(40, 30, 3)), bmpBytes(t, testImage(40, 30, 4)),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	statuses := map[int]int{}
	for i := range 80 {
		img := mutate(rng, seeds[i%len(seeds)])
		r := do(t, ts.Client(), "POST", ts.URL+"/v1/models/tiny:predict", imageBody(img))
		statuses[r.code]++
		if r.code != 200 && r.code != 400 {
			t.Errorf("mutation %d: %d %s", i, r.code, r.body)
		}
	}
	t.Logf("statuses %v", statuses)
}

// mutate damages data a few ways at random, keeping it mostly intact.
func mutate(rng *rand.Rand, data []byte) []byte {
	b := append([]byte{}, data...)
	for range 1 + rng.IntN(4) {
		switch rng.IntN(4) {
		case 0: // flip bytes
			for range 1 + rng.IntN(8) {
				b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
			}
		case 1: // truncate
			b = b[:1+rng.IntN(len(b))]
		case 2: // insert junk
			at := rng.IntN(len(b))
			junk := make([]byte, 1+rng.IntN(64))
			for i := range junk {
				junk[i] = byte(rng.IntN(256))
			}
			b = append(b[:at], append(junk, b[at:]...)...)
		case 3: // overwrite a header field with an extreme value
			if len(b) > 30 {
				at := 6 + rng.IntN(24)
				b[at] = 0xFF
			}
		}
	}
	return b
}

// Hot reload under load: clients keep sending while version 2 appears;
// not one request fails, answers move from version 1 to 2, and version 1
// is unloaded once drained.
func TestTFHotReloadUnderLoad(t *testing.T) {
	dir := exportTiny(t, 1)
	cfg := tinyConfig(dir)
	cfg.Poll = 100 * time.Millisecond
	s, err := New(cfg, SavedModelLoader(tfOpts, false))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Watch()
	ts := startServer(t, s)
	img := jpegBytes(t, testImage(80, 80, 3))
	body := imageBody(img)

	var mu sync.Mutex
	seen := map[string]int{}
	failures := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := do(t, ts.Client(), "POST", ts.URL+"/v1/models/tiny:predict", body)
				mu.Lock()
				if r.code != 200 {
					failures++
					t.Errorf("during reload: %d %s", r.code, r.body)
				}
				seen[r.version]++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	addVersion(t, dir, 2)
	waitFor(t, "answers from version 2", 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["2"] >= 20
	})
	close(stop)
	wg.Wait()
	t.Logf("answers by version: %v, failures: %d", seen, failures)
	if seen["1"] == 0 || failures != 0 {
		t.Errorf("answers by version %v, %d failures", seen, failures)
	}
	waitFor(t, "version 1 to unload", 30*time.Second, func() bool {
		st := s.mgr.statuses()
		return len(st) == 2 && st[1].Version == 1 && st[1].State == StateEnd && st[0].State == StateAvailable
	})
}
