package export

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/testenv"
)

func TestNpyHeaderAlignsData(t *testing.T) {
	for _, shape := range [][]int{{3}, {2, 3}, {200, 299, 299, 3}, {}} {
		h := npyHeader("|u1", shape)
		if len(h)%64 != 0 || h[len(h)-1] != '\n' {
			t.Errorf("shape %v: header of %d bytes (want a multiple of 64 ending in a newline)", shape, len(h))
		}
		_, descr, got, err := parseNpy(h)
		if err != nil || descr != "|u1" || !slices.Equal(got, shape) {
			t.Errorf("shape %v: parsed back %s %v, %v", shape, descr, got, err)
		}
	}
}

func TestNpyUint8RoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.npy")
	data := []uint8{0, 1, 2, 253, 254, 255}
	if err := writeNpyUint8(path, []int{1, 2, 3}, data); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	got, descr, shape, err := parseNpy(raw)
	if err != nil || descr != "|u1" || !slices.Equal(shape, []int{1, 2, 3}) || !bytes.Equal(got, data) {
		t.Errorf("read back %v %s %v, %v", got, descr, shape, err)
	}
	if err := writeNpyUint8(path, []int{2, 2}, data); err == nil {
		t.Error("a shape that does not fit the data was written")
	}
}

func TestReadNpyFloat32(t *testing.T) {
	dir := t.TempDir()
	write := func(name, descr string, shape []int, body []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, append(npyHeader(descr, shape), body...), 0o644)
		return p
	}
	var body []byte
	for _, f := range []float32{0.25, -1, float32(math.Pi)} {
		body = binary.LittleEndian.AppendUint32(body, math.Float32bits(f))
	}
	got, shape, err := readNpyFloat32(write("ok.npy", "<f4", []int{1, 3}, body))
	if err != nil || !slices.Equal(shape, []int{1, 3}) || !slices.Equal(got, []float32{0.25, -1, float32(math.Pi)}) {
		t.Errorf("read %v %v, %v", got, shape, err)
	}
	bad := []struct{ name, path, want string }{
		{"float64", write("f8.npy", "<f8", []int{1}, make([]byte, 8)), "float32"},
		{"short", write("short.npy", "<f4", []int{4}, body), "data bytes"},
		{"garbage", filepath.Join(dir, "garbage.npy"), "not a .npy"},
	}
	os.WriteFile(bad[2].path, []byte("hello, world"), 0o644)
	for _, b := range bad {
		if _, _, err := readNpyFloat32(b.path); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: error %v, want one mentioning %q", b.name, err, b.want)
		}
	}
	raw := []byte(npyMagic + "\x01\x00")
	dict := "{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }\n"
	raw = append(binary.LittleEndian.AppendUint16(raw, uint16(len(dict))), dict...)
	os.WriteFile(filepath.Join(dir, "f.npy"), append(raw, body...), 0o644)
	if _, _, err := readNpyFloat32(filepath.Join(dir, "f.npy")); err == nil {
		t.Error("Fortran order was accepted")
	}
}

// TestNpyWithNumpy: numpy reads what Go writes, and Go reads what numpy
// writes, which is the whole contract with the verify scripts.
func TestNpyWithNumpy(t *testing.T) {
	py := testenv.Python(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "images.npy"), filepath.Join(dir, "probs.npy")
	pixels := make([]uint8, 2*4*4*3)
	for i := range pixels {
		pixels[i] = uint8(i * 7)
	}
	if err := writeNpyUint8(in, []int{2, 4, 4, 3}, pixels); err != nil {
		t.Fatal(err)
	}
	script := `
import sys, numpy as np
a = np.load(sys.argv[1])
assert a.dtype == np.uint8 and a.shape == (2, 4, 4, 3), (a.dtype, a.shape)
assert (a.reshape(-1) == (np.arange(a.size) * 7 % 256)).all()
np.save(sys.argv[2], (a.reshape(2, -1)[:, :3] / 255.0).astype(np.float32))
`
	if msg, err := exec.Command(py, "-c", script, in, out).CombinedOutput(); err != nil {
		t.Fatalf("numpy: %v: %s", err, msg)
	}
	got, shape, err := readNpyFloat32(out)
	if err != nil || !slices.Equal(shape, []int{2, 3}) {
		t.Fatalf("read %v, %v", shape, err)
	}
	for i, v := range got {
		row, col := i/3, i%3
		if want := float32(float64(pixels[row*48+col]) / 255.0); math.Abs(float64(v-want)) > 1e-7 {
			t.Errorf("value %d = %v, want %v", i, v, want)
		}
	}
}
