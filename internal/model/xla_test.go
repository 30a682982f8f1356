package model_test

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/testmodel"
)

// TestJitCompileSameOutputs: the same model built with runtime.jit_compile
// on and off (the same seed, so the same weights) gives the same
// probabilities and fine-tuning loss through the C API, to 1e-4, and the
// same probabilities after that step (its gradients through the base
// applied); model.json records the choice, and only the XLA model's graphs
// ask for XLA (_XlaMustCompile true). Each XLA signature compiles on its
// first call (tens of seconds here): the test calls two (predict and
// finetune_step), at one batch shape. With XLA an out-of-range label is
// still refused (the check runs before the compiled step).
func TestJitCompileSameOutputs(t *testing.T) {
	// The XLA-off model is TestOptimizerStateResumesExactly's adam one
	// (and the op allowlist's MobileNetV3Small): built once for all three.
	spec := mobileNetSpec(t)
	var outs [2][3][]float32 // probabilities, the step's loss, probabilities after it
	for i, jit := range []bool{false, true} {
		spec.JitCompile = jit
		dir := testmodel.Build(t, spec)
		info, err := model.ReadInfo(dir)
		if err != nil {
			t.Fatal(err)
		}
		if info.JitCompile != jit {
			t.Errorf("model.json jit_compile %v, built with %v", info.JitCompile, jit)
		}
		for _, sub := range []string{model.TrainerDir, model.ServingDir} {
			pb, err := os.ReadFile(filepath.Join(dir, sub, "saved_model.pb"))
			if err != nil {
				t.Fatal(err)
			}
			// The attribute's name, then its AttrValue: b: true is 0x28 0x01.
			if got := bytes.Contains(pb, []byte("_XlaMustCompile\x12\x02\x28\x01")); got != jit {
				t.Errorf("%s (jit_compile %v): a function marked _XlaMustCompile: %v", sub, jit, got)
			}
		}
		m, err := model.Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		b := fixedBatch(m, 6, 3)
		probs, err := m.Predict(b.Images, b.N())
		if err != nil {
			t.Fatal(err)
		}
		r, err := m.Step(contract.SigFinetuneStep, b, model.StepParams{LearningRate: 1e-3})
		if err != nil {
			t.Fatal(err)
		}
		after, err := m.Predict(b.Images, b.N())
		if err != nil {
			t.Fatal(err)
		}
		outs[i] = [3][]float32{probs, {r.Loss}, after}
		bad := b
		bad.Labels = slices.Clone(b.Labels)
		bad.Labels[0] = 7
		if _, err := m.Step(contract.SigFinetuneStep, bad, model.StepParams{LearningRate: 1e-3}); err == nil || !strings.Contains(err.Error(), "labels must be in") {
			t.Errorf("jit_compile %v: label 7 of 3 classes: %v, want the label check's error", jit, err)
		}
		m.Close()
	}
	for k, what := range []string{"probabilities", "fine-tuning loss", "probabilities after the step"} {
		worst := 0.0
		for j := range outs[0][k] {
			a, b := float64(outs[0][k][j]), float64(outs[1][k][j])
			worst = math.Max(worst, math.Abs(a-b)/math.Max(1, math.Abs(a)))
		}
		t.Logf("jit_compile on vs off: %s: largest difference %.2g (relative where above 1)", what, worst)
		if worst > 1e-4 {
			t.Errorf("jit_compile on and off: %s: largest difference %.2g (> 1e-4)", what, worst)
		}
	}
}
