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
)

// Hint is one line telling the user what to try next when the frozen phase
// clearly underperforms (validation accuracy near chance, or far below
// training accuracy), or "" when it does not, for other phases, and
// without a validation split. Everything it suggests is a real command or
// key whatever the configured defaults are: fine-tuning after the frozen
// phase, real base weights instead of none, more head dropout.
func Hint(o Outcome) string {
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

// bestOutcome is the Outcome of the phase's best epoch, read back from the
// history the History callback wrote.
func bestOutcome(phase string, r *run.Run, s *State, info *model.Info) (Outcome, error) {
	o := Outcome{Phase: phase, Run: r.Dir, Classes: info.NumClasses, Weights: info.Weights, Dropout: info.Dropout,
		FeatureBlocks: info.Features(), TrainAccuracy: math.NaN(), ValAccuracy: math.NaN()}
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
	for _, row := range rows {
		if len(row) <= max(acc, val) || row[0] != strconv.Itoa(s.BestEpoch) || row[1] != phase {
			continue
		}
		o.TrainAccuracy = parseOrNaN(row[acc])
		o.ValAccuracy = parseOrNaN(row[val])
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
