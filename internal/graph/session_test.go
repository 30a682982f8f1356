package graph

import (
	"errors"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
)

func run1(t *testing.T, s *Session, sig string, feeds map[string]*Tensor, fetch string) *Tensor {
	t.Helper()
	out, err := s.Run(sig, feeds, fetch)
	if err != nil {
		t.Fatalf("Run(%s): %v", sig, err)
	}
	return out[0]
}

func affine(t *testing.T, s *Session, x []float32) []float32 {
	t.Helper()
	in, err := NewTensor([]int64{int64(len(x) / 2), 2}, x)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	y := run1(t, s, "affine", map[string]*Tensor{"x": in}, "y")
	defer y.Close()
	v, err := y.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSignaturesDecoded(t *testing.T) {
	s := loadToy(t)
	sig, err := s.Signature("affine")
	if err != nil {
		t.Fatal(err)
	}
	x := sig.Inputs["x"]
	if x.DType != Float || !reflect.DeepEqual(x.Shape, []int64{-1, 2}) || x.Name == "" {
		t.Errorf("affine input x = %+v", x)
	}
	if got := sig.OutputKeys(); !reflect.DeepEqual(got, []string{"y"}) {
		t.Errorf("affine outputs = %v", got)
	}
	if sig := s.MetaGraph.Signatures["echo"]; sig == nil || sig.Inputs["s"].Shape != nil || sig.Inputs["bf16"].DType != BFloat16 {
		t.Errorf("echo signature = %+v", sig)
	}
	if s.MetaGraph.Saver == nil || s.MetaGraph.Saver.RestoreOp == "" {
		t.Errorf("no SaverDef decoded: %+v", s.MetaGraph.Saver)
	}
	if !reflect.DeepEqual(s.MetaGraph.Tags, []string{"serve"}) {
		t.Errorf("tags = %v", s.MetaGraph.Tags)
	}
	if _, err := s.Signature("nope"); err == nil {
		t.Error("unknown signature accepted")
	}
}

func TestRun(t *testing.T) {
	s := loadToy(t)
	got := affine(t, s, []float32{1, 0, 0, 1, 1, 1})
	want := []float32{1, 2, 3, 4, 4, 6}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("affine = %v, want %v", got, want)
	}
	// Zero-sized batch.
	if got := affine(t, s, []float32{}); len(got) != 0 {
		t.Errorf("empty batch gave %v", got)
	}
}

func TestEchoEveryDType(t *testing.T) {
	s := loadToy(t)
	mk := func(tensor *Tensor, err error) *Tensor {
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tensor.Close)
		return tensor
	}
	long := []byte("a string longer than the inline size of a TF_TString")
	feeds := map[string]*Tensor{
		"s":    mk(NewStrings([]int64{3}, [][]byte{[]byte(""), []byte("abc"), long})),
		"i32":  mk(NewTensor([]int64{2, 1}, []int32{-5, 7})),
		"i64":  mk(NewScalar(int64(1) << 50)),
		"u8":   mk(NewTensor([]int64{0, 3}, []uint8{})),
		"b":    mk(NewTensor([]int64{2}, []bool{true, false})),
		"f16":  mk(NewHalf([]int64{2}, []float32{1.5, -0.25})),
		"bf16": mk(NewBFloat16([]int64{1}, []float32{3})),
		"f64":  mk(NewScalar(2.5)),
	}
	keys := []string{"s", "s_len", "i32", "i64", "u8", "b", "f16", "bf16", "f64"}
	out, err := s.Run("echo", feeds, keys...)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out {
		defer o.Close()
	}
	strs, _ := out[0].Strings()
	if string(strs[2]) != string(long) || len(strs[0]) != 0 {
		t.Errorf("strings came back as %q", strs)
	}
	if lens, _ := Values[int32](out[1]); !reflect.DeepEqual(lens, []int32{0, 3, int32(len(long))}) {
		t.Errorf("tf.strings.length = %v", lens)
	}
	if v, _ := Values[int32](out[2]); !reflect.DeepEqual(v, []int32{-5, 7}) || !reflect.DeepEqual(out[2].Shape(), []int64{2, 1}) {
		t.Errorf("int32 echo = %v %v", v, out[2].Shape())
	}
	if v, _ := Values[int64](out[3]); v[0] != 1<<50 || len(out[3].Shape()) != 0 {
		t.Errorf("int64 scalar echo = %v", v)
	}
	if !reflect.DeepEqual(out[4].Shape(), []int64{0, 3}) {
		t.Errorf("zero-sized uint8 echo shape = %v", out[4].Shape())
	}
	if v, _ := Values[bool](out[5]); !reflect.DeepEqual(v, []bool{true, false}) {
		t.Errorf("bool echo = %v", v)
	}
	if v, _ := out[6].Float32s(); !reflect.DeepEqual(v, []float32{1.5, -0.25}) || out[6].DType() != Half {
		t.Errorf("float16 echo = %v %s", v, out[6].DType())
	}
	if v, _ := out[7].Float32s(); !reflect.DeepEqual(v, []float32{3}) || out[7].DType() != BFloat16 {
		t.Errorf("bfloat16 echo = %v %s", v, out[7].DType())
	}
	if v, _ := Values[float64](out[8]); v[0] != 2.5 {
		t.Errorf("float64 echo = %v", v)
	}
}

func TestRunMisuseIsAnError(t *testing.T) {
	s := loadToy(t)
	good, _ := NewTensor([]int64{1, 2}, []float32{1, 2})
	defer good.Close()
	wrongType, _ := NewTensor([]int64{1, 2}, []int32{1, 2})
	defer wrongType.Close()
	wrongShape, _ := NewTensor([]int64{2}, []float32{1, 2})
	defer wrongShape.Close()
	closed, _ := NewTensor([]int64{1, 2}, []float32{1, 2})
	closed.Close()
	cases := []struct {
		name    string
		sig     string
		feeds   map[string]*Tensor
		fetches []string
	}{
		{"unknown signature", "nope", map[string]*Tensor{"x": good}, []string{"y"}},
		{"unknown input", "affine", map[string]*Tensor{"x": good, "z": good}, []string{"y"}},
		{"missing input", "affine", map[string]*Tensor{}, []string{"y"}},
		{"wrong dtype", "affine", map[string]*Tensor{"x": wrongType}, []string{"y"}},
		{"wrong rank", "affine", map[string]*Tensor{"x": wrongShape}, []string{"y"}},
		{"closed tensor", "affine", map[string]*Tensor{"x": closed}, []string{"y"}},
		{"unknown output", "affine", map[string]*Tensor{"x": good}, []string{"q"}},
	}
	for _, c := range cases {
		_, err := s.Run(c.sig, c.feeds, c.fetches...)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s: err = %v, want a *graph.Error", c.name, err)
			continue
		}
		t.Logf("%s: %v", c.name, err)
	}
	// A TensorFlow-side failure comes back as a status error too.
	bad, _ := NewTensor([]int64{1, 3}, []float32{1, 2, 3})
	defer bad.Close()
	if _, err := s.Run("affine", map[string]*Tensor{"x": bad}, "y"); err == nil {
		t.Error("shape [1,3] fed to x:[-1,2] accepted")
	}
}

func TestClosedSession(t *testing.T) {
	s := loadToy(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	x, _ := NewTensor([]int64{1, 2}, []float32{1, 2})
	defer x.Close()
	if _, err := s.Run("affine", map[string]*Tensor{"x": x}, "y"); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: %v", err)
	}
	if err := s.Save(filepath.Join(t.TempDir(), "ckpt")); !errors.Is(err, ErrClosed) {
		t.Errorf("Save after Close: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	needTF(t)
	_, err := LoadSavedModel(t.TempDir(), SessionOptions{})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("loading an empty folder: %v", err)
	}
	if _, err := LoadSavedModel(toyModel(t), SessionOptions{Tags: []string{"train"}}); err == nil {
		t.Error("missing tag accepted")
	}
}

func TestSaveRestore(t *testing.T) {
	s := loadToy(t)
	delta, _ := NewScalar(float32(1))
	defer delta.Close()
	bump := func() {
		run1(t, s, "bump", map[string]*Tensor{"delta": delta}, "count").Close()
	}
	bump()
	before := affine(t, s, []float32{1, 1})
	prefix := filepath.Join(t.TempDir(), "ckpt")
	if err := s.Save(prefix); err != nil {
		t.Fatal(err)
	}
	bump()
	if reflect.DeepEqual(affine(t, s, []float32{1, 1}), before) {
		t.Fatal("bump changed nothing")
	}
	// Restore into a fresh session of the same model.
	fresh, err := LoadSavedModel(s.Dir, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if err := fresh.Restore(prefix); err != nil {
		t.Fatal(err)
	}
	if got := affine(t, fresh, []float32{1, 1}); !reflect.DeepEqual(got, before) {
		t.Errorf("after restore: %v, want %v", got, before)
	}
	if err := fresh.Restore(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("restoring a missing checkpoint succeeded")
	}
}

func TestConcurrentRunsMatchSerial(t *testing.T) {
	s := loadToy(t)
	inputs := make([][]float32, 64)
	want := make([][]float32, len(inputs))
	for i := range inputs {
		inputs[i] = []float32{float32(i), float32(-i), 0.5, float32(i * i)}
		want[i] = affine(t, s, inputs[i])
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for rep := 0; rep < 20; rep++ {
				for i := g; i < len(inputs); i += 8 {
					in, _ := NewTensor([]int64{2, 2}, inputs[i])
					out, err := s.Run("affine", map[string]*Tensor{"x": in}, "y")
					in.Close()
					if err != nil {
						errs <- err
						return
					}
					got, _ := out[0].Float32s()
					out[0].Close()
					if !reflect.DeepEqual(got, want[i]) {
						errs <- errors.New("concurrent result differs from serial")
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCloseWaitsForRuns(t *testing.T) {
	s := loadToy(t)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x, _ := NewTensor([]int64{1, 2}, []float32{1, 2})
			defer x.Close()
			for i := 0; i < 200; i++ {
				out, err := s.Run("affine", map[string]*Tensor{"x": x}, "y")
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				out[0].Close()
			}
		}()
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	wg.Wait()
}

func TestVariable(t *testing.T) {
	s := loadToy(t)
	w, err := s.Variable("w")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if v, _ := w.Float32s(); !reflect.DeepEqual(v, []float32{1, 2, 3, 4}) {
		t.Errorf("w = %v", v)
	}
	if _, err := s.Variable("nope"); err == nil {
		t.Error("unknown variable read")
	}
}
