// Package train is xcept's training loop: a small loop over epochs whose
// behaviours (progress, history, TensorBoard, checkpoints, early stopping,
// learning-rate reduction) are callbacks, in the manner of Keras.
package train

import (
	"fmt"
	"slices"
	"strings"

	"github.com/xcept/xcept/internal/augment"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/model"
)

// Phases.
const (
	PhaseTrain    = "train"    // frozen base, head trained
	PhaseFinetune = "finetune" // top blocks unfrozen
)

// Config is one phase's training configuration (the train:, finetune:,
// augment: and callbacks: sections, resolved).
type Config struct {
	Phase             string
	Epochs            int
	BatchSize         int
	LearningRate      float64
	LabelSmoothing    float64
	ClassWeight       string // none | balanced | PATH
	Seed              int64
	Augment           augment.Params // zero value: no augmentation
	FeatureCache      bool           // frozen phase only
	CacheViews        int
	Workers           int
	ShuffleBuffer     int
	CheckpointMonitor string
	// Optimizer is the phase's optimizer (train.optimizer, finetune.optimizer;
	// "" is adam). A model built with another is rebuilt for the run.
	Optimizer     string
	EarlyStopping EarlyStoppingConfig
	ReduceLR      ReduceLRConfig
}

// EarlyStoppingConfig configures the EarlyStopping callback.
type EarlyStoppingConfig struct {
	Enabled     bool    `mapstructure:"enabled"`
	Monitor     string  `mapstructure:"monitor"`
	Patience    int     `mapstructure:"patience"`
	MinDelta    float64 `mapstructure:"min_delta"`
	RestoreBest bool    `mapstructure:"restore_best"`
}

// ReduceLRConfig configures the ReduceLROnPlateau callback.
type ReduceLRConfig struct {
	Enabled  bool    `mapstructure:"enabled"`
	Monitor  string  `mapstructure:"monitor"`
	Factor   float64 `mapstructure:"factor"`
	Patience int     `mapstructure:"patience"`
	MinDelta float64 `mapstructure:"min_delta"`
	MinLR    float64 `mapstructure:"min_lr"`
}

// Monitors are the metrics a callback can watch.
var Monitors = []string{"loss", "accuracy", "val_loss", "val_accuracy"}

// higherIsBetter tells the direction of a monitored metric.
func higherIsBetter(monitor string) bool { return strings.HasSuffix(monitor, "accuracy") }

// Validate checks every value before any work starts, naming the config key.
func (c Config) Validate() error {
	section := c.Phase
	switch {
	case c.Phase != PhaseTrain && c.Phase != PhaseFinetune:
		return fmt.Errorf("internal: unknown phase %q", c.Phase)
	case c.Epochs < 1:
		return fault.BadSetting(section+".epochs", "%d: must be at least 1", c.Epochs)
	case c.optimizerError() != nil:
		return c.optimizerError()
	case c.BatchSize < 1:
		return fault.BadSetting("train.batch_size", "%d: must be at least 1", c.BatchSize)
	case !(c.LearningRate > 0) || c.LearningRate > 1:
		return fault.BadSetting(section+".learning_rate", "%g: must be in (0, 1]", c.LearningRate)
	case c.LabelSmoothing < 0 || c.LabelSmoothing >= 1:
		return fault.New(fault.BadValue, "train.label_smoothing %g: must be in [0, 1)", c.LabelSmoothing)
	case c.CacheViews < 1:
		return fault.New(fault.BadValue, "train.cache_views %d: must be at least 1", c.CacheViews)
	case c.Workers < 0 || c.ShuffleBuffer < 0:
		return fault.New(fault.BadValue, "train.workers and train.shuffle_buffer must not be negative")
	case c.ClassWeight == "":
		return fault.New(fault.BadValue, "train.class_weight is empty: use none, balanced or a file")
	}
	if err := c.Augment.Validate(); err != nil {
		return err
	}
	for key, m := range map[string]string{
		"callbacks.checkpoint_monitor":     c.CheckpointMonitor,
		"callbacks.early_stopping.monitor": c.EarlyStopping.Monitor,
		"callbacks.reduce_lr.monitor":      c.ReduceLR.Monitor,
	} {
		if !slices.Contains(Monitors, m) {
			return fault.New(fault.BadValue, "%s %q: use one of %s", key, m, strings.Join(Monitors, ", "))
		}
	}
	if c.EarlyStopping.Patience < 0 || c.ReduceLR.Patience < 0 {
		return fault.New(fault.BadValue, "callbacks patience must not be negative")
	}
	if !(c.ReduceLR.Factor > 0 && c.ReduceLR.Factor < 1) {
		return fault.New(fault.BadValue, "callbacks.reduce_lr.factor %g: must be in (0, 1)", c.ReduceLR.Factor)
	}
	if c.ReduceLR.MinLR < 0 {
		return fault.New(fault.BadValue, "callbacks.reduce_lr.min_lr %g: must not be negative", c.ReduceLR.MinLR)
	}
	return nil
}

func (c Config) optimizerError() error {
	_, err := model.ParseOptimizer(c.Phase+".optimizer", c.Optimizer)
	return err
}
