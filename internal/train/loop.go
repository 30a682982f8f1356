package train

import (
	"context"
	"errors"
	"io"
	"math"
	"time"

	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/model"
)

// Batch is one training step's input: images, or cached features for the
// frozen phase, with labels and per-sample weights.
type Batch struct {
	N        int
	Images   []uint8
	Features []float32
	Labels   []int32
	Weights  []float32
}

// Batches yields one epoch's batches in a fixed order; io.EOF ends it.
type Batches interface {
	Next() (*Batch, error)
	Close()
}

// Source is what a phase trains on and validates with.
type Source interface {
	// Epoch returns the batches of epoch (counted over every phase); the
	// order and augmentation depend only on the seed and epoch.
	Epoch(ctx context.Context, epoch int) (Batches, error)
	Steps() int // batches per epoch
	Step(b *Batch, p model.StepParams) (model.StepResult, error)
	// Validate returns the mean loss and accuracy on the validation split.
	Validate(ctx context.Context) (loss, accuracy float64, err error)
	Close()
}

// Trainer runs one phase: epochs of Source steps, callbacks around them.
type Trainer struct {
	Cfg       Config
	Source    Source
	State     *State
	Callbacks Callbacks
}

var errInterrupted = errors.New("interrupted")

// Run trains until the phase's epochs are done or early stopping fires. A
// cancelled ctx finishes the step underway, lets the callbacks save, and
// returns fault.ErrInterrupted.
func (t *Trainer) Run(ctx context.Context) error {
	s := t.State
	if err := t.Callbacks.TrainBegin(s); err != nil {
		return err
	}
	for s.PhaseEpoch < t.Cfg.Epochs && !s.Stopped {
		logs, err := t.epoch(ctx)
		if errors.Is(err, errInterrupted) {
			if err := t.Callbacks.Interrupted(s); err != nil {
				return err
			}
			return fault.ErrInterrupted
		}
		if err != nil {
			return err
		}
		s.Epoch++
		s.PhaseEpoch++
		s.Step, s.Partial = 0, Sums{}
		s.LastLogs = logs
		if err := t.Callbacks.EpochEnd(s, logs); err != nil {
			return err
		}
	}
	return t.Callbacks.TrainEnd(s)
}

// epoch trains one epoch (skipping the steps a mid-epoch checkpoint already
// took) and validates.
func (t *Trainer) epoch(ctx context.Context) (Logs, error) {
	s := t.State
	start := time.Now()
	sums := s.Partial
	batches, err := t.Source.Epoch(ctx, s.Epoch)
	if err != nil {
		return nil, err
	}
	defer batches.Close()
	steps := t.Source.Steps()
	lr := s.LearningRate
	// interrupt records how far the epoch got, for the mid-epoch checkpoint.
	interrupt := func(done int) error {
		s.Step, s.Partial = done, withTime(sums, start)
		return errInterrupted
	}
	done := s.Step // steps of this epoch trained so far
	for step := 1; ; step++ {
		b, err := batches.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, interrupt(done)
			}
			return nil, err
		}
		if step <= s.Step {
			continue // trained before the interruption
		}
		if ctx.Err() != nil {
			return nil, interrupt(step - 1)
		}
		r, err := t.Source.Step(b, model.StepParams{
			LearningRate:   float32(lr),
			LabelSmoothing: float32(t.Cfg.LabelSmoothing),
			Seed:           [2]int64{t.Cfg.Seed, int64(s.Epoch)<<24 | int64(step)},
		})
		if err != nil {
			if fault.ReasonOf(err) == fault.PeerLost {
				return nil, err // names the worker and what to do
			}
			return nil, fault.New(fault.ToolFailed, "epoch %d, step %d: %v", s.Epoch+1, step, err)
		}
		if math.IsNaN(float64(r.Loss)) || math.IsInf(float64(r.Loss), 0) {
			return nil, fault.New(fault.ToolFailed, "epoch %d, step %d: the loss became %v; lower the learning rate (%s)", s.Epoch+1, step, r.Loss, fault.Option("lr"))
		}
		sums.add(r.Loss, r.Accuracy, b.N)
		done = step
		if err := t.Callbacks.BatchEnd(s, step, steps, sums); err != nil {
			return nil, err
		}
	}
	valLoss, valAcc, err := t.Source.Validate(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, interrupt(done)
		}
		return nil, err
	}
	sums = withTime(sums, start)
	loss, acc := sums.mean()
	return Logs{
		"loss": loss, "accuracy": acc, "val_loss": valLoss, "val_accuracy": valAcc,
		"learning_rate": lr, "seconds": sums.Seconds,
		"images_per_second": float64(sums.Images) / math.Max(sums.Seconds, 1e-9),
	}, nil
}

// withTime adds the time since start to the sums' seconds.
func withTime(s Sums, start time.Time) Sums {
	s.Seconds += time.Since(start).Seconds()
	return s
}
