package train

import (
	"math"
	"os"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/run"
)

func TestHint(t *testing.T) {
	nan := math.NaN()
	real := Outcome{Phase: PhaseTrain, Run: "runs/r", Classes: 10, Weights: "imagenet", Dropout: 0}
	with := func(o Outcome, edit func(*Outcome)) Outcome { edit(&o); return o }
	tests := []struct {
		name string
		o    Outcome
		want []string // substrings of the hint; nil: no hint
	}{
		{"good run", with(real, func(o *Outcome) { o.TrainAccuracy, o.ValAccuracy = 0.92, 0.88 }), nil},
		{"val above train (augmented training images)", with(real, func(o *Outcome) { o.TrainAccuracy, o.ValAccuracy = 0.70, 0.80 }), nil},
		{"the issue's real case: 0.95 vs 0.77", with(real, func(o *Outcome) { o.TrainAccuracy, o.ValAccuracy = 0.95, 0.77 }),
			[]string{"hint: the head fits the training images (accuracy 0.950) far better than the validation images (0.770)",
				"`xcept finetune --run runs/r`", "more head dropout (model.dropout, now 0)"}},
		{"overfit on block14 alone: the middle blocks too", with(real, func(o *Outcome) { o.TrainAccuracy, o.ValAccuracy, o.FeatureBlocks = 0.95, 0.77, []string{"block14"} }),
			[]string{"more head dropout (model.dropout, now 0), or, for images unlike ImageNet's photos, the middle blocks' features too (prepare again with --feature-blocks block4,block8,block12,block14)"}},
		{"gap just under the threshold", with(real, func(o *Outcome) { o.TrainAccuracy, o.ValAccuracy = 0.94, 0.80 }), nil},
		{"gap with dropout already high: no more dropout", with(real, func(o *Outcome) { o.TrainAccuracy, o.ValAccuracy, o.Dropout = 1, 0.8, 0.5 }),
			[]string{"far better than the validation images (0.800): try `xcept finetune --run runs/r`, more training images"}},
		{"near chance, 10 classes", with(real, func(o *Outcome) { o.TrainAccuracy, o.ValAccuracy = 0.9, 0.3 }),
			[]string{"hint: val_accuracy 0.300 is near chance (0.100 for 10 classes)", "check that each class folder", "`xcept finetune --run runs/r`"}},
		{"just above near chance, 10 classes", with(real, func(o *Outcome) { o.TrainAccuracy, o.ValAccuracy = 0.4, 0.33 }), nil},
		{"near chance beats the gap rule", with(real, func(o *Outcome) { o.TrainAccuracy, o.ValAccuracy, o.Classes = 1, 0.55, 2 }),
			[]string{"near chance (0.500 for 2 classes)"}},
		{"near chance, untrained base", with(real, func(o *Outcome) { o.TrainAccuracy, o.ValAccuracy, o.Classes, o.Weights = 0.4, 0.35, 3, "none" }),
			[]string{"hint: val_accuracy 0.350 is near chance (0.333 for 3 classes): the base is untrained (model.weights none)", "--weights imagenet"}},
		{"an .h5 base is a real one", with(real, func(o *Outcome) { o.ValAccuracy, o.TrainAccuracy, o.Weights = 0.2, 0.2, "/w/notop.h5" }),
			[]string{"check that each class folder"}},
		{"fine-tuning that beat the frozen phase: no hint, whatever its gap", with(real, func(o *Outcome) {
			o.Phase, o.BestPhase, o.TrainAccuracy, o.ValAccuracy, o.LearningRate = PhaseFinetune, PhaseFinetune, 0.95, 0.5, 1e-5
		}), nil},
		{"fine-tuning that never beat the frozen phase, at 1e-5: a larger step", with(real, func(o *Outcome) {
			o.Phase, o.BestPhase, o.BestEpoch, o.TrainAccuracy, o.ValAccuracy, o.LearningRate = PhaseFinetune, PhaseTrain, 13, 0.9, 0.83, 1e-5
		}), []string{"hint: fine-tuning never beat the frozen phase on the validation split: its epoch 13 (val_accuracy 0.830) stays the best checkpoint; " +
			"for images unlike ImageNet's photos try a larger step, `xcept finetune --run runs/r --lr 0.0001` (README, real data), or keep the frozen model"}},
		{"… already at 1e-4: no larger step offered", with(real, func(o *Outcome) {
			o.Phase, o.BestPhase, o.BestEpoch, o.TrainAccuracy, o.ValAccuracy, o.LearningRate = PhaseFinetune, PhaseTrain, 13, 0.9, 0.83, 1e-4
		}), []string{"stays the best checkpoint; the frozen model is what fine-tuning at this step gives on this data"}},
		{"… without a validation split: no hint", with(real, func(o *Outcome) {
			o.Phase, o.BestPhase, o.TrainAccuracy, o.ValAccuracy, o.LearningRate = PhaseFinetune, PhaseTrain, 0.9, nan, 1e-5
		}), nil},
		{"no validation split", with(real, func(o *Outcome) { o.TrainAccuracy, o.ValAccuracy = 0.95, nan }), nil},
		{"no best epoch in the history", with(real, func(o *Outcome) { o.TrainAccuracy, o.ValAccuracy = nan, nan }), nil},
	}
	for _, tt := range tests {
		got := Hint(tt.o)
		if tt.want == nil {
			if got != "" {
				t.Errorf("%s: hint %q, want none", tt.name, got)
			}
			continue
		}
		if strings.Contains(got, "\n") {
			t.Errorf("%s: hint is more than one line: %q", tt.name, got)
		}
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: hint %q, want it to contain %q", tt.name, got, w)
			}
		}
	}
}

// A head that read block14 after the validation split chose it over the
// middle blocks (model.feature_blocks auto) is not told to try them.
func TestHintSkipsTheMiddleBlocksWhenChosenAgainst(t *testing.T) {
	o := Outcome{Phase: PhaseTrain, Run: "runs/r", Classes: 10, Weights: "imagenet", TrainAccuracy: 0.95, ValAccuracy: 0.77,
		FeatureBlocks: []string{"block14"}, Chosen: true}
	got := Hint(o)
	if !strings.Contains(got, "more head dropout") || strings.Contains(got, "middle blocks") {
		t.Errorf("hint %q: want dropout advice and no middle blocks", got)
	}
}

// bestOutcome reads the best epoch's row of this phase from history.csv.
func TestBestOutcomeReadsTheBestEpoch(t *testing.T) {
	r := &run.Run{Dir: t.TempDir()}
	path := r.Path(run.HistoryFile)
	rows := [][]string{
		historyRow(1, PhaseTrain, Logs{"accuracy": 0.5, "val_accuracy": 0.4}),
		historyRow(2, PhaseTrain, Logs{"accuracy": 0.95, "val_accuracy": 0.77}),
		historyRow(3, PhaseTrain, Logs{"accuracy": 0.97, "val_accuracy": 0.7}),
		historyRow(2, PhaseFinetune, Logs{"accuracy": 0.1, "val_accuracy": 0.1}), // another phase's epoch 2 (not possible, but must not match)
	}
	if err := writeHistory(path, rows); err != nil {
		t.Fatal(err)
	}
	o, err := bestOutcome(PhaseTrain, r, &State{BestEpoch: 2}, &model.Info{NumClasses: 10, Weights: "imagenet"})
	if err != nil {
		t.Fatal(err)
	}
	if o.TrainAccuracy != 0.95 || o.ValAccuracy != 0.77 || o.Classes != 10 || o.Run != r.Dir {
		t.Errorf("outcome %+v, want epoch 2's accuracies 0.95/0.77", o)
	}
	if Hint(o) == "" {
		t.Error("no hint for 0.95 vs 0.77")
	}
	// Fine-tuning whose best epoch is still the frozen phase's 2: that row,
	// and the hint that fine-tuning never beat it (without the impossible
	// fine-tuning epoch 2 above).
	rows = rows[:3]
	if err := writeHistory(path, rows); err != nil {
		t.Fatal(err)
	}
	o, err = bestOutcome(PhaseFinetune, r, &State{BestEpoch: 2}, &model.Info{NumClasses: 10, Weights: "imagenet"})
	if err != nil {
		t.Fatal(err)
	}
	if o.BestPhase != PhaseTrain || o.BestEpoch != 2 || o.ValAccuracy != 0.77 {
		t.Errorf("fine-tuning outcome %+v, want the frozen phase's epoch 2 (val_accuracy 0.77)", o)
	}
	if !strings.Contains(Hint(o), "fine-tuning never beat the frozen phase") {
		t.Errorf("hint %q: want the fine-tuning hint", Hint(o))
	}
	rows = append(rows, historyRow(4, PhaseFinetune, Logs{"accuracy": 0.9, "val_accuracy": 0.8}))
	if err := writeHistory(path, rows); err != nil {
		t.Fatal(err)
	}
	o, err = bestOutcome(PhaseFinetune, r, &State{BestEpoch: 4}, &model.Info{NumClasses: 10, Weights: "imagenet"})
	if err != nil || o.BestPhase != PhaseFinetune || o.ValAccuracy != 0.8 || Hint(o) != "" {
		t.Errorf("fine-tuning that beat the frozen phase: %+v, %v, hint %q; want its epoch 4 and no hint", o, err, Hint(o))
	}
	os.Remove(path)
	o, err = bestOutcome(PhaseTrain, r, &State{BestEpoch: 2}, &model.Info{NumClasses: 10, Weights: "imagenet"})
	if err != nil || !math.IsNaN(o.ValAccuracy) || Hint(o) != "" {
		t.Errorf("no history: %+v, %v; want NaN accuracies and no hint", o, err)
	}
}
