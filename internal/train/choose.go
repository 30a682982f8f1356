package train

import (
	"context"
	"fmt"
	"strings"

	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/run"
)

// Choice is one candidate set of feature blocks and how its head did.
type Choice struct {
	Blocks []string
	Best   float64 // the checkpoint monitor's best value on the validation split
}

// chooseFeatures decides which of the model's feature choices the head
// reads (model.feature_blocks auto): on the cached features, the head is
// trained once per choice from the model's initial weights, with the
// phase's epochs, learning-rate schedule and early stopping but nothing
// written, and the choice whose best validation monitor (the checkpoint's)
// is best wins; a tie goes to the first (block14 alone). The model is left
// at its initial weights with the winner's mask, and the run records it.
func (j *Job) chooseFeatures(ctx context.Context, r *run.Run, m *model.Model, src Source) error {
	choices := make([]Choice, len(m.Info.FeatureChoices))
	winner := 0
	for i, blocks := range m.Info.FeatureChoices {
		c, err := j.tryFeatures(ctx, m, src, blocks)
		if err != nil {
			return err
		}
		choices[i] = c
		if i > 0 && improved(j.Cfg.CheckpointMonitor, Monitored{Seen: true, Best: choices[winner].Best}, c.Best, 0) {
			winner = i
		}
	}
	if err := m.Reset(); err != nil {
		return fault.New(fault.ToolFailed, "resetting the model after choosing its feature blocks: %v", err)
	}
	chosen := choices[winner].Blocks
	if err := m.SetFeatureBlocks(chosen); err != nil {
		return fault.New(fault.ToolFailed, "setting the feature blocks: %v", err)
	}
	r.Info.FeatureBlocks = chosen
	if err := r.SaveInfo(); err != nil {
		return err
	}
	j.Out.Notef("%s", describeChoice(j.Cfg.CheckpointMonitor, choices, winner))
	return nil
}

// tryFeatures trains the head on blocks from the initial weights and
// returns its best validation monitor.
func (j *Job) tryFeatures(ctx context.Context, m *model.Model, src Source, blocks []string) (Choice, error) {
	if err := m.Reset(); err != nil {
		return Choice{}, fault.New(fault.ToolFailed, "resetting the model to try feature blocks %s: %v", strings.Join(blocks, ","), err)
	}
	if err := m.SetFeatureBlocks(blocks); err != nil {
		return Choice{}, fault.New(fault.ToolFailed, "setting feature blocks %s: %v", strings.Join(blocks, ","), err)
	}
	quiet := func(string, ...any) {}
	stop := j.Cfg.EarlyStopping
	stop.RestoreBest = false // nothing to restore: only the best value counts
	s := &State{Phase: j.Cfg.Phase, LearningRate: j.Cfg.LearningRate}
	t := &Trainer{Cfg: j.Cfg, Source: src, State: s, Callbacks: Callbacks{
		&ReduceLROnPlateau{Cfg: j.Cfg.ReduceLR, Notify: quiet},
		&EarlyStopping{Cfg: stop, Notify: quiet},
		&bestMonitor{Monitor: j.Cfg.CheckpointMonitor},
	}}
	if err := t.Run(ctx); err != nil {
		return Choice{}, err
	}
	return Choice{Blocks: blocks, Best: s.Best.Best}, nil
}

// bestMonitor keeps the best value of Monitor in State.Best.
type bestMonitor struct {
	NoOp
	Monitor string
}

func (b *bestMonitor) EpochEnd(s *State, logs Logs) error {
	if s.Best.observe(b.Monitor, logs[b.Monitor], 0) {
		s.BestEpoch = s.Epoch
	}
	return nil
}

// describeChoice is the one line that says which blocks won, and by how much.
func describeChoice(monitor string, choices []Choice, winner int) string {
	parts := make([]string, len(choices))
	for i, c := range choices {
		parts[i] = fmt.Sprintf("%s %.4f", strings.Join(c.Blocks, ","), c.Best)
	}
	return fmt.Sprintf("feature blocks: the head reads %s (best %s on the validation split: %s; model.feature_blocks fixes them)",
		strings.Join(choices[winner].Blocks, ","), monitor, strings.Join(parts, ", "))
}
