package graph

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/xcept/xcept/internal/testenv"
)

// needTF skips (or fails under XCEPT_TEST_STRICT=1) when libtensorflow is absent.
func needTF(t testing.TB) {
	t.Helper()
	if err := Load(); err != nil {
		testenv.Unavailable(t, err.Error())
	}
}

var toy testenv.Once[string]

// toyModel builds testdata/make_model.py's SavedModel once per test run.
func toyModel(t *testing.T) string {
	t.Helper()
	needTF(t)
	py := testenv.Python(t)
	return toy.Get(t, "building the toy model", func() (string, error) {
		dir, err := os.MkdirTemp("", "xcept-toy-")
		if err != nil {
			return "", err
		}
		model := filepath.Join(dir, "toy")
		cmd := exec.Command(py, "testdata/make_model.py", model)
		cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=2")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", errors.New(string(out))
		}
		return model, nil
	})
}

func TestMain(m *testing.M) {
	if spec := os.Getenv("XCEPT_TEST_WORKER"); spec != "" {
		// One task of a collective test (server_test.go).
		if err := collectiveWorker(os.Getenv("XCEPT_TEST_TOY"), spec); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if dir, ok := toy.Made(); ok {
		os.RemoveAll(filepath.Dir(dir))
	}
	os.Exit(code)
}

func loadToy(t *testing.T) *Session {
	t.Helper()
	s, err := LoadSavedModel(toyModel(t), SessionOptions{IntraOpThreads: 1, InterOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestVersionAndLibraryPath(t *testing.T) {
	needTF(t)
	v, err := Version()
	if err != nil || v == "" {
		t.Fatalf("Version() = %q, %v", v, err)
	}
	p, err := LibraryPath()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("LibraryPath() = %q does not exist: %v", p, err)
	}
	t.Logf("TensorFlow %s from %s", v, p)
}

var shapes = [][]int64{{}, {0}, {3}, {2, 3}, {2, 0, 4}, {1, 1, 1, 5}}

func roundTrip[T Scalar](t *testing.T, gen func(i int) T) {
	t.Helper()
	for _, shape := range shapes {
		vals := make([]T, numElements(shape))
		for i := range vals {
			vals[i] = gen(i)
		}
		tensor, err := NewTensor(shape, vals)
		if err != nil {
			t.Fatalf("NewTensor(%v): %v", shape, err)
		}
		got, err := Values[T](tensor)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, vals) || !reflect.DeepEqual(tensor.Shape(), shape) {
			t.Errorf("%s %v: got %v %v, want %v", tensor.DType(), shape, tensor.Shape(), got, vals)
		}
		tensor.Close()
		tensor.Close() // idempotent
	}
}

func TestTensorRoundTrips(t *testing.T) {
	needTF(t)
	roundTrip(t, func(i int) float32 { return float32(i) * 1.5 })
	roundTrip(t, func(i int) float64 { return float64(i) / 3 })
	roundTrip(t, func(i int) int32 { return int32(i) - 7 })
	roundTrip(t, func(i int) int64 { return int64(i) << 40 })
	roundTrip(t, func(i int) uint8 { return uint8(i * 37) })
	roundTrip(t, func(i int) int8 { return int8(-i) })
	roundTrip(t, func(i int) int16 { return int16(i * 1000) })
	roundTrip(t, func(i int) bool { return i%2 == 0 })

	for _, shape := range shapes {
		vals := make([][]byte, numElements(shape))
		for i := range vals {
			// Short strings live inline in a TF_TString, long ones on the heap.
			vals[i] = make([]byte, i*13)
			for j := range vals[i] {
				vals[i][j] = byte(j) // includes NUL bytes
			}
		}
		s, err := NewStrings(shape, vals)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Strings()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(vals) {
			t.Fatalf("strings %v: %d elements, want %d", shape, len(got), len(vals))
		}
		for i := range vals {
			if string(got[i]) != string(vals[i]) {
				t.Errorf("string %d: got %q want %q", i, got[i], vals[i])
			}
		}
		s.Close()
	}
}

func TestFloat16Conversions(t *testing.T) {
	needTF(t)
	exact := []float32{0, 1, -2, 0.5, 65504, -0.25, 6.103515625e-05, 5.960464477539063e-08}
	for _, mk := range []func([]int64, []float32) (*Tensor, error){NewHalf, NewBFloat16} {
		tensor, err := mk([]int64{int64(len(exact))}, exact)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := tensor.Float32s()
		for i, v := range exact {
			tol := float64(0)
			if tensor.DType() == BFloat16 {
				tol = math.Abs(float64(v)) / 128 // 8 bits of mantissa
			}
			if math.Abs(float64(got[i]-v)) > tol {
				t.Errorf("%s(%v) = %v", tensor.DType(), v, got[i])
			}
		}
		tensor.Close()
	}
	cases := []struct {
		in   float32
		half uint16
		bf   uint16
	}{
		{1, 0x3c00, 0x3f80},
		{-2, 0xc000, 0xc000},
		{1e9, 0x7c00, 0x4e6e}, // half overflows to +Inf
		{float32(math.Inf(-1)), 0xfc00, 0xff80},
		{1.0009765625, 0x3c01, 0x3f80},  // 1 + 2^-10
		{1.00048828125, 0x3c00, 0x3f80}, // tie rounds to even
	}
	for _, c := range cases {
		if got := float32ToHalf(c.in); got != c.half {
			t.Errorf("float32ToHalf(%v) = %#04x, want %#04x", c.in, got, c.half)
		}
		if got := float32ToBFloat16(c.in); got != c.bf {
			t.Errorf("float32ToBFloat16(%v) = %#04x, want %#04x", c.in, got, c.bf)
		}
	}
	if !math.IsNaN(float64(halfToFloat32(float32ToHalf(float32(math.NaN()))))) {
		t.Error("NaN does not survive float16")
	}
}

func TestBadTensors(t *testing.T) {
	needTF(t)
	if _, err := NewTensor([]int64{2, 2}, []float32{1, 2, 3}); err == nil {
		t.Error("shape/length mismatch accepted")
	}
	if _, err := NewTensor([]int64{-1}, []float32{}); err == nil {
		t.Error("negative dimension accepted")
	}
	f, _ := NewTensor([]int64{1}, []float32{1})
	if _, err := Values[int32](f); err == nil {
		t.Error("reading float32 as int32 accepted")
	}
	f.Close()
	var e *Error
	if _, err := f.Float32s(); !errors.As(err, &e) || e.Code != CodeFailedPrecondition {
		t.Errorf("reading a closed tensor: %v", err)
	}
}

// rss is the resident set size in bytes, from /proc/self/statm.
func rss(t *testing.T) int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skip("no /proc/self/statm")
	}
	var size, res int64
	if _, err := fmtSscan(string(data), &size, &res); err != nil {
		t.Fatal(err)
	}
	return res * int64(os.Getpagesize())
}

func TestTensorsDoNotLeak(t *testing.T) {
	needTF(t)
	long := make([][]byte, 16)
	for i := range long {
		long[i] = make([]byte, 200) // heap-allocated TF_TStrings
	}
	vals := make([]float32, 1024)
	churn := func(n int) {
		for i := 0; i < n; i++ {
			f, err := NewTensor([]int64{32, 32}, vals)
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewStrings([]int64{16}, long)
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			s.Close()
		}
	}
	churn(10_000) // warm up allocator pools
	before := rss(t)
	churn(100_000)
	after := rss(t)
	t.Logf("RSS before %.1f MiB, after 100,000 tensor pairs %.1f MiB", float64(before)/(1<<20), float64(after)/(1<<20))
	// Leaking would cost 100,000 × (4 KiB + 16 × 200 B) ≈ 700 MiB.
	if after-before > 32<<20 {
		t.Errorf("RSS grew by %d MiB over 100,000 tensors", (after-before)>>20)
	}
}
