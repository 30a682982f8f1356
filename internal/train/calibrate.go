package train

import (
	"context"
	"io"

	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/loader"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/run"
)

// calibrate fits the temperature on the validation split for the best
// checkpoint, sets it in the model and saves it into that checkpoint (so
// that predict, serve and every export answer calibrated), and records
// the fit in run.json. Models built before temperatures are left as they
// are, with a note.
func (j *Job) calibrate(ctx context.Context, r *run.Run, m *model.Model, src Source) (*calibrate.Fit, error) {
	if !m.Info.Calibratable() {
		j.Out.Notef("not calibrated: the model was built before temperature scaling (builder %d < %d); rebuild it with `xcept prepare` to calibrate",
			m.Info.BuilderVersion, model.CalibrationBuilderVersion)
		return nil, nil
	}
	if err := r.Restore(m.Session, run.Best); err != nil {
		return nil, err
	}
	var best State
	if err := r.LoadState(run.Best, &best); err != nil {
		return nil, err
	}
	logits, labels, err := valLogits(ctx, m, src)
	if err != nil {
		return nil, err
	}
	fit, err := calibrate.FitSplit("val", logits, labels, m.Info.NumClasses)
	if err != nil {
		return nil, err
	}
	fit.Phase, fit.Epoch = j.Cfg.Phase, best.BestEpoch
	if err := m.SetTemperature(fit.Temperature); err != nil {
		return nil, err
	}
	if err := r.SaveCheckpoint(m.Session, run.Best, &best); err != nil {
		return nil, err
	}
	r.Info.Calibration = fit
	if err := r.SaveInfo(); err != nil {
		return nil, err
	}
	j.Out.Notef("calibrated on %d validation images: temperature %.3f, ECE %.4f → %.4f, NLL %.4f → %.4f",
		fit.Images, fit.Temperature, fit.Before.ECE, fit.After.ECE, fit.Before.NLL, fit.After.NLL)
	return fit, nil
}

// valLogits are the uncalibrated logits of the validation split, from the
// cached features when the source holds them, from the images otherwise.
func valLogits(ctx context.Context, m *model.Model, src Source) ([]float32, []int32, error) {
	switch s := src.(type) {
	case *CachedSource:
		return featureLogits(ctx, m, s.Cache.val, s.Cache.ValLabels, s.Cfg.BatchSize)
	case *ImageSource:
		if s.valFeatures != nil {
			return featureLogits(ctx, m, s.valFeatures, s.valLabels, s.Cfg.BatchSize)
		}
		return imageLogits(ctx, m, s.options(s.Data.ValShards, false, 0, nil))
	}
	panic("train: unknown source") // every Source is one of the above
}

func featureLogits(ctx context.Context, m *model.Model, features []float32, labels []int32, bs int) ([]float32, []int32, error) {
	d := m.Info.FeatureDim
	var out []float32
	for start := 0; start < len(labels); start += bs {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		end := min(start+bs, len(labels))
		l, err := m.HeadLogits(features[start*d:end*d], labels[start:end])
		if err != nil {
			return nil, nil, err
		}
		out = append(out, l...)
	}
	return out, labels, nil
}

func imageLogits(ctx context.Context, m *model.Model, o loader.Options) ([]float32, []int32, error) {
	l, err := loader.Open(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	defer l.Close()
	var logits []float32
	var labels []int32
	for {
		b, err := l.Next()
		if err == io.EOF {
			return logits, labels, nil
		}
		if err != nil {
			return nil, nil, err
		}
		out, err := m.ImageLogits(model.Batch{Images: b.Images, Labels: b.Labels})
		if err != nil {
			return nil, nil, err
		}
		logits, labels = append(logits, out...), append(labels, b.Labels...)
		l.Recycle(b)
	}
}
