package infer

import (
	"context"

	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/imageio"
)

// PredictFolder predicts every image under dir (any layout, sub-folders
// included; files that are no image at all left out), decoded and resized
// as PredictLabelled does, and returns their probabilities, n × classes.
// It is for images of none of the classes (evaluate --ood): no labels, no
// test-time augmentation (the threshold applies to what predict and serve
// answer). An unusable file is passed to skipped and left out.
func PredictFolder(ctx context.Context, m *Pixels, dir string, fit imageio.Fit, batchSize int, lim Limits, skipped func(*FileError)) ([]float32, int, error) {
	var files []LabelledFile
	for _, in := range ExpandPaths([]string{dir}) {
		files = append(files, LabelledFile{Input: in})
	}
	tta := m.TTA
	m.TTA = false
	defer func() { m.TTA = tta }()
	ev, err := PredictLabelled(ctx, m, files, fit, batchSize, lim, skipped)
	if err != nil {
		return nil, 0, err
	}
	var probs []float32
	for _, r := range ev.Rows {
		for _, p := range r.Probs {
			probs = append(probs, float32(p))
		}
	}
	return probs, len(ev.Rows), nil
}

// Probabilities flattens evaluated rows' probabilities (n × classes), and
// their labels.
func Probabilities(ev *Evaluated) ([]float32, []int32) {
	var probs []float32
	labels := make([]int32, len(ev.Rows))
	for i, r := range ev.Rows {
		labels[i] = int32(r.True)
		for _, p := range r.Probs {
			probs = append(probs, float32(p))
		}
	}
	return probs, labels
}

// MeasureTTA compares an evaluation's plain and mirrored-averaged
// predictions (evaluated with Pixels.TTA).
func MeasureTTA(ev *Evaluated, k int) (*calibrate.TTA, error) {
	if len(ev.Flipped) != len(ev.Rows) {
		return nil, fault.New(fault.ToolFailed, "test-time augmentation: %d mirrored predictions for %d images", len(ev.Flipped), len(ev.Rows))
	}
	plain, labels := Probabilities(ev)
	var flipped []float32
	for _, row := range ev.Flipped {
		for _, p := range row {
			flipped = append(flipped, float32(p))
		}
	}
	return calibrate.MeasureTTA(labels, k, plain, map[string][]float32{"hflip": flipped})
}
