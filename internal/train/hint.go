package train

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/run"
)

// Outcome is what the hint rule looks at: a finished phase's kept (best)
// epoch, and the model it trained.
type Outcome struct {
	Phase         string
	Run           string
	Classes       int
	Weights       string   // the base's: imagenet, none or a .h5 path
	Dropout       float64  // the head's, before its last Dense
	FeatureBlocks []string // the blocks whose pooled outputs the head reads
	Chosen        bool     // FeatureBlocks won on the validation split (model.feature_blocks auto)
	TrainAccuracy float64  // at the best epoch, on the (augmented) training images
	ValAccuracy   float64  // at the best epoch; NaN without a validation split
	BestEpoch     int      // the kept epoch
	BestPhase     string   // the phase that trained it: fine-tuning that never beat the frozen phase keeps a PhaseTrain epoch
	LearningRate  float64  // the phase's
}

// The hint rule's thresholds.
const (
	// NearChance: a validation accuracy within this share of the way from
	// chance (1/classes) to 1 is "near chance" (0.4 for 5 classes, 0.325
	// for 10, 0.625 for 2).
	NearChance = 0.25
	// OverfitGap: training accuracy this far above validation accuracy
	// (the real case: 0.95 vs 0.77) means the head memorises.
	OverfitGap = 0.15
	// maxDropoutHint: the rule suggests more head dropout only below this.
	maxDropoutHint = 0.5
	// farDomainLR: the fine-tuning step that paid on data far from
	// ImageNet's photos where the recipe's 1e-5 gained nothing (README,
	// real data: +0.6 points on Fashion-MNIST, +1.2 on digits).
	farDomainLR = 1e-4
)

// Hint is one line telling the user what to try next when the frozen phase
// clearly underperforms (validation accuracy near chance, or far below
// training accuracy) or fine-tuning never beat it, or "" when neither
// holds and without a validation split. Everything it suggests is a real
// command or key whatever the configured defaults are: fine-tuning after
// the frozen phase, real base weights instead of none, more head dropout,
// a larger fine-tuning step.
func Hint(o Outcome) string {
	if o.Phase == PhaseFinetune {
		return finetuneHint(o)
	}
	if o.Phase != PhaseTrain || o.Classes < 2 || math.IsNaN(o.ValAccuracy) || math.IsNaN(o.TrainAccuracy) {
		return ""
	}
	chance := 1 / float64(o.Classes)
	if o.ValAccuracy < chance+NearChance*(1-chance) {
		if o.Weights == "none" {
			return fmt.Sprintf("hint: val_accuracy %.3f is near chance (%.3f for %d classes): the base is untrained (model.weights none), "+
				"so its features barely tell the classes apart; prepare with --weights imagenet (or a Keras Xception notop .h5) for real accuracy",
				o.ValAccuracy, chance, o.Classes)
		}
		return fmt.Sprintf("hint: val_accuracy %.3f is near chance (%.3f for %d classes): check that each class folder holds what its name says, "+
			"then try `xcept finetune --run %s` (the frozen base's features barely tell these classes apart)",
			o.ValAccuracy, chance, o.Classes, o.Run)
	}
	if o.TrainAccuracy-o.ValAccuracy >= OverfitGap {
		more := ""
		if o.Dropout < maxDropoutHint {
			more = ", more head dropout (model.dropout, now " + strconv.FormatFloat(o.Dropout, 'g', -1, 64) + ")"
		}
		if slices.Equal(o.FeatureBlocks, []string{"block14"}) && !o.Chosen {
			// Measured on Fashion-MNIST: 0.766 → 0.830 frozen (README, The model).
			more += ", or, for images unlike ImageNet's photos, the middle blocks' features too " +
				"(prepare again with --feature-blocks block4,block8,block12,block14)"
		}
		return fmt.Sprintf("hint: the head fits the training images (accuracy %.3f) far better than the validation images (%.3f): "+
			"try `xcept finetune --run %s`, more training images%s", o.TrainAccuracy, o.ValAccuracy, o.Run, more)
	}
	return ""
}

// finetuneHint: fine-tuning that never beat the frozen phase on the
// validation split cost several times the frozen phase for nothing (both
// real far-domain datasets at the default 1e-5); say so, and what paid.
func finetuneHint(o Outcome) string {
	if o.BestPhase != PhaseTrain || math.IsNaN(o.ValAccuracy) {
		return ""
	}
	line := fmt.Sprintf("hint: fine-tuning never beat the frozen phase on the validation split: its epoch %d (val_accuracy %.3f) stays the best checkpoint",
		o.BestEpoch, o.ValAccuracy)
	if o.LearningRate < farDomainLR {
		return line + fmt.Sprintf("; for images unlike ImageNet's photos try a larger step, `xcept finetune --run %s --lr %g` (README, real data), or keep the frozen model",
			o.Run, farDomainLR)
	}
	return line + "; the frozen model is what fine-tuning at this step gives on this data"
}

// bestOutcome is the Outcome of the phase's best epoch, read back from the
// history the History callback wrote.
func bestOutcome(phase string, r *run.Run, s *State, info *model.Info) (Outcome, error) {
	o := Outcome{Phase: phase, Run: r.Dir, Classes: info.NumClasses, Weights: info.Weights, Dropout: info.Dropout,
		FeatureBlocks: info.Features(), TrainAccuracy: math.NaN(), ValAccuracy: math.NaN(), BestEpoch: s.BestEpoch}
	if r.Info.FeatureBlocks != nil {
		o.FeatureBlocks, o.Chosen = r.Info.FeatureBlocks, info.Choosable()
	}
	rows, err := readHistory(r.Path(run.HistoryFile))
	if err != nil {
		return o, err
	}
	col := func(name string) int {
		for i, c := range HistoryColumns {
			if c == name {
				return i + 2 // after epoch and phase
			}
		}
		panic("no history column " + name)
	}
	acc, val := col("accuracy"), col("val_accuracy")
	// The best epoch's row of this phase; failing that, of the frozen phase
	// before it (fine-tuning that never beat the frozen phase keeps its epoch).
	for _, row := range rows {
		if len(row) <= max(acc, val) || row[0] != strconv.Itoa(s.BestEpoch) {
			continue
		}
		if row[1] == phase || (o.BestPhase == "" && phase == PhaseFinetune && row[1] == PhaseTrain) {
			o.BestPhase = row[1]
			o.TrainAccuracy = parseOrNaN(row[acc])
			o.ValAccuracy = parseOrNaN(row[val])
		}
	}
	return o, nil
}

func parseOrNaN(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return v
}
