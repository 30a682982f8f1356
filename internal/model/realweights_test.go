package model_test

import (
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/infer"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/testenv"
	"github.com/xcept/xcept/internal/testmodel"
)

// kerasFeatures is the reference: tf_keras's own Xception with the same .h5,
// Keras's preprocessing (x/127.5 - 1) and global average pooling of each
// feature block's output, concatenated, in inference mode, on the same uint8
// pixels (n × size × size × 3). Block ends are named here as a fresh Keras
// session names them (block N of 2..13 ends at its residual Add, add_{N-2}),
// independently of the builder's rule.
const kerasFeatures = `
import sys, numpy as np, tf_keras as keras
h5, pixels, n, size, out, blocks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
x = np.fromfile(pixels, dtype=np.uint8).reshape(n, size, size, 3).astype("float32")
keras.backend.clear_session()
base = keras.applications.Xception(weights=h5, include_top=False, input_shape=(size, size, 3))
ends = {"block1": "block1_conv2_act", "block14": "block14_sepconv2_act"}
ends.update({f"block{i}": "add" if i == 2 else f"add_{i - 2}" for i in range(2, 14)})
outs = [base.get_layer(ends[b]).output for b in blocks.split(",")]
maps = keras.Model(base.input, outs)(keras.applications.xception.preprocess_input(x), training=False)
maps = maps if isinstance(maps, list) else [maps]
pooled = np.concatenate([keras.layers.GlobalAveragePooling2D()(m) for m in maps], axis=1)
np.asarray(pooled, dtype="<f4").tofile(out)
`

// TestRealWeightsFeaturesMatchKeras: the features signature of a model
// built from the real ImageNet .h5 (--weights PATH), run through the C API
// on real photos resized as xcept resizes them, equals tf_keras's
// Xception(weights=FILE, include_top=False) + global average pooling on the
// same pixels to 1e-4. It proves the whole path a user's model takes: the
// builder's weight loading, the in-graph preprocessing, the frozen base in
// inference mode and the SavedModel signature.
func TestRealWeightsFeaturesMatchKeras(t *testing.T) {
	py := testenv.Python(t)
	spec := testmodel.RealSpec(t)
	m, err := model.Open(testmodel.Real(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Info.Weights != spec.Weights || m.Info.WeightsSHA256 == nil {
		t.Fatalf("model.json weights %q (sha256 %v), want %q", m.Info.Weights, m.Info.WeightsSHA256, spec.Weights)
	}
	photos, err := filepath.Glob(filepath.Join(testenv.KitchenPhotos(t), "*", "*.jpg"))
	if err != nil || len(photos) == 0 {
		t.Fatalf("no kitchen photos (%v); run `make fixtures`", err)
	}
	sort.Strings(photos)
	size := m.Info.ImageSize
	var pixels []uint8
	for _, p := range photos {
		img, ferr := infer.Decode(infer.Input{Path: p}, infer.Limits{})
		if ferr != nil {
			t.Fatal(ferr)
		}
		pixels = append(pixels, infer.Square(img, size, imageio.Squash)...)
	}
	got, err := m.Features(pixels, len(photos))
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	in, out := filepath.Join(dir, "pixels.u8"), filepath.Join(dir, "features.f32")
	if err := os.WriteFile(in, pixels, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", kerasFeatures, spec.Weights, in, strconv.Itoa(len(photos)), strconv.Itoa(size), out, strings.Join(m.Info.Features(), ","))
	cmd.Env = append(os.Environ(), "TF_USE_LEGACY_KERAS=1", "TF_CPP_MIN_LOG_LEVEL=3", "CUDA_VISIBLE_DEVICES=")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tf_keras reference: %v\n%s", err, msg)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, len(raw)/4)
	for i := range want {
		want[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	if len(got) != len(photos)*m.Info.FeatureDim || len(want) != len(got) {
		t.Fatalf("%d features from the C API, %d from Keras, want %d × %d", len(got), len(want), len(photos), m.Info.FeatureDim)
	}
	var peak float64
	for _, v := range want {
		peak = math.Max(peak, math.Abs(float64(v)))
	}
	d := maxAbsDiff(got, want)
	t.Logf("%d real photos at %d px: max |C API − tf_keras| = %.3g over %d features (largest feature %.3g)", len(photos), size, d, len(got), peak)
	if peak < 0.1 {
		t.Fatalf("the largest Keras feature is %.3g: all but dead features prove nothing", peak)
	}
	if d > 1e-4 {
		t.Errorf("features differ from tf_keras's by up to %.3g, want at most 1e-4", d)
	}
}
