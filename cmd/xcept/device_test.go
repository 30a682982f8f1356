package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/demodata"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/testmodel"
)

const cpu0 = "/job:localhost/replica:0/task:0/device:CPU:0"

// TestVersionListsTensorFlowDevices: the devices come from TensorFlow
// (TF_SessionListDevices), and this machine's CPU is one of them.
func TestVersionListsTensorFlowDevices(t *testing.T) {
	if err := graph.Load(); err != nil {
		t.Skip(err)
	}
	code, stdout, stderr := runXcept(t, nil, "version", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var info VersionInfo
	if err := json.Unmarshal([]byte(stdout), &info); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if len(info.Devices) == 0 || info.Devices[0] != (graph.Device{Name: cpu0, Type: "CPU", MemoryBytes: info.Devices[0].MemoryBytes}) {
		t.Errorf("devices %+v: want %s first", info.Devices, cpu0)
	}
	if info.Build == nil || info.Build.CUDABuild || info.Build.CUDA != "" {
		t.Errorf("build %+v: the pinned tensorflow-cpu wheel says it is no CUDA build", info.Build)
	}

	code, _, stderr = runXcept(t, nil, "version", "--require-gpu")
	if code != cli.ExitModel || strings.Count(strings.TrimSpace(stderr), "\n") != 0 ||
		!strings.Contains(stderr, "--require-gpu: TensorFlow sees no GPU (only CPU:0); library "+info.Library) {
		t.Errorf("--require-gpu on a CPU machine: exit %d, stderr %q", code, stderr)
	}
}

// TestDeviceGuard: runtime.device gpu on this CPU machine exits 5 with one
// line before anything is written; a bad value is a usage error.
func TestDeviceGuard(t *testing.T) {
	ds := trainDataset(t)
	runDir := filepath.Join(t.TempDir(), "runs", "gpu")
	code, _, stderr := runXcept(t, nil, "--config", writeTrainConfig(t, "  device: gpu\n"), "train", "--data", ds, "--run", runDir)
	lib, _ := graph.LibraryPath()
	if code != cli.ExitModel || strings.Count(strings.TrimSpace(stderr), "\n") != 0 ||
		!strings.Contains(stderr, "runtime.device gpu: TensorFlow sees no GPU (only CPU:0); library "+lib) ||
		!strings.Contains(stderr, "CUDA libraries looked for in LD_LIBRARY_PATH") {
		t.Errorf("runtime.device gpu: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(runDir); !os.IsNotExist(err) {
		t.Errorf("the guard left %s behind (%v)", runDir, err)
	}
	code, _, stderr = runXcept(t, nil, "train", "--data", ds, "--run", runDir, "--device", "tpu")
	if code != cli.ExitUsage || !strings.Contains(stderr, `runtime.device (--device) "tpu"`) {
		t.Errorf("--device tpu: exit %d, stderr %q", code, stderr)
	}
}

// TestMixedFloat16OnCPUWarnsOnce trains one epoch of a mixed_float16 model on
// this CPU: one start line, one warning, and both in the JSON result.
func TestMixedFloat16OnCPUWarnsOnce(t *testing.T) {
	spec := testmodel.TinySpec()
	spec.Precision = "mixed_float16"
	f16 := testmodel.Build(t, spec)
	// A small dataset of the tiny model's classes with the float16 model as
	// its model: float16 convolutions are slow on a CPU, and what is checked
	// is what the command says, not what it learns.
	gen := demodata.Defaults()
	gen.Classes, gen.PerClass, gen.Width, gen.Height, gen.Seed = 3, 10, 96, 96, 3
	data := tempDemoDataset(t, gen, 96, f16)
	runDir := filepath.Join(t.TempDir(), "runs", "f16")
	code, stdout, stderr := runXcept(t, nil, "--config", writeTrainConfig(t, ""), "--json", "train", "--data", data, "--run", runDir,
		"--epochs", "1", "--precision", "mixed_float16")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if n := strings.Count(stderr, "warning: mixed_float16 on a CPU"); n != 1 {
		t.Errorf("the float16 warning printed %d times in:\n%s", n, stderr)
	}
	if n := strings.Count(stderr, "device CPU:0 ("+cpu0+", runtime.device auto), precision mixed_float16\n"); n != 1 {
		t.Errorf("the start line printed %d times in:\n%s", n, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var res struct { // the result is the last JSON line, a bare object
		Device struct{ Device, Type, Precision, Warning string }
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if d := res.Device; d.Device != cpu0 || d.Type != "CPU" || d.Precision != "mixed_float16" || !strings.Contains(d.Warning, "mixed_bfloat16 or float32") {
		t.Errorf("JSON device %+v", d)
	}
}
