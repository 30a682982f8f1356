package serve

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/graph"
)

// fakeModel stands in for a SavedModel in the tests that need no
// TensorFlow: the serving model's signatures, with outputs computed from
// the inputs so that every row can be checked, and hooks to slow runs
// down or fail them.
type fakeModel struct {
	version int64
	labels  []string
	delay   time.Duration // each run sleeps this long

	mu      sync.Mutex
	gate    chan struct{} // when set, runs wait for it to close
	batches []int         // rows per run
	closed  atomic.Bool
	running atomic.Int64
}

var fakeClasses = []string{"circle", "square", "triangle"}

func ti(name string, dt graph.DType, shape ...int64) graph.TensorInfo {
	return graph.TensorInfo{Name: name, DType: dt, Shape: shape}
}

// fakeSignatures mirror the serving model's (4 px images instead of 96),
// plus shapes the server must handle but xcept models do not have.
var fakeSignatures = map[string]*graph.Signature{
	"serving_default": {Key: "serving_default", Method: "tensorflow/serving/predict",
		Inputs: map[string]graph.TensorInfo{"image_bytes": ti("serving_default_image_bytes:0", graph.String, -1)},
		Outputs: map[string]graph.TensorInfo{
			"probabilities": ti("StatefulPartitionedCall:0", graph.Float, -1, 3),
			"classes":       ti("StatefulPartitionedCall:1", graph.String, -1, 3),
		}},
	"predict_images": {Key: "predict_images", Method: "tensorflow/serving/predict",
		Inputs:  map[string]graph.TensorInfo{"images": ti("predict_images_images:0", graph.Float, -1, 4, 4, 3)},
		Outputs: map[string]graph.TensorInfo{"probabilities": ti("StatefulPartitionedCall_1:0", graph.Float, -1, 3)}},
	// Two inputs, one output: a[i]·sum + b[i].
	"two_inputs": {Key: "two_inputs", Method: "tensorflow/serving/predict",
		Inputs: map[string]graph.TensorInfo{
			"a": ti("two_inputs_a:0", graph.Double, -1, 2),
			"b": ti("two_inputs_b:0", graph.Int64, -1),
		},
		Outputs: map[string]graph.TensorInfo{"y": ti("StatefulPartitionedCall_2:0", graph.Double, -1)}},
	// A scalar output cannot be split by rows: never batched.
	"total": {Key: "total", Method: "tensorflow/serving/predict",
		Inputs:  map[string]graph.TensorInfo{"x": ti("total_x:0", graph.Int32, -1)},
		Outputs: map[string]graph.TensorInfo{"sum": ti("StatefulPartitionedCall_3:0", graph.Int64)}},
	// Binary output: TF Serving writes keys ending in _bytes as {"b64": ...}.
	"echo": {Key: "echo", Method: "tensorflow/serving/predict",
		Inputs: map[string]graph.TensorInfo{"flag": ti("echo_flag:0", graph.Bool, -1)},
		Outputs: map[string]graph.TensorInfo{
			"out_bytes": ti("StatefulPartitionedCall_4:0", graph.String, -1),
			"text":      ti("StatefulPartitionedCall_4:1", graph.String, -1),
		}},
	"__saved_model_init_op": {Key: "__saved_model_init_op",
		Inputs:  map[string]graph.TensorInfo{},
		Outputs: map[string]graph.TensorInfo{"__saved_model_init_op": ti("NoOp", 0)}},
}

func (m *fakeModel) Signatures() map[string]*graph.Signature { return fakeSignatures }
func (m *fakeModel) Labels() []string                        { return m.labels }

func (m *fakeModel) Close() error {
	if m.running.Load() != 0 {
		panic("fake model closed during a run")
	}
	m.closed.Store(true)
	return nil
}

// hold makes runs wait until the returned function is called.
func (m *fakeModel) hold() (release func()) {
	gate := make(chan struct{})
	m.mu.Lock()
	m.gate = gate
	m.mu.Unlock()
	return sync.OnceFunc(func() { close(gate) })
}

// resetBatches forgets the runs so far (the warm-up's).
func (m *fakeModel) resetBatches() {
	m.mu.Lock()
	m.batches = nil
	m.mu.Unlock()
}

func (m *fakeModel) batchSizes() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int{}, m.batches...)
}

// fakeProbs are an image's made-up probabilities, from a hash of its bytes
// and the model version.
func fakeProbs(data []byte, version int64) []float32 {
	h := fnv.New32a()
	h.Write(data)
	fmt.Fprint(h, version)
	v := h.Sum32()
	a, b, c := float32(v&0xFF+1), float32(v>>8&0xFF+1), float32(v>>16&0xFF+1)
	s := a + b + c
	return []float32{a / s, b / s, c / s}
}

func (m *fakeModel) Run(signature string, inputs map[string]*Column) (map[string]*Column, error) {
	if m.closed.Load() {
		return nil, graph.ErrClosed
	}
	m.running.Add(1)
	defer m.running.Add(-1)
	m.mu.Lock()
	gate := m.gate
	m.mu.Unlock()
	if gate != nil {
		<-gate
	}
	time.Sleep(m.delay)
	var rows int
	for _, c := range inputs {
		rows = c.Rows()
	}
	m.mu.Lock()
	m.batches = append(m.batches, rows)
	m.mu.Unlock()
	switch signature {
	case "serving_default":
		imgs := inputs["image_bytes"].Data.([][]byte)
		var probs []float32
		var classes [][]byte
		for _, img := range imgs {
			if bytes.Contains(img, []byte("CORRUPT")) { // past a valid header, as TensorFlow finds it
				return nil, &graph.Error{Code: graph.CodeInvalidArgument, Message: "Invalid PNG data, size 42"}
			}
			probs = append(probs, fakeProbs(img, m.version)...)
			for _, c := range fakeClasses {
				classes = append(classes, []byte(c))
			}
		}
		return map[string]*Column{
			"probabilities": {DType: graph.Float, Shape: []int64{int64(rows), 3}, Data: probs},
			"classes":       {DType: graph.String, Shape: []int64{int64(rows), 3}, Data: classes},
		}, nil
	case "predict_images":
		px := inputs["images"].Data.([]float32)
		var probs []float32
		for r := 0; r < rows; r++ {
			var buf bytes.Buffer
			fmt.Fprint(&buf, px[r*48:(r+1)*48])
			probs = append(probs, fakeProbs(buf.Bytes(), m.version)...)
		}
		return map[string]*Column{"probabilities": {DType: graph.Float, Shape: []int64{int64(rows), 3}, Data: probs}}, nil
	case "two_inputs":
		a, b := inputs["a"].Data.([]float64), inputs["b"].Data.([]int64)
		y := make([]float64, rows)
		for r := range y {
			y[r] = a[2*r]*a[2*r+1] + float64(b[r])
		}
		return map[string]*Column{"y": {DType: graph.Double, Shape: []int64{int64(rows)}, Data: y}}, nil
	case "total":
		sum := int64(0)
		for _, x := range inputs["x"].Data.([]int32) {
			sum += int64(x)
		}
		return map[string]*Column{"sum": {DType: graph.Int64, Shape: []int64{}, Data: []int64{sum}}}, nil
	case "echo":
		flags := inputs["flag"].Data.([]bool)
		raw, text := make([][]byte, rows), make([][]byte, rows)
		for r, f := range flags {
			raw[r] = []byte{0xFF, 0x00, byte(r)}
			text[r] = []byte(strconv.FormatBool(f) + " \"quoted\"")
		}
		return map[string]*Column{
			"out_bytes": {DType: graph.String, Shape: []int64{int64(rows)}, Data: raw},
			"text":      {DType: graph.String, Shape: []int64{int64(rows)}, Data: text},
		}, nil
	}
	return nil, &graph.Error{Code: graph.CodeNotFound, Message: "no signature " + signature}
}

// fakeDir makes a model directory with empty but complete version folders.
func fakeDir(t testing.TB, versions ...int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "shapes")
	for _, v := range versions {
		fakeVersion(t, dir, v)
	}
	return dir
}

func fakeVersion(t testing.TB, dir string, v int64) {
	t.Helper()
	vdir := filepath.Join(dir, strconv.FormatInt(v, 10))
	if err := os.MkdirAll(filepath.Join(vdir, "variables"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{contract.SavedModelFile, contract.VariablesIndex} {
		if err := os.WriteFile(filepath.Join(vdir, f), []byte("fake"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeLoader loads fake models; a version folder holding a file named
// "broken" fails to load. Every model loaded is kept for inspection.
type fakeLoader struct {
	mu     sync.Mutex
	models map[int64]*fakeModel
	tune   func(*fakeModel)
}

func (l *fakeLoader) load(dir string) (Model, error) {
	if _, err := os.Stat(filepath.Join(dir, "broken")); err == nil {
		return nil, &graph.Error{Code: graph.CodeDataLoss, Message: "Could not read variables: checksum mismatch"}
	}
	v, _ := strconv.ParseInt(filepath.Base(dir), 10, 64)
	m := &fakeModel{version: v, labels: fakeClasses}
	if l.tune != nil {
		l.tune(m)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.models == nil {
		l.models = map[int64]*fakeModel{}
	}
	l.models[v] = m
	return m, nil
}

func (l *fakeLoader) model(v int64) *fakeModel {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.models[v]
}

func fakeConfig(dir string) Config {
	return Config{
		Dir: dir, Name: "shapes",
		Batch:        BatchConfig{MaxBatch: 4, Timeout: time.Millisecond, Workers: 1, MaxQueue: 64},
		Timeout:      5 * time.Second,
		MaxBodyBytes: 1 << 20,
		Limits:       Limits{MaxPixels: 10_000},
	}
}

// fakeServer is a server on fake models, with its loader.
func fakeServer(t testing.TB, cfg Config, tune func(*fakeModel)) (*Server, *fakeLoader) {
	t.Helper()
	l := &fakeLoader{tune: tune}
	s, err := New(cfg, l.load)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, l
}
