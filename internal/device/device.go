// Package device decides and reports where TensorFlow runs a model: the
// runtime.device guard (auto | cpu | gpu) against a silent CPU fallback, the
// one start line naming the device and the precision, and the warning for
// float16 on a CPU.
package device

import (
	"fmt"
	"io"
	"strings"

	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/graph"
)

// Modes of runtime.device (--device).
const (
	Auto = "auto" // the GPU when TensorFlow sees one, else the CPU
	CPU  = "cpu"  // GPUs hidden from TensorFlow
	GPU  = "gpu"  // exit 5 unless TensorFlow sees a GPU
)

// Modes lists the valid runtime.device values.
var Modes = []string{Auto, CPU, GPU}

// ParseMode checks a runtime.device value; "" is auto.
func ParseMode(s string) (string, error) {
	switch s {
	case "", Auto:
		return Auto, nil
	case CPU, GPU:
		return s, nil
	}
	return "", fault.BadSetting("runtime.device", "%q: use one of %s", s, strings.Join(Modes, ", "))
}

// Placement is where a command runs its model, and in which precision.
type Placement struct {
	Mode      string `json:"mode"`      // runtime.device
	Device    string `json:"device"`    // TensorFlow's name of the device the model's ops are placed on
	Type      string `json:"type"`      // CPU or GPU
	Precision string `json:"precision"` // the model's policy: float32, mixed_bfloat16, mixed_float16; "" when not recorded
	Warning   string `json:"warning,omitempty"`

	Devices []graph.Device `json:"-"`
}

// list is graph.ListDevices; tests replace it to pretend a GPU.
var list = graph.ListDevices

// Check lists the devices a session with opts gets and applies the guard:
// with runtime.device gpu and no GPU it returns a model error (exit 5) naming
// the library and where CUDA was looked for. Call it once, before anything
// is written.
func Check(opts graph.SessionOptions) (*Placement, error) {
	return check(opts, "runtime.device gpu", ", or set runtime.device auto or cpu")
}

// RequireGPU is Check with runtime.device gpu, for `xcept version --require-gpu`.
func RequireGPU(opts graph.SessionOptions) (*Placement, error) {
	opts.Device = GPU
	return check(opts, fault.Option("require-gpu"), "")
}

// check places the session; what asked for the GPU (the words of a
// setting, or a fault.Option) starts the error when there is none.
func check(opts graph.SessionOptions, what any, advice string) (*Placement, error) {
	mode, err := ParseMode(opts.Device)
	if err != nil {
		return nil, err
	}
	devices, err := list(opts)
	if err != nil {
		return nil, fault.New(fault.ToolFailed, "listing TensorFlow's devices: %v", err)
	}
	p := &Placement{Mode: mode, Devices: devices}
	for _, d := range devices {
		// TensorFlow places ops on the first GPU when it has one (its
		// numbering already follows runtime.visible_devices), else the CPU.
		if d.Type == "GPU" && p.Type != "GPU" || p.Type == "" && d.Type == "CPU" {
			p.Device, p.Type = d.Name, d.Type
		}
	}
	if mode == GPU && p.Type != "GPU" {
		return nil, fault.New(fault.ToolFailed, "%s: %s%s", what, noGPU(devices), advice)
	}
	return p, nil
}

// noGPU is the guard's line: what TensorFlow sees, the library loaded,
// how it was built, and where it looked for CUDA.
func noGPU(devices []graph.Device) string {
	var seen []string
	for _, d := range devices {
		seen = append(seen, short(d.Name))
	}
	msg := fmt.Sprintf("TensorFlow sees no GPU (only %s)", strings.Join(seen, ", "))
	lib, err := graph.LibraryPath()
	if err != nil {
		return msg + "; " + err.Error()
	}
	msg += "; library " + lib
	if b := graph.ReadBuildInfo(lib); b != nil {
		if !b.CUDABuild {
			msg += ", a CPU-only build (" + b.File + " says is_cuda_build False)"
		} else {
			msg += fmt.Sprintf(", built for CUDA %s and cuDNN %s", b.CUDA, b.CuDNN)
		}
	}
	s := graph.SearchCUDA(lib)
	ld := "LD_LIBRARY_PATH (unset)"
	if len(s.LDLibraryPath) > 0 {
		ld = "LD_LIBRARY_PATH=" + strings.Join(s.LDLibraryPath, ":")
	}
	rp := fmt.Sprintf("none of its %d runpath folders", len(s.Runpath))
	if ex := s.Existing(); len(ex) > 0 {
		rp = "its runpath " + strings.Join(ex, ":")
	}
	return msg + "; CUDA libraries looked for in " + ld + ", " + rp + " and the system library cache" +
		": run where TensorFlow sees the GPU (nvidia-smi; docker run --gpus all with Dockerfile.gpu)"
}

// short is the device name without the job prefix: "CPU:0".
func short(name string) string {
	if i := strings.LastIndex(name, "device:"); i >= 0 {
		return name[i+len("device:"):]
	}
	return name
}

// Use records the model's precision and decides the warning: mixed_float16
// with runtime.device auto and no GPU is slower than float32 on a CPU.
func (p *Placement) Use(precision string) {
	p.Precision, p.Warning = precision, ""
	if precision == "mixed_float16" && p.Mode == Auto && p.Type != "GPU" {
		p.Warning = "warning: mixed_float16 on a CPU (TensorFlow sees no GPU) is slower than float32; on a CPU use mixed_bfloat16 or float32 (--precision, model.precision)"
	}
}

// Line is the start line: "device CPU:0 (/job:localhost/...), precision float32".
func (p *Placement) Line() string {
	prec := p.Precision
	if prec == "" {
		prec = "not recorded with the model"
	}
	return fmt.Sprintf("device %s (%s, runtime.device %s), precision %s", short(p.Device), p.Device, p.Mode, prec)
}

// Announce prints the start line and the warning, if any, once (unless quiet).
func (p *Placement) Announce(w io.Writer, quiet bool) {
	if quiet {
		return
	}
	fmt.Fprintln(w, p.Line())
	if p.Warning != "" {
		fmt.Fprintln(w, p.Warning)
	}
}
