package train

import (
	"math"
	"testing"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/demodata"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/testenv/demoset"
	"github.com/xcept/xcept/internal/testmodel"
)

// TestFrozenValidationKeepsFeatures: in the frozen phase an ImageSource
// reads the validation images once and then validates on their features,
// with the numbers eval_step gives on the images, before and after the
// head has trained.
func TestFrozenValidationKeepsFeatures(t *testing.T) {
	modelDir := testmodel.Tiny(t)
	gen := demodata.Defaults()
	gen.Classes, gen.PerClass, gen.Width, gen.Height, gen.Seed = 3, 14, 96, 96, 5
	prep := demoset.PrepareOptions(96)
	prep.Fractions, prep.Seed = dataset.Fractions{Train: 0.5, Val: 0.5}, 7
	demo := demoset.Temp(t, demoset.Options{Images: gen, Prepare: prep})
	ds, man := demo.Dataset, demo.Manifest
	m, err := model.Open(modelDir, graph.SessionOptions{IntraOpThreads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	data := Data{TrainShards: man.ShardPaths(ds, "train"), ValShards: man.ShardPaths(ds, "val"), ImageSize: 96, Classes: 3}
	cfg := Config{BatchSize: 8, Seed: 3}
	frozen, err := NewImageSource(m, contract.SigTrainStep, data, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A finetune_step source validates with eval_step on the images every time.
	onImages, err := NewImageSource(m, contract.SigFinetuneStep, data, cfg)
	if err != nil {
		t.Fatal(err)
	}
	same := func(when string) {
		t.Helper()
		wantLoss, wantAcc, err := onImages.Validate(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		loss, acc, err := frozen.Validate(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: val_loss %.6f (eval_step on images %.6f), val_accuracy %.4f (%.4f)", when, loss, wantLoss, acc, wantAcc)
		if math.Abs(loss-wantLoss) > 1e-5*max(1, math.Abs(wantLoss)) || acc != wantAcc {
			t.Errorf("%s: val_loss %v, val_accuracy %v on kept features; eval_step on the images gives %v, %v", when, loss, acc, wantLoss, wantAcc)
		}
	}
	same("first epoch")
	if n := len(frozen.valLabels); n == 0 || len(frozen.valFeatures) != n*m.Info.FeatureDim {
		t.Fatalf("kept %d labels and %d features", n, len(frozen.valFeatures))
	}
	frozen.Data.ValShards = nil // from now on it must not read images
	for range 3 {
		b, err := frozen.Epoch(t.Context(), 1)
		if err != nil {
			t.Fatal(err)
		}
		batch, err := b.Next()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := frozen.Step(batch, model.StepParams{LearningRate: 1e-2}); err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	same("after three head steps")
}
