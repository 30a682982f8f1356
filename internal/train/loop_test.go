package train

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/run"
)

// fakeModel is a one-number "model" whose training is a deterministic
// function of every batch and seed it sees: two runs end with equal weights
// only if they took exactly the same steps in the same order.
type fakeModel struct{ w float64 }

func (m *fakeModel) Save(prefix string) error {
	return os.WriteFile(prefix+".index", []byte(strconv.FormatFloat(m.w, 'g', -1, 64)), 0o644)
}

func (m *fakeModel) Restore(prefix string) error {
	data, err := os.ReadFile(prefix + ".index")
	if err != nil {
		return err
	}
	m.w, err = strconv.ParseFloat(string(data), 64)
	return err
}

// fakeSource serves n labelled examples; validation metrics come from tables
// indexed by the epoch being validated (state.Epoch).
type fakeSource struct {
	m        *fakeModel
	n, batch int
	state    **State
	valLoss  []float64
	valAcc   []float64
}

func (f *fakeSource) Steps() int { return (f.n + f.batch - 1) / f.batch }
func (f *fakeSource) Close()     {}

func (f *fakeSource) Epoch(_ context.Context, epoch int) (Batches, error) {
	order := rand.New(rand.NewPCG(1, uint64(epoch))).Perm(f.n)
	return &fakeBatches{order: order, batch: f.batch}, nil
}

func (f *fakeSource) Step(b *Batch, p model.StepParams) (model.StepResult, error) {
	for _, l := range b.Labels {
		f.m.w = math.Mod(f.m.w*31+float64(l)+float64(p.Seed[1]%997)+float64(p.LearningRate*1e4), 1e6)
	}
	return model.StepResult{Loss: float32(1 / (1 + f.m.w/1e5)), Accuracy: 0.5}, nil
}

func (f *fakeSource) Validate(ctx context.Context) (float64, float64, error) {
	e := (*f.state).Epoch
	if e >= len(f.valLoss) {
		return 0.1, 0.9, nil
	}
	return f.valLoss[e], f.valAcc[e], ctx.Err()
}

type fakeBatches struct {
	order []int
	batch int
	next  int
}

func (b *fakeBatches) Next() (*Batch, error) {
	if b.next >= len(b.order) {
		return nil, io.EOF
	}
	end := min(b.next+b.batch, len(b.order))
	out := &Batch{N: end - b.next}
	for _, i := range b.order[b.next:end] {
		out.Labels = append(out.Labels, int32(i%3))
	}
	b.next = end
	return out, nil
}
func (b *fakeBatches) Close() {}

func testConfig(epochs int) Config {
	return Config{Phase: PhaseTrain, Epochs: epochs, BatchSize: 4, LearningRate: 1e-3, ClassWeight: "none", Seed: 9,
		CacheViews: 1, CheckpointMonitor: "val_accuracy",
		EarlyStopping: EarlyStoppingConfig{Enabled: true, Monitor: "val_loss", Patience: 3, RestoreBest: true},
		ReduceLR:      ReduceLRConfig{Enabled: true, Monitor: "val_loss", Factor: 0.5, Patience: 2, MinLR: 1e-4}}
}

// harness is a run folder with a fake model, trained by Trainers that share
// everything a real xcept process would find on disk.
type harness struct {
	t       *testing.T
	r       *run.Run
	m       *fakeModel
	valLoss []float64
	valAcc  []float64
}

func newHarness(t *testing.T, valLoss, valAcc []float64) *harness {
	r, err := run.Create(filepath.Join(t.TempDir(), "run"), run.Info{})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, r: r, m: &fakeModel{}, valLoss: valLoss, valAcc: valAcc}
}

// trainer builds a Trainer as a fresh process would: state from the last
// checkpoint when there is one, with the weights restored.
func (h *harness) trainer(cfg Config, extra ...Callback) *Trainer {
	h.m = &fakeModel{}
	s := &State{Phase: cfg.Phase, LearningRate: cfg.LearningRate}
	if h.r.HasCheckpoint(run.Last) {
		if err := h.r.LoadState(run.Last, s); err != nil {
			h.t.Fatal(err)
		}
		if err := h.r.Restore(h.m, run.Last); err != nil {
			h.t.Fatal(err)
		}
	}
	src := &fakeSource{m: h.m, n: 22, batch: cfg.BatchSize, valLoss: h.valLoss, valAcc: h.valAcc}
	t := &Trainer{Cfg: cfg, Source: src, State: s}
	src.state = &t.State
	notify := func(string, ...any) {}
	t.Callbacks = append(Callbacks{
		&ReduceLROnPlateau{Cfg: cfg.ReduceLR, Notify: notify},
		&EarlyStopping{Cfg: cfg.EarlyStopping, Run: h.r, Session: h.m, Notify: notify},
		&Checkpointer{Monitor: cfg.CheckpointMonitor, Run: h.r, Session: h.m},
		&History{Path: h.r.Path(run.HistoryFile)},
		&TensorBoard{Dir: h.r.Dir},
	}, extra...)
	return t
}

// history returns history.csv without the timing columns.
func (h *harness) history() [][]string {
	f, err := os.Open(h.r.Path(run.HistoryFile))
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		h.t.Fatal(err)
	}
	for i := range rows {
		rows[i] = rows[i][:len(rows[i])-2] // seconds, images_per_second
	}
	return rows
}

// cancelAt cancels the context after a given step of a given epoch.
type cancelAt struct {
	NoOp
	epoch, step int
	cancel      context.CancelFunc
}

func (c *cancelAt) BatchEnd(s *State, step, _ int, _ Sums) error {
	if s.Epoch == c.epoch && step == c.step {
		c.cancel()
	}
	return nil
}

var flatLoss = []float64{1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3}
var risingAcc = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8}

func TestResumeAfterInterruptIsExact(t *testing.T) {
	ref := newHarness(t, flatLoss, risingAcc)
	if err := ref.trainer(testConfig(6)).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, at := range []struct{ epoch, step int }{{0, 1}, {2, 3}, {5, 6}} {
		h := newHarness(t, flatLoss, risingAcc)
		ctx, cancel := context.WithCancel(context.Background())
		err := h.trainer(testConfig(6), &cancelAt{epoch: at.epoch, step: at.step, cancel: cancel}).Run(ctx)
		if !errors.Is(err, fault.ErrInterrupted) {
			t.Fatalf("interrupted run returned %v", err)
		}
		var s State
		h.r.LoadState(run.Last, &s)
		if s.Epoch != at.epoch || s.Step != at.step {
			t.Errorf("interrupt at %v: checkpoint at epoch %d step %d", at, s.Epoch, s.Step)
		}
		if err := h.trainer(testConfig(6)).Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if h.m.w != ref.m.w {
			t.Errorf("interrupt at %v: resumed weights %v, uninterrupted %v", at, h.m.w, ref.m.w)
		}
		if got, want := h.history(), ref.history(); !reflect.DeepEqual(got, want) {
			t.Errorf("interrupt at %v: history\n%v\nwant\n%v", at, got, want)
		}
	}
}

// A kill -9 between the last checkpoint and its history row loses the row;
// the resumed run writes it back from the checkpoint's state.
func TestHistoryRepairedAfterKill(t *testing.T) {
	h := newHarness(t, flatLoss, risingAcc)
	if err := h.trainer(testConfig(3)).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	full := h.history()
	rows := full[:len(full)-1] // the kill came before the row of epoch 3
	var b []byte
	for _, r := range rows {
		b = fmt.Appendf(b, "%s\n", joinCSV(r))
	}
	os.WriteFile(h.r.Path(run.HistoryFile), b, 0o644)
	if err := h.trainer(testConfig(5)).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := h.history()
	if len(got) != 6 || !reflect.DeepEqual(got[:4], full) {
		t.Errorf("history after repair and 2 more epochs:\n%v", got)
	}
	for i, row := range got[1:] {
		if row[0] != strconv.Itoa(i+1) {
			t.Errorf("row %d is epoch %s", i+1, row[0])
		}
	}
}

func joinCSV(r []string) string {
	s := r[0]
	for _, x := range r[1:] {
		s += "," + x
	}
	return s + ",0,0"
}

func TestNaNLossStops(t *testing.T) {
	h := newHarness(t, flatLoss, risingAcc)
	tr := h.trainer(testConfig(2))
	tr.Source = nanSource{tr.Source}
	err := tr.Run(context.Background())
	if cli.KindOf(err) != cli.KindModel || !regexpMatch(`loss became NaN; lower the learning rate`, err.Error()) {
		t.Errorf("NaN loss: %v", err)
	}
}

type nanSource struct{ Source }

func (n nanSource) Step(*Batch, model.StepParams) (model.StepResult, error) {
	return model.StepResult{Loss: float32(math.NaN())}, nil
}
