package device

import (
	"bytes"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/graph"
)

const cpu0 = "/job:localhost/replica:0/task:0/device:CPU:0"

func fake(t *testing.T, devices ...graph.Device) {
	t.Helper()
	old := list
	list = func(graph.SessionOptions) ([]graph.Device, error) { return devices, nil }
	t.Cleanup(func() { list = old })
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]string{"": Auto, "auto": Auto, "cpu": CPU, "gpu": GPU} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v", in, got, err)
		}
	}
	_, err := ParseMode("tpu")
	if cli.ExitCode(err) != cli.ExitUsage || !strings.Contains(err.Error(), `runtime.device "tpu": use one of`) {
		t.Errorf("ParseMode(tpu): %v", err)
	}
}

func TestPicksTheFirstGPU(t *testing.T) {
	gpu0 := "/job:localhost/replica:0/task:0/device:GPU:0"
	fake(t, graph.Device{Name: cpu0, Type: "CPU"}, graph.Device{Name: gpu0, Type: "GPU", MemoryBytes: 1 << 30},
		graph.Device{Name: "/job:localhost/replica:0/task:0/device:GPU:1", Type: "GPU"})
	p, err := Check(graph.SessionOptions{Device: GPU})
	if err != nil {
		t.Fatal(err)
	}
	p.Use("mixed_float16")
	if p.Device != gpu0 || p.Type != "GPU" || p.Warning != "" {
		t.Errorf("placement %+v: want GPU:0 and no warning", p)
	}
	if got := p.Line(); got != "device GPU:0 ("+gpu0+", runtime.device gpu), precision mixed_float16" {
		t.Errorf("Line() = %q", got)
	}
}

// TestOnThisCPU runs the guard against TensorFlow itself: this machine has no
// GPU TensorFlow can use.
func TestOnThisCPU(t *testing.T) {
	if err := graph.Load(); err != nil {
		t.Skip(err)
	}
	p, err := Check(graph.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Device != cpu0 || p.Type != "CPU" || p.Mode != Auto {
		t.Errorf("auto: %+v", p)
	}
	p.Use("mixed_float16")
	var out bytes.Buffer
	p.Announce(&out, false)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || lines[0] != "device CPU:0 ("+cpu0+", runtime.device auto), precision mixed_float16" ||
		!strings.Contains(lines[1], "slower than float32") || !strings.Contains(lines[1], "mixed_bfloat16 or float32") {
		t.Errorf("announced %q", out.String())
	}
	p.Use("float32")
	if p.Warning != "" {
		t.Errorf("float32 warns: %q", p.Warning)
	}

	_, err = Check(graph.SessionOptions{Device: GPU})
	if cli.ExitCode(err) != cli.ExitModel {
		t.Fatalf("gpu on a CPU machine: %v (exit %d), want exit 5", err, cli.ExitCode(err))
	}
	msg := err.Error()
	lib, _ := graph.LibraryPath()
	for _, want := range []string{"runtime.device gpu: TensorFlow sees no GPU (only CPU:0)", "library " + lib, "a CPU-only build", "LD_LIBRARY_PATH", "runpath", "runtime.device auto or cpu"} {
		if !strings.Contains(msg, want) {
			t.Errorf("guard message lacks %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("guard message is not one line: %q", msg)
	}
}
