package train

import (
	"github.com/xcept/xcept/internal/run"
)

// Callback is told about the loop's progress; it may change the State
// (stop early, lower the learning rate). Embed NoOp for the hooks you skip.
type Callback interface {
	TrainBegin(s *State) error
	BatchEnd(s *State, step, steps int, sums Sums) error
	EpochEnd(s *State, logs Logs) error
	// Interrupted is called when the user stops the loop mid-epoch.
	Interrupted(s *State) error
	TrainEnd(s *State) error
}

// NoOp implements every hook as doing nothing.
type NoOp struct{}

func (NoOp) TrainBegin(*State) error               { return nil }
func (NoOp) BatchEnd(*State, int, int, Sums) error { return nil }
func (NoOp) EpochEnd(*State, Logs) error           { return nil }
func (NoOp) Interrupted(*State) error              { return nil }
func (NoOp) TrainEnd(*State) error                 { return nil }

// Callbacks fans every hook out to a list, in order, stopping at an error.
type Callbacks []Callback

func (cs Callbacks) each(f func(Callback) error) error {
	for _, c := range cs {
		if err := f(c); err != nil {
			return err
		}
	}
	return nil
}

func (cs Callbacks) TrainBegin(s *State) error {
	return cs.each(func(c Callback) error { return c.TrainBegin(s) })
}
func (cs Callbacks) BatchEnd(s *State, step, steps int, sums Sums) error {
	return cs.each(func(c Callback) error { return c.BatchEnd(s, step, steps, sums) })
}
func (cs Callbacks) EpochEnd(s *State, logs Logs) error {
	return cs.each(func(c Callback) error { return c.EpochEnd(s, logs) })
}
func (cs Callbacks) Interrupted(s *State) error {
	return cs.each(func(c Callback) error { return c.Interrupted(s) })
}
func (cs Callbacks) TrainEnd(s *State) error {
	return cs.each(func(c Callback) error { return c.TrainEnd(s) })
}

// Notify receives the callbacks' one-line notes for the user.
type Notify func(format string, args ...any)

// ReduceLROnPlateau multiplies the learning rate by Factor when Monitor has
// not improved for Patience epochs, down to MinLR (Keras semantics).
type ReduceLROnPlateau struct {
	NoOp
	Cfg    ReduceLRConfig
	Notify Notify
}

func (r *ReduceLROnPlateau) EpochEnd(s *State, logs Logs) error {
	if !r.Cfg.Enabled {
		return nil
	}
	if s.Plateau.observe(r.Cfg.Monitor, logs[r.Cfg.Monitor], r.Cfg.MinDelta) || s.Plateau.Wait < r.Cfg.Patience {
		return nil
	}
	s.Plateau.Wait = 0
	if lr := max(s.LearningRate*r.Cfg.Factor, r.Cfg.MinLR); lr < s.LearningRate {
		s.LearningRate = lr
		r.Notify("epoch %d: %s has not improved for %d epochs, learning rate now %.3g", s.Epoch, r.Cfg.Monitor, r.Cfg.Patience, lr)
	}
	return nil
}

// EarlyStopping stops the phase when Monitor has not improved for Patience
// epochs. With RestoreBest, the phase ends with the best checkpoint's
// weights (the checkpoint monitor's best: one best checkpoint serves both).
type EarlyStopping struct {
	NoOp
	Cfg     EarlyStoppingConfig
	Run     *run.Run
	Session run.Saver
	Notify  Notify
}

func (e *EarlyStopping) EpochEnd(s *State, logs Logs) error {
	if !e.Cfg.Enabled {
		return nil
	}
	if !s.EarlyStop.observe(e.Cfg.Monitor, logs[e.Cfg.Monitor], e.Cfg.MinDelta) && s.EarlyStop.Wait >= e.Cfg.Patience {
		s.Stopped = true
		e.Notify("epoch %d: %s has not improved for %d epochs: stopping early", s.Epoch, e.Cfg.Monitor, e.Cfg.Patience)
	}
	return nil
}

func (e *EarlyStopping) TrainEnd(s *State) error {
	if !e.Cfg.Enabled || !e.Cfg.RestoreBest || !s.Stopped || !e.Run.HasCheckpoint(run.Best) {
		return nil
	}
	e.Notify("restoring the best weights (epoch %d)", s.BestEpoch)
	return e.Run.Restore(e.Session, run.Best)
}

// Checkpointer saves the best checkpoint (by Monitor) and the last one
// after every epoch, and the last one when the user interrupts. It must come
// after the callbacks that change the State, so that what it saves is final.
type Checkpointer struct {
	NoOp
	Monitor string
	Run     *run.Run
	Session run.Saver
}

func (c *Checkpointer) EpochEnd(s *State, logs Logs) error {
	if s.Best.observe(c.Monitor, logs[c.Monitor], 0) {
		s.BestEpoch = s.Epoch
		if err := c.Run.SaveCheckpoint(c.Session, run.Best, s); err != nil {
			return err
		}
	}
	return c.Run.SaveCheckpoint(c.Session, run.Last, s)
}

func (c *Checkpointer) Interrupted(s *State) error {
	return c.Run.SaveCheckpoint(c.Session, run.Last, s)
}

func (c *Checkpointer) TrainEnd(s *State) error {
	return c.Run.SaveCheckpoint(c.Session, run.Last, s)
}
