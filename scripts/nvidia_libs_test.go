package scripts

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSite lays out what pip install --target puts beside tensorflow/: lib
// folders of NVIDIA wheels, one wheel without lib/ and a stray file. The
// cuDNN folder holds a real shared library under cuDNN's soname, built here.
func fakeSite(t *testing.T) string {
	site := t.TempDir()
	for _, d := range []string{"tensorflow", "nvidia/cudnn/lib", "nvidia/cublas/lib", "nvidia/cuda_runtime/lib", "nvidia/nccl/include"} {
		if err := os.MkdirAll(filepath.Join(site, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(site, "nvidia", "__init__.py"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return site
}

func nvidiaLibs(t *testing.T, env []string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"nvidia_libs.sh"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), stderr.String(), err
}

func TestNvidiaLibsOnAFakeWheelLayout(t *testing.T) {
	site := fakeSite(t)
	want := strings.Join([]string{
		filepath.Join(site, "nvidia/cublas/lib"), filepath.Join(site, "nvidia/cuda_runtime/lib"), filepath.Join(site, "nvidia/cudnn/lib"),
	}, ":")
	got, stderr, err := nvidiaLibs(t, []string{"LD_LIBRARY_PATH="}, site)
	if err != nil || got != want {
		t.Fatalf("printed %q (%v, %s), want %q", got, err, stderr, want)
	}
	// As the image's entrypoint: the command sees the folders first, then the old value.
	got, _, err = nvidiaLibs(t, []string{"LD_LIBRARY_PATH=/usr/local/nvidia/lib64"}, site, "sh", "-c", `echo "$LD_LIBRARY_PATH"`)
	if err != nil || got != want+":/usr/local/nvidia/lib64" {
		t.Errorf("the command saw LD_LIBRARY_PATH=%q (%v)", got, err)
	}

	// The dynamic loader finds a library by its soname in those folders.
	cc, err := exec.LookPath("cc")
	py, err2 := exec.LookPath("python3")
	if err != nil || err2 != nil {
		t.Skip("no cc or python3 to prove the loader finds the folders")
	}
	src := filepath.Join(t.TempDir(), "cudnn.c")
	os.WriteFile(src, []byte("int cudnnGetVersion(void) { return 90300; }\n"), 0o644)
	if out, err := exec.Command(cc, "-shared", "-fPIC", "-o", filepath.Join(site, "nvidia/cudnn/lib/libcudnn.so.9"), src).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v: %s", err, out)
	}
	load := `import ctypes; print(ctypes.CDLL("libcudnn.so.9").cudnnGetVersion())`
	if got, stderr, err := nvidiaLibs(t, nil, site, py, "-c", load); err != nil || got != "90300" {
		t.Errorf("loading libcudnn.so.9 through the script: %q, %v, %s", got, err, stderr)
	}
	if out, err := exec.Command(py, "-c", load).CombinedOutput(); err == nil {
		t.Errorf("libcudnn.so.9 loads without the script too (%s): the test proves nothing", out)
	}
}

func TestNvidiaLibsWithoutWheels(t *testing.T) {
	site := t.TempDir()
	_, stderr, err := nvidiaLibs(t, nil, site, "true")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 5 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 ||
		!strings.Contains(stderr, site+" holds no nvidia/*/lib folder") {
		t.Errorf("no wheels: %v, stderr %q", err, stderr)
	}
}
