package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/device"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/loader"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/run"
	"github.com/xcept/xcept/internal/track"
)

// Job is one phase of training a run folder: `xcept train` (PhaseTrain,
// from a prepared dataset) or `xcept finetune` (PhaseFinetune, from the
// run's best checkpoint).
type Job struct {
	Cfg     Config
	RunDir  string
	Dataset string // prepared dataset folder; PhaseTrain only
	Resume  bool
	// UnfreezeFrom (finetune): the first block or layer to train; "" keeps
	// the model's own. Another boundary rebuilds the trainer from the best
	// checkpoint's weights, in the run folder.
	UnfreezeFrom string
	// Precision (train): the mixed-precision policy; "" keeps the dataset
	// model's. Another policy builds the run's own model with it.
	Precision string
	// JitCompile is runtime.jit_compile: a model built otherwise (model.json's
	// jit_compile) is rebuilt for the run with it, like another optimizer.
	JitCompile bool
	// GradientCheckpointing (finetune) is finetune.gradient_checkpointing: a
	// model built otherwise is rebuilt for fine-tuning with it, from the best
	// checkpoint, or on --resume from the last one with every value of the
	// run (optimizer state included: the variables are the same). nil keeps
	// the model's own (--resume without the flag).
	GradientCheckpointing *bool
	Session               graph.SessionOptions
	// Features opens the engine the feature cache is computed on (nil:
	// TensorFlow); cmd/xcept's is infer.OpenFeatures (runtime.engine).
	Features   FeatureEngine
	ConfigYAML []byte     // the resolved configuration, saved in the run folder
	Out        cli.Output // progress, notes, the epoch lines (--json)
	// Track mirrors the run folder into an MLflow server after every epoch
	// (no URI: not at all). It never stops or slows training: see track.Live.
	Track track.Settings
	// Cluster makes this job one worker of data-parallel training
	// (cluster.go); nil trains in this process alone.
	Cluster *Worker
}

// trackFinish bounds how long the end of a phase waits for the tracking
// server; what it has not taken by then, `xcept track` sends later.
const trackFinish = 15 * time.Second

// Result summarises a finished phase.
type Result struct {
	Run        string  `json:"run"`
	Phase      string  `json:"phase"`
	Epochs     int     `json:"epochs"`
	Stopped    bool    `json:"stopped_early"`
	Monitor    string  `json:"monitor"`
	Best       float64 `json:"best"`
	BestEpoch  int     `json:"best_epoch"`
	Checkpoint string  `json:"checkpoint"`
	// Hint is one line on what to try next when the frozen phase clearly
	// underperforms or fine-tuning never beat it (see Hint); "" otherwise.
	Hint string `json:"hint"`
	// Calibration: the temperature fitted for the best checkpoint (nil for
	// a model built before temperatures).
	Calibration *calibrate.Fit `json:"calibration,omitempty"`
	// Device is where the model ran, in which precision.
	Device *device.Placement `json:"device"`
}

// Run validates everything, then trains. Nothing is written to the run
// folder before the configuration, the dataset and the model are known good.
// A worker of a cluster other than the chief trains a scratch copy (follow).
func (j *Job) Run(ctx context.Context) (*Result, error) {
	if j.Cluster != nil && !j.Cluster.Spec.Chief() {
		return j.follow(func(mine *Job) (*Result, error) { return mine.run(ctx) })
	}
	return j.run(ctx)
}

func (j *Job) run(ctx context.Context) (res *Result, retErr error) {
	if err := j.Cfg.Validate(); err != nil {
		return nil, err
	}
	// The device guard runs before the run folder is touched.
	placement, err := device.Check(j.Session)
	if err != nil {
		return nil, err
	}
	// One writer per run folder, taken before anything in it is read.
	if j.Cfg.Phase == PhaseTrain || run.Exists(j.RunDir) {
		lock, err := run.Acquire(j.RunDir, j.Cfg.Phase)
		if err != nil {
			return nil, err
		}
		defer lock.Release()
	}
	st, err := j.start(ctx)
	if err != nil {
		return nil, err
	}
	r, state := st.run, st.state
	m, err := model.Open(st.model, j.Session)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	placement.Use(m.Info.Precision)
	placement.Announce(j.Out.Stderr, j.Out.Quiet)
	if st.restore != "" {
		if st.restore == run.Last {
			j.Out.Notef("resuming %s at epoch %d (step %d of it)", r.Dir, state.Epoch+1, state.Step)
		}
		if err := r.Restore(m.Session, st.restore); err != nil {
			return nil, err
		}
	}
	if fit := r.Info.Calibration; fit != nil && m.Info.Calibratable() {
		// A trainer rebuilt for another unfreeze boundary starts at T = 1:
		// its checkpoints keep the run's temperature until the next fit.
		if err := m.SetTemperature(fit.Temperature); err != nil {
			return nil, fault.New(fault.ToolFailed, "setting the run's temperature: %v", err)
		}
	}
	if err := useFeatureBlocks(r, m); err != nil {
		return nil, err
	}
	if j.Cluster != nil {
		watch, err := j.join(m, r, st)
		if err != nil {
			return nil, err
		}
		defer watch.Stop()
		defer func() {
			// The last collective: every worker waits for the others here.
			if retErr == nil {
				watch.Stop()
				retErr = m.Barrier()
			}
		}()
	}
	ds, err := dataset.ReadManifest(r.Info.Dataset)
	if err != nil {
		return nil, fault.About(fault.BadData, fault.DataFolder, r.Info.Dataset, "%v", err)
	}
	src, err := j.source(ctx, r, m, ds)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	if err := j.pickFeatureBlocks(ctx, r, m, src, st.restore == "" && state.Epoch == 0); err != nil {
		return nil, err
	}
	if err := run.WriteFile(r.Path(configName(j.Cfg.Phase)), j.ConfigYAML); err != nil {
		return nil, err
	}
	live := track.NewLive(r.Dir, j.Track, j.Out.Warnf)
	t := &Trainer{Cfg: j.Cfg, Source: src, State: state, Callbacks: append(j.callbacks(r, m), &Tracking{Live: live})}
	err = t.Run(ctx)
	live.Finish(trackFinish)
	if err != nil {
		return nil, err
	}
	var fit *calibrate.Fit
	if j.Cluster == nil || j.Cluster.Spec.Chief() {
		// Only the chief's run keeps the temperature: the others would run
		// the model over the validation split for a scratch copy.
		fit, err = j.calibrate(ctx, r, m, src)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fault.ErrInterrupted
		}
		return nil, fault.New(fault.ToolFailed, "calibrating run %s: %v", r.Dir, err)
	}
	outcome, err := bestOutcome(j.Cfg.Phase, r, state, m.Info)
	if err != nil {
		return nil, err
	}
	outcome.LearningRate = j.Cfg.LearningRate
	return &Result{Run: r.Dir, Phase: j.Cfg.Phase, Epochs: state.Epoch, Stopped: state.Stopped, Monitor: j.Cfg.CheckpointMonitor,
		Best: state.Best.Best, BestEpoch: state.BestEpoch, Checkpoint: filepath.Dir(r.CheckpointPrefix(run.Best)),
		Hint: Hint(outcome), Calibration: fit, Device: placement}, nil
}

// useFeatureBlocks sets the run's chosen feature blocks in the model: a
// trainer rebuilt for another unfreeze boundary starts reading all its taps.
func useFeatureBlocks(r *run.Run, m *model.Model) error {
	if r.Info.FeatureBlocks == nil || m.Info.BuilderVersion < model.FeatureMaskBuilderVersion {
		return nil
	}
	if err := m.SetFeatureBlocks(r.Info.FeatureBlocks); err != nil {
		return fault.New(fault.ToolFailed, "run %s: setting its feature blocks %s: %v", r.Dir, strings.Join(r.Info.FeatureBlocks, ","), err)
	}
	return nil
}

// pickFeatureBlocks chooses the blocks the head reads at the start of a
// fresh frozen phase (model.feature_blocks auto). Choosing needs the
// feature cache; without it the head reads the first choice (block14).
func (j *Job) pickFeatureBlocks(ctx context.Context, r *run.Run, m *model.Model, src Source, fresh bool) error {
	if j.Cfg.Phase != PhaseTrain || !fresh || !m.Info.Choosable() || r.Info.FeatureBlocks != nil {
		return nil
	}
	if _, cached := src.(*CachedSource); cached {
		return j.chooseFeatures(ctx, r, m, src)
	}
	first := m.Info.FeatureChoices[0]
	j.Out.Notef("feature blocks: the head reads %s (choosing among %d sets needs train.feature_cache: true)", strings.Join(first, ","), len(m.Info.FeatureChoices))
	r.Info.FeatureBlocks = first
	return r.SaveInfo()
}

func configName(phase string) string {
	if phase == PhaseTrain {
		return run.ConfigFile
	}
	return "config-" + phase + ".yaml"
}

// start is where a phase begins: the run, its state, the model folder to
// train and the checkpoint to restore first ("" for none).
type start struct {
	run     *run.Run
	state   *State
	model   string
	restore string
}

// The options that errors name (fault.Option: the command layer names
// their flags).
const (
	optRun    fault.Option = "run"
	optResume fault.Option = "resume"
)

// start opens or creates the run folder and decides where the phase starts.
func (j *Job) start(ctx context.Context) (*start, error) {
	exists := run.Exists(j.RunDir)
	switch {
	case j.Cfg.Phase == PhaseTrain && !exists && j.Resume:
		return nil, fault.New(fault.NotARun, "%s: %s holds no run to resume; drop %s to start it", optResume, j.RunDir, optResume)
	case j.Cfg.Phase == PhaseTrain && !exists:
		return j.newRun(ctx)
	case j.Cfg.Phase == PhaseFinetune && !exists:
		return nil, fault.About(fault.NotARun, fault.RunFolder, j.RunDir, "no such run; train one first with `xcept train --run %s`", j.RunDir)
	}
	r, err := run.Open(j.RunDir)
	if err != nil {
		return nil, err
	}
	r.RemoveStaleTemps()
	var last State
	if err := r.LoadState(run.Last, &last); err != nil {
		if j.Cfg.Phase == PhaseFinetune {
			return nil, fault.About(fault.NoCheckpoint, fault.RunFolder, r.Dir, "has no checkpoint yet: train it with `xcept train --run %s`", r.Dir)
		}
		// Created, but killed before its first checkpoint: start over.
		return &start{run: r, state: j.freshState(State{}), model: r.Info.Model}, j.checkDataset(r)
	}
	switch {
	case j.Resume && last.Phase == j.Cfg.Phase:
		modelDir, err := j.resumeModel(ctx, r)
		if err != nil {
			return nil, err
		}
		return &start{run: r, state: &last, model: modelDir, restore: run.Last}, j.checkDataset(r)
	case j.Cfg.Phase == PhaseTrain:
		return nil, fault.New(fault.BadValue, "%s %s already holds a trained run: pass %s to continue it, run `xcept finetune`, or choose another %s", optRun, r.Dir, optResume, optRun)
	case j.Resume:
		return nil, fault.New(fault.BadValue, "%s: the last phase of %s is %q; start fine-tuning without %s", optResume, r.Dir, last.Phase, optResume)
	}
	modelDir, rebuilt, err := j.finetuneModel(ctx, r)
	if err != nil {
		return nil, err
	}
	st := &start{run: r, state: j.freshState(last), model: modelDir, restore: run.Best}
	if rebuilt {
		st.restore = "" // the rebuilt trainer starts from the best weights already
	}
	return st, nil
}

// freshState starts a phase after prev (the zero State for a new run):
// epochs and the best checkpoint carry over, the callbacks start afresh.
func (j *Job) freshState(prev State) *State {
	return &State{
		Phase: j.Cfg.Phase, Epoch: prev.Epoch, LearningRate: j.Cfg.LearningRate,
		Best: prev.Best, BestEpoch: prev.BestEpoch,
	}
}

// newRun checks the dataset and its model and creates the run folder.
func (j *Job) newRun(ctx context.Context) (*start, error) {
	ds, err := filepath.Abs(j.Dataset)
	if err != nil {
		return nil, err
	}
	m, err := dataset.ReadManifest(ds)
	if err != nil {
		return nil, fault.About(fault.BadData, fault.DataFolder, j.Dataset, "not a prepared dataset (%v); run `xcept prepare --data IMAGES --out %s` or pass an image folder", err, j.Dataset)
	}
	modelDir := filepath.Join(ds, dataset.ModelDir)
	info, err := model.ReadInfo(modelDir)
	if err != nil {
		return nil, fault.About(fault.NotAModel, fault.DataFolder, j.Dataset, "has no model (prepared with --no-model?): build it with `xcept build-model --labels %s --out %s`",
			filepath.Join(ds, contract.LabelsFile), modelDir)
	}
	if err := contract.CheckFit(info.Fit(), m.Fit(ds), refit); err != nil {
		return nil, err
	}
	r, err := run.Create(j.RunDir, run.Info{Dataset: ds, Model: modelDir, Classes: info.Classes, ImageSize: info.ImageSize, Arch: info.Arch()})
	if err != nil {
		return nil, err
	}
	precision := j.Precision != "" && j.Precision != info.Precision
	if precision || !j.sameOptimizer(info) || j.JitCompile != info.JitCompile {
		if !precision && !j.sameOptimizer(info) {
			j.Out.Notef("building the run's model with train.optimizer %s (the dataset's model has %s)", j.Cfg.Optimizer, info.Optimizer(PhaseTrain))
		} else if !precision {
			j.Out.Notef("building the run's model with runtime.jit_compile %t (the dataset's model has %t)", j.JitCompile, info.JitCompile)
		}
		if modelDir, err = j.rebuild(ctx, r, info, "model", func(s *model.Spec) {
			s.Precision = cmpOr(j.Precision, info.Precision)
			s.HeadOptimizer = cmpOr(j.Cfg.Optimizer, info.Optimizer(PhaseTrain))
			s.JitCompile = j.JitCompile
		}); err != nil {
			os.RemoveAll(r.Dir) // created above, holds nothing else yet
			return nil, err
		}
	}
	return &start{run: r, state: j.freshState(State{}), model: modelDir}, nil
}

// rebuild builds a variant of the model described by info into the run
// folder (sub) and makes it the run's model.
func (j *Job) rebuild(ctx context.Context, r *run.Run, info *model.Info, sub string, edit func(*model.Spec)) (string, error) {
	spec := model.Spec{Arch: info.Arch(), Classes: info.Classes, ImageSize: info.ImageSize, Weights: info.Weights, Precision: info.Precision,
		DenseUnits: info.DenseUnits, Dropout: info.Dropout, UnfreezeFrom: info.UnfreezeFrom, FeatureBlocks: info.Features(), Seed: info.Seed,
		HeadOptimizer: info.Optimizer(PhaseTrain), FinetuneOptimizer: info.Optimizer(PhaseFinetune), JitCompile: info.JitCompile,
		GradientCheckpointing: info.GradientCheckpointing}
	edit(&spec)
	dir := r.Path(sub)
	if _, err := model.Build(ctx, dir, spec, true, j.Out.Progress()); err != nil {
		return "", err
	}
	r.Info.Model = dir
	return dir, r.SaveInfo()
}

// checkDataset re-checks a run's dataset against its model.
func (j *Job) checkDataset(r *run.Run) error {
	m, err := dataset.ReadManifest(r.Info.Dataset)
	if err != nil {
		return fault.New(fault.BadData, "run %s: dataset %s: %v", r.Dir, r.Info.Dataset, err)
	}
	info, err := model.ReadInfo(r.Info.Model)
	if err != nil {
		return err
	}
	if err := contract.CheckFit(info.Fit(), r.Fit(), refit); err != nil {
		return err
	}
	return contract.CheckFit(info.Fit(), m.Fit(r.Info.Dataset), refit)
}

// refit says what to do when the model does not fit its dataset.
const refit = "prepare the dataset again to rebuild its model"

// finetuneModel is the model folder fine-tuning trains: the run's own, or,
// for another unfreeze boundary, a trainer rebuilt from the best weights.
func (j *Job) finetuneModel(ctx context.Context, r *run.Run) (string, bool, error) {
	info, err := model.ReadInfo(r.Info.Model)
	if err != nil {
		return "", false, err
	}
	if err := contract.CheckFit(info.Fit(), r.Fit(), refit); err != nil {
		return "", false, err
	}
	if err := r.NeedCheckpoint(run.Best, "to fine-tune from"); err != nil {
		return "", false, err
	}
	sameBoundary := j.UnfreezeFrom == "" || j.UnfreezeFrom == info.UnfreezeFrom
	if sameBoundary && j.sameOptimizer(info) && j.JitCompile == info.JitCompile && j.sameCheckpointing(info) {
		return r.Info.Model, false, nil
	}
	unfreeze := cmpOr(j.UnfreezeFrom, info.UnfreezeFrom)
	optimizer := cmpOr(j.Cfg.Optimizer, info.Optimizer(PhaseFinetune))
	sub := "model-" + sanitize(unfreeze)
	if !j.sameOptimizer(info) {
		sub += "-" + sanitize(strings.ReplaceAll(optimizer, ":", "-"))
	}
	if j.JitCompile {
		sub += "-xla"
	}
	checkpointing := j.checkpointing(info)
	if checkpointing {
		sub += "-gc"
	}
	j.Out.Notef("rebuilding the trainer to unfreeze from %s with finetune.optimizer %s, runtime.jit_compile %t, finetune.gradient_checkpointing %t (initialised from the best checkpoint)",
		unfreeze, optimizer, j.JitCompile, checkpointing)
	dir, err := j.rebuild(ctx, r, info, sub, func(s *model.Spec) {
		s.Weights, s.UnfreezeFrom, s.InitFrom = "none", unfreeze, r.CheckpointPrefix(run.Best)
		s.FinetuneOptimizer, s.JitCompile, s.GradientCheckpointing = optimizer, j.JitCompile, checkpointing
	})
	return dir, true, err
}

// resumeModel is the model folder a resumed phase trains: the run's own,
// or for fine-tuning with another finetune.gradient_checkpointing, that
// trainer rebuilt (its variables are the same, so the last checkpoint
// restores into it whole, optimizer state included).
func (j *Job) resumeModel(ctx context.Context, r *run.Run) (string, error) {
	if j.Cfg.Phase != PhaseFinetune {
		return r.Info.Model, nil
	}
	info, err := model.ReadInfo(r.Info.Model)
	if err != nil || j.sameCheckpointing(info) {
		return r.Info.Model, err
	}
	if err := r.NeedCheckpoint(run.Last, "to resume from"); err != nil {
		return "", err
	}
	on := j.checkpointing(info)
	sub := "model-" + sanitize(info.UnfreezeFrom) + "-resumed"
	if on {
		sub += "-gc"
	}
	j.Out.Notef("rebuilding the trainer with finetune.gradient_checkpointing %t to resume (the run's model has %t)", on, info.GradientCheckpointing)
	return j.rebuild(ctx, r, info, sub, func(s *model.Spec) {
		s.Weights, s.InitFrom, s.GradientCheckpointing = "none", r.CheckpointPrefix(run.Last), on
	})
}

// checkpointing is the finetune.gradient_checkpointing the job trains
// with: its own, or the model's when it has none.
func (j *Job) checkpointing(info *model.Info) bool {
	if j.GradientCheckpointing == nil {
		return info.GradientCheckpointing
	}
	return *j.GradientCheckpointing
}

func (j *Job) sameCheckpointing(info *model.Info) bool {
	return j.checkpointing(info) == info.GradientCheckpointing
}

// sameOptimizer reports whether the model's optimizer for the job's phase
// is the configured one (an unparsable value was refused by Validate).
func (j *Job) sameOptimizer(info *model.Info) bool {
	want, err1 := model.ParseOptimizer(j.Cfg.Phase+".optimizer", j.Cfg.Optimizer)
	have, err2 := model.ParseOptimizer("model.json", info.Optimizer(j.Cfg.Phase))
	return err1 != nil || err2 != nil || want.Equal(have)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ' ' {
			return '_'
		}
		return r
	}, s)
}

// source picks what the phase trains on: cached features for the frozen
// phase (unless switched off), decoded images otherwise.
func (j *Job) source(ctx context.Context, r *run.Run, m *model.Model, ds *dataset.Manifest) (Source, error) {
	balanced := make([]float64, len(ds.Classes))
	for i, c := range ds.Classes {
		balanced[i] = c.Weight
	}
	weights, err := ClassWeights(j.Cfg.ClassWeight, ds.ClassNames(), balanced)
	if err != nil {
		return nil, err
	}
	data := Data{TrainShards: ds.ShardPaths(r.Info.Dataset, "train"), ValShards: ds.ShardPaths(r.Info.Dataset, "val"),
		ImageSize: ds.Image.Size, Classes: len(ds.Classes), ClassWeights: weights}
	if len(data.TrainShards) == 0 || len(data.ValShards) == 0 {
		return nil, fault.New(fault.BadData, "dataset %s has no training or no validation images", r.Info.Dataset)
	}
	if j.Cfg.Phase == PhaseFinetune {
		if err := j.fullShards(data); err != nil {
			return nil, err
		}
		return j.imageSource(m, contract.SigFinetuneStep, data)
	}
	if !j.Cfg.FeatureCache {
		return j.imageSource(m, contract.SigTrainStep, data)
	}
	sum, err := ManifestSHA(r.Info.Dataset)
	if err != nil {
		return nil, err
	}
	var peers Peers
	if j.Cluster != nil {
		peers = groupPeers{m}
	}
	cache, err := OpenFeatureCache(ctx, m, data, sum, j.Cfg, j.cacheRoot(r), j.Out.Notef, j.Features, peers)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fault.ErrInterrupted
		}
		if fault.ReasonOf(err) == fault.PeerLost {
			return nil, err // a worker died while the cache was built in parts: exit 7
		}
		return nil, fault.New(fault.ToolFailed, "feature cache: %v", err)
	}
	return &CachedSource{Model: m, Cache: cache, Cfg: j.Cfg, Weights: weights}, nil
}

// fullShards refuses to fine-tune in a cluster whose last global batch is
// smaller than the group: a worker's share of it would be empty, and the
// base's fused CPU convolutions fail on an empty batch (the frozen phase
// runs its head alone there; fine-tuning needs the base's gradients).
func (j *Job) fullShards(data Data) error {
	if j.Cluster == nil {
		return nil
	}
	n, err := loader.Count(data.TrainShards)
	if err != nil {
		return err
	}
	size, bs := j.Cluster.Spec.Size(), j.Cfg.BatchSize
	if last := n % bs; last > 0 && last < size {
		return fault.BadSetting("train.batch_size", "%d leaves %d of the %d training images for the last global batch, fewer than the cluster's %d workers, so a worker's share of it is empty, which fine-tuning cannot train on (TensorFlow's CPU convolutions fail on an empty batch): choose one that leaves at least %d",
			bs, last, n, size, size)
	}
	return nil
}

// imageSource trains signature on images; a cluster worker decodes only
// its part of every batch.
func (j *Job) imageSource(m *model.Model, signature string, data Data) (Source, error) {
	s, err := NewImageSource(m, signature, data, j.Cfg)
	if err != nil {
		return nil, err
	}
	if j.Cluster != nil {
		s.Part, s.Parts = j.Cluster.Spec.Task, j.Cluster.Spec.Size()
	}
	return s, nil
}

// CacheRoot keeps feature caches with the dataset, so every run of it
// shares them, or in the run folder when the dataset is read-only.
func CacheRoot(r *run.Run) string {
	if dir, ok := datasetCacheRoot(r); ok {
		return dir
	}
	return r.Path(".cache", "features")
}

// datasetCacheRoot is the dataset's cache folder, and whether it is writable.
func datasetCacheRoot(r *run.Run) (string, bool) {
	dir := filepath.Join(r.Info.Dataset, ".cache", "features")
	if err := os.MkdirAll(dir, 0o755); err == nil {
		if f, err := os.CreateTemp(dir, ".probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return dir, true
		}
	}
	return dir, false
}

// cacheRoot is CacheRoot for this job: a worker other than the chief,
// training a scratch copy, shares the chief's (the only thing it writes
// into the chief's run folder, with a read-only dataset: its part of the
// cache, removed once the parts are joined).
func (j *Job) cacheRoot(r *run.Run) string {
	if w := j.Cluster; w != nil && w.chiefRun != "" {
		if dir, ok := datasetCacheRoot(r); ok {
			return dir
		}
		return filepath.Join(w.chiefRun, ".cache", "features")
	}
	return CacheRoot(r)
}

// ManifestSHA is the SHA-256 of a prepared dataset's manifest, the
// dataset's part of a feature cache's key.
func ManifestSHA(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, dataset.ManifestFile))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// callbacks in order: those that change the State first, then the
// checkpointer that saves it, then the recorders.
func (j *Job) callbacks(r *run.Run, m *model.Model) Callbacks {
	return Callbacks{
		&ReduceLROnPlateau{Cfg: j.Cfg.ReduceLR, Notify: j.Out.Notef},
		&EarlyStopping{Cfg: j.Cfg.EarlyStopping, Run: r, Session: m.Session, Notify: j.Out.Notef},
		&Checkpointer{Monitor: j.Cfg.CheckpointMonitor, Run: r, Session: m.Session},
		&History{Path: r.Path(run.HistoryFile)},
		&TensorBoard{Dir: r.Dir},
		&Progress{Out: j.Out, Epochs: j.Cfg.Epochs},
	}
}
