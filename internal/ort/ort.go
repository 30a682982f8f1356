// Package ort runs xcept's ONNX models through onnxruntime's C API: the
// libonnxruntime.so of the project venv's pinned onnxruntime wheel, loaded at
// run time (dlopen) by github.com/yalue/onnxruntime_go. Nothing links it at
// build time, so xcept builds and runs where it is missing, and says so.
//
// The binding asks the library for C API version 24 (onnxruntime 1.24's);
// onnxruntime keeps every older API version of its C API, so the wheel's 1.32
// library serves it (measured: see TestLoadsWheelLibrary).
package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	onnxruntime "github.com/yalue/onnxruntime_go"

	"github.com/xcept/xcept/internal/pyenv"
)

// LibraryEnv names a libonnxruntime.so to use instead of the venv's.
const LibraryEnv = "XCEPT_ONNXRUNTIME_LIB"

var (
	loadOnce sync.Once
	loadErr  error
	loaded   string
)

// Load opens libonnxruntime once: $XCEPT_ONNXRUNTIME_LIB when set, else the
// one in the onnxruntime wheel of xcept's Python environment. The error says
// what is missing in one line.
func Load() error {
	loadOnce.Do(func() { loaded, loadErr = load() })
	return loadErr
}

// Library is the file Load opened ("" before a successful Load).
func Library() string { return loaded }

// Version is the loaded library's version string ("1.32.0").
func Version() string {
	if Load() != nil {
		return ""
	}
	return onnxruntime.GetVersion()
}

func load() (string, error) {
	path, err := find()
	if err != nil {
		return "", err
	}
	onnxruntime.SetSharedLibraryPath(path)
	if err := onnxruntime.InitializeEnvironment(onnxruntime.WithLogLevelError()); err != nil {
		return "", fmt.Errorf("onnxruntime: cannot load %s: %v", path, oneLine(err))
	}
	return path, nil
}

// find locates the library without loading it.
func find() (string, error) {
	if p := os.Getenv(LibraryEnv); p != "" {
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			return "", fmt.Errorf("onnxruntime: %s=%s is not a file (point it at libonnxruntime.so)", LibraryEnv, p)
		}
		return p, nil
	}
	py, err := pyenv.Python()
	if err != nil {
		return "", fmt.Errorf("onnxruntime: no Python environment to find libonnxruntime.so in (%v)", err)
	}
	// .venv/bin/python → .venv/lib/python3.*/site-packages/onnxruntime/capi/
	venv := filepath.Dir(filepath.Dir(py))
	matches, _ := filepath.Glob(filepath.Join(venv, "lib", "python3*", "site-packages", "onnxruntime", "capi", "libonnxruntime.so*"))
	if len(matches) == 0 {
		return "", fmt.Errorf("onnxruntime: libonnxruntime.so is missing from %s (the onnxruntime wheel is not installed: run `make setup`, or set %s)",
			filepath.Join(venv, "lib", "python3*", "site-packages", "onnxruntime", "capi"), LibraryEnv)
	}
	sort.Strings(matches)
	return matches[len(matches)-1], nil
}

func oneLine(err error) string {
	s := err.Error()
	out := make([]rune, 0, len(s))
	space := false
	for _, r := range s {
		if r == '\n' || r == '\r' || r == '\t' || r == ' ' {
			space = true
			continue
		}
		if space && len(out) > 0 {
			out = append(out, ' ')
		}
		space = false
		out = append(out, r)
	}
	return string(out)
}

// Session is one ONNX model of xcept's float signature (predict_images): one
// float32 input of n×size×size×3 pixel values 0..255, one float32 output of
// n×classes probabilities. Predict may be called from many goroutines.
type Session struct {
	Path    string
	Input   string
	Output  string
	Size    int
	Classes int

	uint8In bool // OpenFeatures' model: uint8 pixels in

	mu sync.RWMutex // Close waits for runs in flight
	s  *onnxruntime.DynamicAdvancedSession
}

// Options are the session's thread settings (runtime.intra_op_threads and
// runtime.inter_op_threads; 0 lets onnxruntime decide).
type Options struct {
	IntraOpThreads int
	InterOpThreads int
	// Spin lets the thread pools busy-wait for work between and inside runs
	// (runtime.onnxruntime_spin; onnxruntime's own default is to spin).
	// Off, idle threads sleep: on a shared or busy machine spinning burns
	// CPU time other work needs (measured in README, "Inference engines").
	Spin bool
	// Providers are the execution providers in order of preference
	// (runtime.onnxruntime_providers): ProviderTensorRT and ProviderCUDA need
	// onnxruntime-gpu's library and CUDA (Dockerfile.gpu); the CPU is always
	// last, for what they do not take. Empty: the CPU only.
	Providers []string
}

// Execution providers.
const (
	ProviderCPU      = "cpu"
	ProviderCUDA     = "cuda"
	ProviderTensorRT = "tensorrt"
)

// Providers lists runtime.onnxruntime_providers' values.
var Providers = []string{ProviderTensorRT, ProviderCUDA, ProviderCPU}

// Session configuration keys of onnxruntime (onnxruntime_session_options_config_keys.h).
const (
	keyIntraSpin = "session.intra_op.allow_spinning"
	keyInterSpin = "session.inter_op.allow_spinning"
)

// ErrShape is a model that is not xcept's float signature.
var ErrShape = errors.New("not an xcept image model")

// Open loads an ONNX file converted from predict_images.
func Open(path string, opts Options) (*Session, error) {
	return open(path, opts, onnxruntime.TensorElementDataTypeFloat)
}

// OpenFeatures loads an ONNX file converted from the trainer's features
// signature: one uint8 input of n×size×size×3 pixels, one float32 output of
// n×dim pooled features (Classes holds dim). Run it with Features.
func OpenFeatures(path string, opts Options) (*Session, error) {
	return open(path, opts, onnxruntime.TensorElementDataTypeUint8)
}

func open(path string, opts Options, inType onnxruntime.TensorElementDataType) (*Session, error) {
	if err := Load(); err != nil {
		return nil, err
	}
	ins, outs, err := onnxruntime.GetInputOutputInfo(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, oneLine(err))
	}
	if len(ins) != 1 || len(outs) != 1 {
		return nil, fmt.Errorf("%s: %d inputs and %d outputs, want one image input and one output: %w", path, len(ins), len(outs), ErrShape)
	}
	in, out := ins[0], outs[0]
	d := in.Dimensions
	if in.DataType != inType || len(d) != 4 || d[1] != d[2] || d[1] < 1 || d[3] != 3 ||
		out.DataType != onnxruntime.TensorElementDataTypeFloat || len(out.Dimensions) != 2 || out.Dimensions[1] < 1 {
		want := "float [batch, size, size, 3] → float [batch, classes]"
		if inType == onnxruntime.TensorElementDataTypeUint8 {
			want = "uint8 [batch, size, size, 3] → float [batch, features]"
		}
		return nil, fmt.Errorf("%s: input %s, output %s; want %s: %w", path, &in, &out, want, ErrShape)
	}
	so, err := sessionOptions(opts)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	s, err := onnxruntime.NewDynamicAdvancedSession(path, []string{in.Name}, []string{out.Name}, so)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, oneLine(err))
	}
	return &Session{Path: path, Input: in.Name, Output: out.Name, Size: int(d[1]), Classes: int(out.Dimensions[1]),
		uint8In: inType == onnxruntime.TensorElementDataTypeUint8, s: s}, nil
}

// sessionOptions are onnxruntime's session options for opts; the caller
// destroys them.
func sessionOptions(opts Options) (*onnxruntime.SessionOptions, error) {
	so, err := onnxruntime.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	err = func() error {
		if opts.IntraOpThreads > 0 {
			if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
				return err
			}
		}
		if opts.InterOpThreads > 0 {
			if err := so.SetInterOpNumThreads(opts.InterOpThreads); err != nil {
				return err
			}
		}
		// onnxruntime's memory pattern allocates its planned block afresh
		// for each run: at batch 16 (299 px) ~360 MB of pages faulted in
		// again per run, ~95 ms CPU per image more (README, run E).
		if err := so.SetMemPattern(false); err != nil {
			return err
		}
		spin := "0"
		if opts.Spin {
			spin = "1"
		}
		for _, key := range []string{keyIntraSpin, keyInterSpin} {
			if err := so.AddSessionConfigEntry(key, spin); err != nil {
				return err
			}
		}
		for _, p := range opts.Providers {
			if err := appendProvider(so, p); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		so.Destroy()
		return nil, fmt.Errorf("onnxruntime session options: %v", oneLine(err))
	}
	return so, nil
}

// appendProvider adds one execution provider with onnxruntime's default
// options for it (device 0). A library without it (the CPU wheel's) is an
// error naming the provider.
func appendProvider(so *onnxruntime.SessionOptions, name string) error {
	switch name {
	case ProviderCPU:
		return nil // always there, after the others
	case ProviderCUDA:
		po, err := onnxruntime.NewCUDAProviderOptions()
		if err != nil {
			return fmt.Errorf("the %s execution provider: %v (it needs onnxruntime-gpu's library and CUDA: see Dockerfile.gpu)", name, oneLine(err))
		}
		defer po.Destroy()
		if err := so.AppendExecutionProviderCUDA(po); err != nil {
			return fmt.Errorf("the %s execution provider: %v (it needs onnxruntime-gpu's library and CUDA: see Dockerfile.gpu)", name, oneLine(err))
		}
	case ProviderTensorRT:
		po, err := onnxruntime.NewTensorRTProviderOptions()
		if err != nil {
			return fmt.Errorf("the %s execution provider: %v (it needs onnxruntime-gpu's library, CUDA and TensorRT: see Dockerfile.gpu)", name, oneLine(err))
		}
		defer po.Destroy()
		if err := so.AppendExecutionProviderTensorRT(po); err != nil {
			return fmt.Errorf("the %s execution provider: %v (it needs onnxruntime-gpu's library, CUDA and TensorRT: see Dockerfile.gpu)", name, oneLine(err))
		}
	default:
		return fmt.Errorf("execution provider %q: use %s", name, strings.Join(Providers, ", "))
	}
	return nil
}

// Predict runs n uint8 RGB images of the model's size (NHWC) and returns
// their probabilities, n × classes.
func (s *Session) Predict(images []uint8, n int) ([]float32, error) {
	if s.uint8In {
		return nil, fmt.Errorf("%s takes uint8 pixels to features: run it with Features", s.Path)
	}
	px := s.Size * s.Size * 3
	if len(images) != n*px {
		return nil, fmt.Errorf("%d bytes of images is not %d images of %d×%d×3", len(images), n, s.Size, s.Size)
	}
	f := make([]float32, len(images))
	for i, p := range images {
		f[i] = float32(p)
	}
	return s.PredictFloat(f, n)
}

// PredictFloat runs n images given as float32 pixel values 0..255.
func (s *Session) PredictFloat(pixels []float32, n int) ([]float32, error) {
	if s.uint8In {
		return nil, fmt.Errorf("%s takes uint8 pixels to features: run it with Features", s.Path)
	}
	return run(s, pixels, n)
}

// Features runs OpenFeatures' model on n uint8 RGB images of its size
// (NHWC, as TensorFlow's features signature takes them) and returns n × dim
// features. The pixels are handed to onnxruntime as they are, not copied.
func (s *Session) Features(images []uint8, n int) ([]float32, error) {
	if !s.uint8In {
		return nil, fmt.Errorf("%s takes float pixels to probabilities: run it with Predict", s.Path)
	}
	if px := s.Size * s.Size * 3; len(images) != n*px {
		return nil, fmt.Errorf("%d bytes of images is not %d images of %d×%d×3", len(images), n, s.Size, s.Size)
	}
	return run(s, images, n)
}

func run[T uint8 | float32](s *Session, pixels []T, n int) ([]float32, error) {
	if n == 0 {
		return nil, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.s == nil {
		return nil, errors.New("onnxruntime session is closed")
	}
	in, err := onnxruntime.NewTensor(onnxruntime.NewShape(int64(n), int64(s.Size), int64(s.Size), 3), pixels)
	if err != nil {
		return nil, err
	}
	defer in.Destroy()
	out, err := onnxruntime.NewEmptyTensor[float32](onnxruntime.NewShape(int64(n), int64(s.Classes)))
	if err != nil {
		return nil, err
	}
	defer out.Destroy()
	if err := s.s.Run([]onnxruntime.Value{in}, []onnxruntime.Value{out}); err != nil {
		return nil, fmt.Errorf("onnxruntime: %v", oneLine(err))
	}
	return append([]float32(nil), out.GetData()...), nil
}

// Close waits for runs in flight and frees the session; it is idempotent.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s == nil {
		return nil
	}
	err := s.s.Destroy()
	s.s = nil
	return err
}
