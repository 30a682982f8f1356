package model_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/testenv"
	"github.com/xcept/xcept/internal/testmodel"
)

var opts = graph.SessionOptions{IntraOpThreads: 2, InterOpThreads: 1}

func openTiny(t *testing.T) *model.Model {
	t.Helper()
	m, err := model.Open(testmodel.Tiny(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// fixedBatch is n noisy images whose class (0..classes-1) shows as a bright
// colour channel, so that even an untrained base gives separable features.
func fixedBatch(m *model.Model, n int, seed int64) model.Batch {
	rng := rand.New(rand.NewSource(seed))
	s := m.Info.ImageSize
	b := model.Batch{Images: make([]uint8, n*s*s*3), Labels: make([]int32, n)}
	for i := range b.Labels {
		class := i % m.Info.NumClasses
		b.Labels[i] = int32(class)
		img := b.Images[i*s*s*3 : (i+1)*s*s*3]
		for p := range img {
			v := rng.Intn(96)
			if p%3 == class%3 {
				v += 160
			}
			img[p] = uint8(v)
		}
	}
	return b
}

func TestInfo(t *testing.T) {
	m := openTiny(t)
	i := m.Info
	taps := []string{"block4", "block8", "block12", "block14"} // model.feature_blocks auto
	if i.ImageSize != 96 || i.NumClasses != 3 || i.Weights != "none" || i.FeatureDim != 3*728+2048 || len(i.Blocks) != 14 ||
		!slices.Equal(i.Features(), taps) || !slices.Equal(i.FeatureBlocks, taps) || !i.Choosable() ||
		len(i.FeatureChoices) != 2 || !slices.Equal(i.FeatureChoices[0], []string{"block14"}) || !slices.Equal(i.FeatureChoices[1], taps) {
		t.Errorf("model.json = %+v", i)
	}
	for _, sig := range []string{"train_step", "finetune_step", "train_head_step", "eval_step", "predict", "features", "explain", "set_feature_mask"} {
		if _, err := m.Session.Signature(sig); err != nil {
			t.Error(err)
		}
		if _, ok := i.Signatures["trainer"][sig]; !ok {
			t.Errorf("model.json lacks trainer signature %s", sig)
		}
	}
}

// The acceptance test: 30 train_step runs on one fixed batch halve the loss.
func TestTrainStepLearnsFixedBatch(t *testing.T) {
	m := openTiny(t)
	b := fixedBatch(m, 8, 1)
	p := model.StepParams{LearningRate: 1e-3, Seed: [2]int64{1, 2}}
	var first, last model.StepResult
	for i := 0; i < 30; i++ {
		r, err := m.Step(contract.SigTrainStep, b, p)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = r
		}
		last = r
	}
	t.Logf("train_step loss %.4f -> %.4f, accuracy %.2f -> %.2f", first.Loss, last.Loss, first.Accuracy, last.Accuracy)
	if !(last.Loss <= first.Loss/2) {
		t.Errorf("loss fell from %.4f to %.4f: less than half", first.Loss, last.Loss)
	}
}

func maxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// Save through the SaverDef, restore into fresh trainer and serving sessions:
// predictions match to 1e-6.
func TestSaveRestoreMatchesPredictions(t *testing.T) {
	dir := testmodel.Tiny(t)
	m, err := model.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b := fixedBatch(m, 6, 2)
	for i := 0; i < 3; i++ { // move the head away from its initial values
		if _, err := m.Step(contract.SigTrainStep, b, model.StepParams{LearningRate: 1e-2}); err != nil {
			t.Fatal(err)
		}
	}
	want, err := m.Predict(b.Images, b.N())
	if err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(t.TempDir(), "ckpt")
	if err := m.Session.Save(prefix); err != nil {
		t.Fatal(err)
	}
	for _, open := range []func(string, graph.SessionOptions) (*model.Model, error){model.Open, model.OpenServing} {
		fresh, err := open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		before, _ := fresh.Predict(b.Images, b.N())
		if err := fresh.Session.Restore(prefix); err != nil {
			t.Fatal(err)
		}
		got, err := fresh.Predict(b.Images, b.N())
		fresh.Close()
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(before, want); d < 1e-4 {
			t.Fatalf("%s: training changed nothing (max diff %g), the test proves nothing", fresh.Session.Dir, d)
		}
		if d := maxAbsDiff(got, want); d > 1e-6 {
			t.Errorf("%s: after restore, predictions differ by %g", fresh.Session.Dir, d)
		}
	}
}

func TestConcurrentPredictMatchesSerial(t *testing.T) {
	m := openTiny(t)
	batches := make([]model.Batch, 8)
	want := make([][]float32, 8)
	for i := range batches {
		batches[i] = fixedBatch(m, 2, int64(10+i))
		var err error
		if want[i], err = m.Predict(batches[i].Images, 2); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	diffs := make([]float64, 8)
	errs := make([]error, 8)
	for g := range batches {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for rep := 0; rep < 3; rep++ {
				got, err := m.Predict(batches[g].Images, 2)
				if err != nil {
					errs[g] = err
					return
				}
				diffs[g] = math.Max(diffs[g], maxAbsDiff(got, want[g]))
			}
		}(g)
	}
	wg.Wait()
	for g := range batches {
		if errs[g] != nil {
			t.Error(errs[g])
		}
		if diffs[g] > 1e-6 {
			t.Errorf("goroutine %d: concurrent predictions differ from serial by %g", g, diffs[g])
		}
	}
}

func TestHeadStepAndEval(t *testing.T) {
	m := openTiny(t)
	b := fixedBatch(m, 4, 3)
	feats, err := m.Features(b.Images, b.N())
	if err != nil {
		t.Fatal(err)
	}
	if len(feats) != 4*m.Info.FeatureDim {
		t.Fatalf("features: %d values", len(feats))
	}
	r, err := m.HeadStep(feats, b, model.StepParams{LearningRate: 1e-3})
	if err != nil || r.Loss <= 0 {
		t.Fatalf("train_head_step: %+v %v", r, err)
	}
	loss, probs, err := m.Eval(b)
	if err != nil || len(probs) != 12 || loss <= 0 {
		t.Fatalf("eval_step: %v %v %v", loss, probs, err)
	}
	for i := 0; i < 4; i++ {
		sum := probs[3*i] + probs[3*i+1] + probs[3*i+2]
		if math.Abs(float64(sum)-1) > 1e-5 {
			t.Errorf("probabilities of image %d sum to %v", i, sum)
		}
	}
	if _, err := m.Predict(b.Images[:10], 1); err == nil {
		t.Error("short image buffer accepted")
	}
}

// The .h5 path: Keras writes base weights; the built model's base kernel,
// read through the C API, equals the saved one.
// TestBuildFromH5Weights: a model built with --weights PATH.h5 holds the
// file's weights and records its SHA-256. The model is the shared
// real-weights one (testmodel.Real), which model.Build made from the
// fixture .h5 as a user's --weights PATH would; the kernel is read from the
// file with h5py, in a Python that needs no TensorFlow.
func TestBuildFromH5Weights(t *testing.T) {
	py := testenv.Python(t)
	spec := testmodel.RealSpec(t)
	dir := testmodel.Real(t)
	kernel := filepath.Join(t.TempDir(), "kernel.bin")
	script := `
import sys, h5py, numpy as np
layer = h5py.File(sys.argv[1], "r")["block2_sepconv1"]["block2_sepconv1"]
np.asarray(layer["depthwise_kernel:0"]).astype("<f4").tofile(sys.argv[2])
`
	if out, err := exec.Command(py, "-c", script, spec.Weights, kernel).CombinedOutput(); err != nil {
		t.Fatalf("reading the .h5 with h5py: %v\n%s", err, out)
	}
	m, err := model.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	v, err := m.Session.Variable("block2_sepconv1/depthwise_kernel")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	got, _ := v.Float32s()
	raw, err := os.ReadFile(kernel)
	if err != nil {
		t.Fatal(err)
	}
	want := bytesToFloats(raw)
	if len(got) == 0 || len(got) != len(want) || maxAbsDiff(got, want) != 0 {
		t.Errorf("block2_sepconv1 depthwise kernel differs from the .h5 (%d vs %d values)", len(got), len(want))
	}
	data, err := os.ReadFile(spec.Weights)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(data); m.Info.WeightsSHA256 == nil || *m.Info.WeightsSHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("model.json weights_sha256 %v, want the .h5's %x", m.Info.WeightsSHA256, sum)
	}
}

func bytesToFloats(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24)
	}
	return out
}

func TestBuildErrors(t *testing.T) {
	testenv.Python(t)
	tmp := t.TempDir()
	garbage := filepath.Join(tmp, "garbage.h5")
	os.WriteFile(garbage, []byte("not hdf5"), 0o644)
	cases := []struct {
		name string
		edit func(*model.Spec)
		kind cli.Kind
		want string
	}{
		{"one class", func(s *model.Spec) { s.Classes = []string{"a"} }, cli.KindData, "at least 2 classes"},
		{"small image", func(s *model.Spec) { s.ImageSize = 64 }, cli.KindUsage, "image_size"},
		{"bad precision", func(s *model.Spec) { s.Precision = "int8" }, cli.KindUsage, "precision"},
		{"missing h5", func(s *model.Spec) { s.Weights = filepath.Join(tmp, "none.h5") }, cli.KindUsage, "none.h5"},
		{"garbage h5", func(s *model.Spec) { s.Weights = garbage }, cli.KindModel, "garbage.h5"},
		{"unknown layer", func(s *model.Spec) { s.UnfreezeFrom = "block99" }, cli.KindUsage, "block99"},
	}
	for _, c := range cases {
		spec := testmodel.TinySpec()
		c.edit(&spec)
		dir := filepath.Join(tmp, strings.ReplaceAll(c.name, " ", "-"))
		_, err := model.Build(context.Background(), dir, spec, false, nil)
		if err == nil || cli.KindOf(err) != c.kind || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %v (kind %v), want kind %v mentioning %q on one line", c.name, err, cli.KindOf(err), c.kind, c.want)
		}
		if _, statErr := os.Stat(dir); statErr == nil {
			t.Errorf("%s: a failed build left %s", c.name, dir)
		}
	}
}

// FeatureMask keeps each chosen tap's features, in the taps' order, and
// refuses blocks the model does not tap.
func TestFeatureMask(t *testing.T) {
	i := &model.Info{FeatureBlocks: []string{"block4", "block14"}, FeatureWidths: []int{2, 3}}
	got, err := i.FeatureMask([]string{"block14"})
	if err != nil || !slices.Equal(got, []float32{0, 0, 1, 1, 1}) {
		t.Errorf("block14: %v, %v", got, err)
	}
	if got, err := i.FeatureMask([]string{"block4", "block14"}); err != nil || !slices.Equal(got, []float32{1, 1, 1, 1, 1}) {
		t.Errorf("both: %v, %v", got, err)
	}
	if _, err := i.FeatureMask([]string{"block8"}); err == nil {
		t.Error("block8 is not a tap: no error")
	}
	if _, err := (&model.Info{FeatureBlocks: []string{"block14"}}).FeatureMask([]string{"block14"}); err == nil {
		t.Error("no widths: no error")
	}
}
