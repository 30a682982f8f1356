package graph

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestDevicesFromTensorFlow lists the devices of a model's session and of an
// empty session as TensorFlow reports them: this machine's CPU at least.
func TestDevicesFromTensorFlow(t *testing.T) {
	s := loadToy(t)
	got, err := s.Devices()
	if err != nil {
		t.Fatal(err)
	}
	empty, err := ListDevices(SessionOptions{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	for _, list := range [][]Device{got, empty} {
		if len(list) == 0 || list[0].Type != "CPU" || !strings.HasSuffix(list[0].Name, "/device:CPU:0") {
			t.Fatalf("devices %+v: want the CPU first", list)
		}
	}
	for _, d := range empty {
		if d.Type == "GPU" {
			t.Errorf("Device cpu still lists %+v", d)
		}
	}
	s.Close()
	if _, err := s.Devices(); err != ErrClosed {
		t.Errorf("Devices after Close: %v, want ErrClosed", err)
	}
}

func TestParseBuildInfo(t *testing.T) {
	// The two lines as the 2.21.0 wheels ship them (tensorflow-cpu, tensorflow).
	cpu := `build_info = collections.OrderedDict([('is_cuda_build', False), ('is_rocm_build', False), ('is_tensorrt_build', False)])`
	gpu := `build_info = collections.OrderedDict([('cpu_compiler', 'clang'), ('cuda_compute_capabilities', ['sm_60', 'sm_70', 'sm_80', 'sm_89', 'compute_90']), ('cuda_version', '12.5.1'), ('cudnn_version', '9'), ('is_cuda_build', True), ('is_rocm_build', False), ('is_tensorrt_build', False)])`
	if got := parseBuildInfo("f", cpu); *got != (BuildInfo{File: "f"}) {
		t.Errorf("CPU wheel: %+v", got)
	}
	if got := parseBuildInfo("f", gpu); *got != (BuildInfo{File: "f", CUDABuild: true, CUDA: "12.5.1", CuDNN: "9"}) {
		t.Errorf("CUDA wheel: %+v", got)
	}
	lib, err := LibraryPath()
	if err != nil {
		t.Fatal(err)
	}
	// The library linked here is the pinned tensorflow-cpu wheel's.
	if b := ReadBuildInfo(lib); b == nil || b.CUDABuild || b.CUDA != "" {
		t.Errorf("build info of %s: %+v, want a CPU-only build", lib, b)
	}
	if b := ReadBuildInfo(filepath.Join(t.TempDir(), "libtensorflow.so.2")); b != nil {
		t.Errorf("a folder without build_info.py: %+v", b)
	}
}

func TestSearchCUDA(t *testing.T) {
	// An entry of the CUDA wheel's libtensorflow_framework.so.2 runpath.
	got := expandRunpath("$ORIGIN/../nvidia/cudnn/lib:${ORIGIN}/../../tensorrt::$ORIGIN/", "/opt/tf/tensorflow")
	want := []string{"/opt/tf/nvidia/cudnn/lib", "/opt/tensorrt", "/opt/tf/tensorflow"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("expandRunpath = %q, want %q", got, want)
	}
	lib, err := LibraryPath()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("LD_LIBRARY_PATH", "/a::/b")
	s := SearchCUDA(lib)
	if !reflect.DeepEqual(s.LDLibraryPath, []string{"/a", "/b"}) {
		t.Errorf("LD_LIBRARY_PATH read as %q", s.LDLibraryPath)
	}
	// libtensorflow_cc.so.2 of the CPU wheel carries $ORIGIN/: its own folder.
	dir := filepath.Dir(lib)
	found := false
	for _, d := range s.Existing() {
		found = found || d == dir
	}
	if !found {
		t.Errorf("runpath %q: want %s among the existing folders", s.Runpath, dir)
	}
	if _, err := os.Stat(filepath.Join(dir, frameworkLib)); err != nil {
		t.Errorf("%s: %v", frameworkLib, err)
	}
}
