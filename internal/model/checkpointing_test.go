package model_test

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/testmodel"
)

// TestGradientCheckpointingSameTraining: the tiny model built with
// finetune.gradient_checkpointing (the same seed, so the same weights)
// fine-tunes exactly as the shared tiny model does: three finetune_steps
// give the same losses and leave the same head and base weights, to 1e-5.
// Its model.json records the option and the recomputed segments. A
// checkpoint of the model without it restores into the one with it and the
// next step is the same (how --resume --gradient-checkpointing switches a
// run: the variables are the same).
func TestGradientCheckpointingSameTraining(t *testing.T) {
	spec := testmodel.TinySpec()
	spec.GradientCheckpointing = true
	dirs := [2]string{testmodel.Tiny(t), testmodel.Build(t, spec)}
	vars := []string{"fc/kernel", "logits/kernel", "block13_sepconv1/depthwise_kernel", "block13_sepconv2/pointwise_kernel", "block14_sepconv2/pointwise_kernel"}
	var losses [2][]float32
	var weights [2]map[string][]float32
	models := [2]*model.Model{}
	for i, dir := range dirs {
		info, err := model.ReadInfo(dir)
		if err != nil {
			t.Fatal(err)
		}
		on := i == 1
		if info.GradientCheckpointing != on || (len(info.RecomputeSegments) > 0) != on {
			t.Fatalf("model.json: gradient_checkpointing %v, recompute_segments %v; built with %v", info.GradientCheckpointing, info.RecomputeSegments, on)
		}
		if on {
			t.Logf("recomputed segments end at %v", info.RecomputeSegments)
			if last := info.RecomputeSegments[len(info.RecomputeSegments)-1]; last != info.GradCAMLayer {
				t.Errorf("the last recomputed segment ends at %s, want the base's last layer %s", last, info.GradCAMLayer)
			}
		}
		m, err := model.Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		models[i] = m
		b := fixedBatch(m, 6, 3)
		for range 3 {
			r, err := m.Step(contract.SigFinetuneStep, b, model.StepParams{LearningRate: 1e-3})
			if err != nil {
				t.Fatal(err)
			}
			losses[i] = append(losses[i], r.Loss)
		}
		weights[i] = map[string][]float32{}
		for _, v := range vars {
			tensor, err := m.Session.Variable(v)
			if err != nil {
				t.Fatal(err)
			}
			weights[i][v], _ = tensor.Float32s()
			tensor.Close()
		}
	}
	t.Logf("losses without %v, with %v", losses[0], losses[1])
	if d := largestDifference(losses[0], losses[1]); d > 1e-5 || losses[0][2] >= losses[0][0] {
		t.Errorf("fine-tuning losses without %v and with gradient checkpointing %v: differ by %.3g (limit 1e-5), or do not fall", losses[0], losses[1], d)
	}
	for _, v := range vars {
		d := largestDifference(weights[0][v], weights[1][v])
		t.Logf("%s after 3 steps: largest difference %.3g over %d values", v, d, len(weights[0][v]))
		if d > 1e-5 || slices.Equal(weights[0][v], make([]float32, len(weights[0][v]))) {
			t.Errorf("%s after 3 steps: differs by %.3g with gradient checkpointing (limit 1e-5)", v, d)
		}
	}

	// The run without it, saved, resumed with it.
	prefix := filepath.Join(t.TempDir(), "ckpt")
	if err := models[0].Session.Save(prefix); err != nil {
		t.Fatal(err)
	}
	resumed, err := model.Open(dirs[1], opts)
	if err != nil {
		t.Fatal(err)
	}
	defer resumed.Close()
	if err := resumed.Session.Restore(prefix); err != nil {
		t.Fatal(err)
	}
	var next [2]float32
	for i, m := range []*model.Model{models[0], resumed} {
		r, err := m.Step(contract.SigFinetuneStep, fixedBatch(m, 6, 3), model.StepParams{LearningRate: 1e-3})
		if err != nil {
			t.Fatal(err)
		}
		next[i] = r.Loss
	}
	if d := math.Abs(float64(next[0] - next[1])); d > 1e-5 {
		t.Errorf("the 4th step: %v uninterrupted, %v restored into the gradient-checkpointing trainer (differ by %.3g)", next[0], next[1], d)
	}
}

func largestDifference(a, b []float32) float64 {
	worst := 0.0
	for i := range a {
		worst = math.Max(worst, math.Abs(float64(a[i]-b[i])))
	}
	return worst
}
