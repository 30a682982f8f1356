package train

import (
	"context"
	"encoding/json"
	"math"
	"os/exec"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/testenv"
)

// kerasScript replays a val_loss sequence through tf_keras's own
// EarlyStopping and ReduceLROnPlateau and prints, per epoch, the learning
// rate in force after the callbacks ran and whether training stopped.
const kerasScript = `
import json, sys
import numpy as np, tf_keras as keras
cfg = json.loads(sys.argv[1])
model = keras.Sequential([keras.layers.Dense(1, input_shape=(1,))])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=cfg["lr"]), loss="mse")
es = keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg["es_patience"], min_delta=cfg["es_min_delta"])
rl = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=cfg["factor"], patience=cfg["rl_patience"],
                                       min_delta=cfg["rl_min_delta"], min_lr=cfg["min_lr"], verbose=0)
cbs = keras.callbacks.CallbackList([rl, es], model=model)
cbs.on_train_begin()
out = []
for epoch, v in enumerate(cfg["val_loss"]):
    cbs.on_epoch_end(epoch, {"val_loss": v, "val_accuracy": 0.5})
    out.append({"lr": float(keras.backend.get_value(model.optimizer.learning_rate)), "stop": bool(model.stop_training)})
    if model.stop_training:
        break
print(json.dumps(out))
`

func TestCallbacksMatchKeras(t *testing.T) {
	py := testenv.Python(t)
	seqs := [][]float64{
		{1, 0.9, 0.9, 0.9, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85},
		{1, 0.99995, 0.9999, 0.5, 0.6, 0.7, 0.4, 0.40001, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4},
		{2, 1, 0.5, 0.25, 0.125, 0.1, 0.09, 0.08, 0.07, 0.06},
	}
	for i, seq := range seqs {
		cfg := testConfig(len(seq))
		cfg.ReduceLR = ReduceLRConfig{Enabled: true, Monitor: "val_loss", Factor: 0.2, Patience: 2, MinDelta: 1e-4, MinLR: 1e-4}
		cfg.EarlyStopping = EarlyStoppingConfig{Enabled: true, Monitor: "val_loss", Patience: 5}
		args, _ := json.Marshal(map[string]any{"lr": cfg.LearningRate, "es_patience": 5, "es_min_delta": 0, "factor": 0.2,
			"rl_patience": 2, "rl_min_delta": 1e-4, "min_lr": 1e-4, "val_loss": seq})
		cmd := exec.Command(py, "-c", kerasScript, string(args))
		cmd.Env = append(cmd.Environ(), "TF_USE_LEGACY_KERAS=1", "TF_CPP_MIN_LOG_LEVEL=3")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("keras: %v", err)
		}
		var want []struct {
			LR   float64 `json:"lr"`
			Stop bool    `json:"stop"`
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &want); err != nil {
			t.Fatalf("keras output %q: %v", out, err)
		}

		h := newHarness(t, seq, make([]float64, len(seq)))
		var got []struct {
			LR   float64
			Stop bool
		}
		tr := h.trainer(cfg, recordFunc(func(s *State) {
			got = append(got, struct {
				LR   float64
				Stop bool
			}{s.LearningRate, s.Stopped})
		}))
		if err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("sequence %d: xcept ran %d epochs, Keras %d", i, len(got), len(want))
		}
		for e := range want {
			// Keras keeps the learning rate as a float32 variable.
			if math.Abs(got[e].LR-want[e].LR) > 1e-7*want[e].LR+1e-12 || got[e].Stop != want[e].Stop {
				t.Errorf("sequence %d epoch %d: xcept lr %g stop %v, Keras lr %g stop %v", i, e+1, got[e].LR, got[e].Stop, want[e].LR, want[e].Stop)
			}
		}
	}
}

type recordFunc func(*State)

func (f recordFunc) TrainBegin(*State) error               { return nil }
func (f recordFunc) BatchEnd(*State, int, int, Sums) error { return nil }
func (f recordFunc) EpochEnd(s *State, _ Logs) error       { f(s); return nil }
func (f recordFunc) Interrupted(*State) error              { return nil }
func (f recordFunc) TrainEnd(*State) error                 { return nil }
