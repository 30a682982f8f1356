package model_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/testmodel"
)

func TestParseOptimizer(t *testing.T) {
	for _, c := range []struct {
		in   string
		want model.Optimizer
	}{
		{"", model.Optimizer{Name: "adam", Params: map[string]float64{}}},
		{"adamw", model.Optimizer{Name: "adamw", Params: map[string]float64{"weight_decay": 0.004}}},
		{"adamw:weight_decay=0.004", model.Optimizer{Name: "adamw", Params: map[string]float64{"weight_decay": 0.004}}},
		{"sgd", model.Optimizer{Name: "sgd", Params: map[string]float64{"momentum": 0.9, "nesterov": 0}}},
		{"sgd:momentum=0.5,nesterov=true", model.Optimizer{Name: "sgd", Params: map[string]float64{"momentum": 0.5, "nesterov": 1}}},
	} {
		got, err := model.ParseOptimizer("train.optimizer", c.in)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("%q: %+v (%v), want %+v", c.in, got, err, c.want)
		}
	}
	for in, want := range map[string]string{
		"rmsprop":          "train.optimizer rmsprop: unknown optimizer; use one of adam, adamw, sgd",
		"sgd:beta=1":       "sgd has no parameter beta; its parameters: momentum, nesterov",
		"adam:lr=1":        "adam has no parameter lr; its parameters: none",
		"sgd:momentum=1.5": "momentum=1.5 is not valid",
	} {
		_, err := model.ParseOptimizer("train.optimizer", in)
		if cli.KindOf(err) != cli.KindUsage || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want a usage error with %q", in, err, want)
		}
	}
}

// TestOptimizerStateResumesExactly: for every optimizer, two steps, a save
// through the SaverDef (as every checkpoint is written), two more steps;
// then a fresh trainer restored from the save takes the same two steps:
// the same losses, bit for bit. The optimizer's slots (Adam's and AdamW's
// moments, SGD's momentum) and its step count travel in the checkpoint.
func TestOptimizerStateResumesExactly(t *testing.T) {
	for _, opt := range []string{"adam", "adamw:weight_decay=0.1", "sgd:momentum=0.9,nesterov=true"} {
		t.Run(strings.Split(opt, ":")[0], func(t *testing.T) {
			// The backbone's end-to-end model (the cheapest MobileNetV3Small
			// xcept builds); with adam, the default, it is the very model
			// TestAllowlistCoversXceptModels and TestJitCompileSameOutputs
			// build: one build for the three.
			spec := mobileNetSpec(t)
			if opt != "adam" {
				spec.HeadOptimizer, spec.FinetuneOptimizer = opt, opt
			}
			dir := testmodel.Build(t, spec)
			info, err := model.ReadInfo(dir)
			if err != nil {
				t.Fatal(err)
			}
			if want, _ := model.ParseOptimizer("", opt); func() bool { got, _ := model.ParseOptimizer("", info.Optimizer("train")); return !got.Equal(want) }() {
				t.Fatalf("model.json optimizers %v, want %s", info.Optimizers, opt)
			}
			m, err := model.Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			b := fixedBatch(m, 6, 3)
			steps := func(m *model.Model) []float32 {
				var losses []float32
				for _, sig := range []string{contract.SigTrainStep, contract.SigFinetuneStep} {
					r, err := m.Step(sig, b, model.StepParams{LearningRate: 1e-2})
					if err != nil {
						t.Fatal(err)
					}
					losses = append(losses, r.Loss)
				}
				return losses
			}
			steps(m)
			prefix := filepath.Join(t.TempDir(), "ckpt")
			if err := m.Session.Save(prefix); err != nil {
				t.Fatal(err)
			}
			want := append(steps(m), steps(m)...)
			fresh, err := model.Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer fresh.Close()
			if err := fresh.Session.Restore(prefix); err != nil {
				t.Fatal(err)
			}
			got := append(steps(fresh), steps(fresh)...)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s: losses after restore %v, uninterrupted %v", opt, got, want)
				}
			}
			t.Logf("%s: losses %v, equal after restore", opt, got)
		})
	}
}

// TestTinyModelRecordsItsArch: the default architecture's model.json says
// what it was built with (builder 6): Xception, Grad-CAM on block14's last
// layer, Adam in both phases.
func TestTinyModelRecordsItsArch(t *testing.T) {
	info, err := model.ReadInfo(testmodel.Tiny(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.ArchName != "xception" || info.GradCAMLayer != "block14_sepconv2_act" || info.Parameters == 0 ||
		info.Optimizers["train"] != "adam" || info.Optimizers["finetune"] != "adam" {
		t.Errorf("model.json arch %q, gradcam_layer %q, parameters %d, optimizers %v", info.ArchName, info.GradCAMLayer, info.Parameters, info.Optimizers)
	}
}

// mobileNetSpec is testmodel.ArchSpec of MobileNetV3Small (32 px, its
// last block fine-tuned, the default optimizers).
func mobileNetSpec(t *testing.T) model.Spec {
	t.Helper()
	a, err := model.LookupArch("mobilenet_v3_small")
	if err != nil {
		t.Fatal(err)
	}
	return testmodel.ArchSpec(a)
}
