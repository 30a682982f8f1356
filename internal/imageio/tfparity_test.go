package imageio

import (
	"encoding/binary"
	"image"
	"image/color"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/xcept/xcept/internal/testenv"
)

// TestMatchesServingGraph: prepare's decode and squash resize of a JPEG
// (training images) agree with what the serving graph does to the same
// file (tf.io.decode_jpeg without fancy upsampling, accurate IDCT, then
// tf.image.resize bilinear with antialias), so a model sees the same pixels
// in training and in serving.
func TestMatchesServingGraph(t *testing.T) {
	py := testenv.Python(t)
	src := image.NewRGBA(image.Rect(0, 0, 320, 200))
	for y := 0; y < 200; y++ {
		for x := 0; x < 320; x++ {
			v := uint8(128 + 100*math.Sin(float64(x)/9)*math.Cos(float64(y)/13))
			src.Set(x, y, color.RGBA{v, uint8(x * 255 / 320), uint8(y * 255 / 200), 255})
		}
	}
	data, err := Encode(src, JPEG, 90)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	jpg := filepath.Join(dir, "a.jpg")
	os.WriteFile(jpg, data, 0o644)
	img, _, err := Decode(data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got := Resize(img, 96, Squash)
	script := `
import sys, numpy as np, tensorflow as tf
data = open(sys.argv[1], "rb").read()
img = tf.io.decode_jpeg(data, channels=3, fancy_upscaling=False, dct_method="INTEGER_ACCURATE")
out = tf.image.resize(img, [96, 96], method="bilinear", antialias=True)
np.asarray(out, dtype="<f4").tofile(sys.argv[2])
`
	out := filepath.Join(dir, "tf.f32")
	cmd := exec.Command(py, "-c", script, jpg, out)
	cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=3")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, msg)
	}
	raw, _ := os.ReadFile(out)
	maxDiff, sum := 0.0, 0.0
	for y := 0; y < 96; y++ {
		for x := 0; x < 96; x++ {
			for c := 0; c < 3; c++ {
				i := (y*96+x)*3 + c
				want := float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
				d := math.Abs(float64(got.Pix[y*got.Stride+x*4+c]) - want)
				maxDiff, sum = max(maxDiff, d), sum+d
			}
		}
	}
	mean := sum / (96 * 96 * 3)
	t.Logf("Go decode+resize vs serving graph: max |Δ| %.2f, mean |Δ| %.3f levels", maxDiff, mean)
	if maxDiff > 4 || mean > 0.5 {
		t.Errorf("training and serving pixels differ: max %.2f, mean %.3f levels", maxDiff, mean)
	}
}
