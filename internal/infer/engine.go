package infer

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/export"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/ort"
	"github.com/xcept/xcept/internal/run"
)

// Inference engines (runtime.engine).
const (
	EngineAuto        = "auto"
	EngineTensorFlow  = "tensorflow"
	EngineONNXRuntime = "onnxruntime"
)

// Engines lists runtime.engine's values.
var Engines = []string{EngineAuto, EngineTensorFlow, EngineONNXRuntime}

// ValidEngine checks runtime.engine (--engine).
func ValidEngine(e string) error {
	for _, x := range Engines {
		if e == x {
			return nil
		}
	}
	return fault.BadSetting("runtime.engine", "%q: use one of %s", e, strings.Join(Engines, ", "))
}

// EngineOptions are what opening a model for inference takes.
type EngineOptions struct {
	Engine  string // auto | tensorflow | onnxruntime
	Session graph.SessionOptions
	// Spin lets onnxruntime's threads busy-wait (runtime.onnxruntime_spin).
	Spin bool
	// Providers are onnxruntime's execution providers in order
	// (runtime.onnxruntime_providers; see ParseProviders).
	Providers []string
	// Progress gets the one line saying which engine runs and why, and the
	// conversion's progress (nil: discarded).
	Progress io.Writer
}

// ORT is onnxruntime's session options for o.
func (o EngineOptions) ORT() ort.Options {
	return ort.Options{IntraOpThreads: o.Session.IntraOpThreads, InterOpThreads: o.Session.InterOpThreads, Spin: o.Spin, Providers: o.Providers}
}

// ParseProviders reads runtime.onnxruntime_providers: execution providers
// separated by commas, in order of preference (tensorrt, cuda, cpu).
func ParseProviders(s string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !slices.Contains(ort.Providers, p) {
			return nil, fault.New(fault.BadValue, "runtime.onnxruntime_providers %q: %q is not one of %s", s, p, strings.Join(ort.Providers, ", "))
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fault.New(fault.BadValue, "runtime.onnxruntime_providers %q: name at least one of %s", s, strings.Join(ort.Providers, ", "))
	}
	return out, nil
}

// Say prints one line on o.Progress.
func (o EngineOptions) Say(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// Pixels runs a model on uint8 RGB images of its size, NHWC, through the
// engine runtime.engine chose: TensorFlow's predict signature of the run's
// serving model with the best checkpoint restored, or onnxruntime on that
// checkpoint's cached ONNX conversion. Both take the same pixels and return
// the same probabilities (to float rounding).
type Pixels struct {
	Engine string // EngineTensorFlow | EngineONNXRuntime
	Dir    string // what runs: the model folder, or the ONNX file
	Info   *model.Info
	// TTA: PredictRecords and PredictLabelled also predict every image
	// mirrored left to right (Evaluated.Flipped), for test-time augmentation.
	TTA  bool
	tf   *model.Model
	onnx *ort.Session
}

// Predict returns n × classes probabilities.
func (p *Pixels) Predict(images []uint8, n int) ([]float32, error) {
	if p.onnx != nil {
		return p.onnx.Predict(images, n)
	}
	return p.tf.Predict(images, n)
}

// Close frees the engine's model.
func (p *Pixels) Close() error {
	if p.onnx != nil {
		return p.onnx.Close()
	}
	return p.tf.Close()
}

// OpenPixels opens the run's best checkpoint on the engine o names. With
// auto it is onnxruntime when the library loads and the checkpoint converts
// (or has converted: the conversion is cached next to the checkpoint), else
// TensorFlow; either way one line on o.Progress says which and why.
func OpenPixels(ctx context.Context, r *run.Run, o EngineOptions) (*Pixels, error) {
	p, err := chooseONNX(ctx, r, o)
	if p != nil || err != nil {
		return p, err
	}
	m, err := OpenServing(r, o.Session)
	if err != nil {
		return nil, err
	}
	return &Pixels{Engine: EngineTensorFlow, Dir: m.Dir, Info: m.Info, tf: m}, nil
}

// chooseONNX opens the run on onnxruntime, or returns nil when TensorFlow
// is to run it, having said which and why in one line.
func chooseONNX(ctx context.Context, r *run.Run, o EngineOptions) (*Pixels, error) {
	if err := ValidEngine(o.Engine); err != nil {
		return nil, err
	}
	if o.Engine == EngineTensorFlow {
		return nil, nil // the default and asked for: nothing to explain
	}
	p, err := openONNX(ctx, r, o)
	if err == nil {
		return p, nil
	}
	if o.Engine == EngineONNXRuntime || fault.ReasonOf(err) == fault.Interrupted || fault.BlamesData(err) {
		return nil, err
	}
	o.Say("engine: tensorflow (runtime.engine auto, onnxruntime not used: %s)", oneLine(err))
	return nil, nil
}

// openONNX opens the checkpoint's cached conversion, converting it first
// when there is none for this checkpoint. Its errors are one line, a model
// error (exit 5), naming what is missing or what failed.
func openONNX(ctx context.Context, r *run.Run, o EngineOptions) (*Pixels, error) {
	if err := ort.Load(); err != nil {
		return nil, fault.New(fault.ToolFailed, "%v", err)
	}
	if !r.HasCheckpoint(run.Best) {
		return nil, fault.About(fault.NoCheckpoint, fault.RunFolder, r.Dir, "has no best checkpoint yet: train it first with `xcept train --run %s`", r.Dir)
	}
	info, err := model.ReadInfo(r.Info.Model)
	if err != nil {
		return nil, err
	}
	if err := contract.CheckFit(info.Fit(), r.Fit(), Refit); err != nil {
		return nil, err
	}
	path, converted, err := CachedONNX(ctx, r, o)
	if err != nil {
		return nil, err
	}
	s, err := ort.Open(path, o.ORT())
	if err != nil {
		return nil, fault.New(fault.ToolFailed, "%v", err)
	}
	if s.Size != info.ImageSize || s.Classes != info.NumClasses {
		s.Close()
		return nil, fault.New(fault.NotAModel, "%s takes %d px images to %d classes, the model %d px to %d: delete it and run again", path, s.Size, s.Classes, info.ImageSize, info.NumClasses)
	}
	how := "the cached conversion of the best checkpoint"
	if converted {
		how = "the best checkpoint, converted now and cached"
	}
	o.Say("engine: onnxruntime %s (runtime.engine %s: %s, %s)", ort.Version(), o.Engine, how, path)
	return &Pixels{Engine: EngineONNXRuntime, Dir: path, Info: info, onnx: s}, nil
}

// ONNX conversions are cached in the checkpoint's own folder as
// model-KEY.onnx. A new best checkpoint replaces that folder whole (run's
// SaveCheckpoint), and the key hashes what the conversion depends on, so a
// conversion is never used for a checkpoint, graph or converter it was not
// made from.
const (
	onnxPrefix = "model-"
	onnxSuffix = ".onnx"
)

// ONNXKey is the cache key of the best checkpoint's conversion: a hash of
// the checkpoint's index (TensorFlow's index holds every tensor's CRC32C,
// offset and size, so changed weights change it), the data files' names and
// sizes, the serving graph, the converter script and the opset.
func ONNXKey(r *run.Run, opset int) (string, error) {
	h := sha256.New()
	prefix := r.CheckpointPrefix(run.Best)
	index, err := os.ReadFile(prefix + ".index")
	if err != nil {
		return "", fault.New(fault.ToolFailed, "reading the best checkpoint: %v", err)
	}
	fmt.Fprintf(h, "index %d\n", len(index))
	h.Write(index)
	shards, _ := filepath.Glob(prefix + ".data-*")
	for _, s := range shards {
		st, err := os.Stat(s)
		if err != nil {
			return "", fault.New(fault.ToolFailed, "reading the best checkpoint: %v", err)
		}
		fmt.Fprintf(h, "data %s %d\n", filepath.Base(s), st.Size())
	}
	graphDef, err := os.ReadFile(filepath.Join(r.Info.Model, model.ServingDir, contract.SavedModelFile))
	if err != nil {
		return "", fault.New(fault.ToolFailed, "reading the serving model: %v", err)
	}
	fmt.Fprintf(h, "graph %d\n", len(graphDef))
	h.Write(graphDef)
	return export.ConversionKey(h, opset)
}

// CachedONNX returns the path of the best checkpoint's ONNX conversion,
// converting it first (reported true) when the cache has none for it.
// Conversions of other keys in the folder are removed.
func CachedONNX(ctx context.Context, r *run.Run, o EngineOptions) (string, bool, error) {
	path, ok, err := CachedONNXPath(r)
	if err != nil || ok {
		return path, false, err
	}
	dir := filepath.Dir(path)
	o.Say("converting the best checkpoint of %s to ONNX for onnxruntime (once per checkpoint; cached as %s)", r.Dir, path)
	m, err := OpenServing(r, o.Session)
	if err != nil {
		return "", false, err
	}
	defer m.Close()
	if err := export.ConvertONNX(ctx, m, path, export.DefaultONNXOpset, o.Progress); err != nil {
		if ctx.Err() != nil {
			return "", false, fault.ErrInterrupted
		}
		return "", false, fault.New(fault.ToolFailed, "converting the best checkpoint to ONNX failed: %s", oneLine(err))
	}
	removeOtherONNX(dir, path)
	return path, true, nil
}

// CachedONNXPath is where the best checkpoint's conversion is cached, and
// whether it is there.
func CachedONNXPath(r *run.Run) (string, bool, error) {
	key, err := ONNXKey(r, export.DefaultONNXOpset)
	if err != nil {
		return "", false, err
	}
	path := filepath.Join(filepath.Dir(r.CheckpointPrefix(run.Best)), onnxPrefix+key+onnxSuffix)
	_, err = os.Stat(path)
	return path, err == nil, nil
}

// removeOtherONNX deletes conversions of earlier keys beside keep.
func removeOtherONNX(dir, keep string) {
	old, _ := filepath.Glob(filepath.Join(dir, onnxPrefix+"*"+onnxSuffix))
	for _, p := range old {
		if p != keep {
			os.Remove(p)
		}
	}
}

// Features computes the frozen base's pooled features of uint8 images (the
// trainer's features signature) on the engine runtime.engine chose, for the
// frozen phase's feature cache.
type Features struct {
	Engine string // EngineTensorFlow | EngineONNXRuntime
	tf     *model.Model
	onnx   *ort.Session
}

// Features returns n × dim features of n images of the model's size.
func (f *Features) Features(images []uint8, n int) ([]float32, error) {
	if f.onnx != nil {
		return f.onnx.Features(images, n)
	}
	return f.tf.Features(images, n)
}

// Close frees onnxruntime's session; the TensorFlow model stays the caller's.
func (f *Features) Close() error {
	if f.onnx != nil {
		return f.onnx.Close()
	}
	return nil
}

// OpenFeatures picks the engine that computes a feature cache for the
// trainer m: TensorFlow (m's own features signature), or onnxruntime
// on the trainer's features conversion, made once per model and cached in
// xcept's cache folder keyed by the trainer SavedModel (export.
// CachedFeaturesONNX). With onnxruntime asked for, a library that does not
// load or a conversion that fails is an error (exit 5); with auto it is
// TensorFlow and one line on o.Progress saying why. auto never converts:
// measured at 500 images, a first conversion cost more wall time than
// onnxruntime saved and the same CPU (README, "Inference engines"), so auto
// uses onnxruntime only for a conversion already cached.
func OpenFeatures(ctx context.Context, m *model.Model, o EngineOptions) (*Features, error) {
	if err := ValidEngine(o.Engine); err != nil {
		return nil, err
	}
	tf := &Features{Engine: EngineTensorFlow, tf: m}
	if o.Engine == EngineTensorFlow {
		return tf, nil
	}
	f, err := openFeaturesONNX(ctx, m, o)
	if err == nil {
		return f, nil
	}
	if o.Engine == EngineONNXRuntime || fault.ReasonOf(err) == fault.Interrupted {
		return nil, err
	}
	o.Say("feature cache engine: tensorflow (runtime.engine auto, onnxruntime not used: %s)", oneLine(err))
	return tf, nil
}

func openFeaturesONNX(ctx context.Context, m *model.Model, o EngineOptions) (*Features, error) {
	if err := ort.Load(); err != nil {
		return nil, fault.New(fault.ToolFailed, "%v", err)
	}
	dir := m.Session.Dir
	if o.Engine == EngineAuto {
		if ok, _ := export.HasFeaturesONNX(dir); !ok {
			return nil, fault.New(fault.ToolFailed, "no cached conversion of this model's base, and converting one does not pay for a cache build (runtime.engine onnxruntime converts)")
		}
	}
	path, converted, err := export.CachedFeaturesONNX(ctx, dir, o.Progress)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fault.ErrInterrupted
		}
		return nil, fault.New(fault.ToolFailed, "converting the base's features to ONNX failed: %s", oneLine(err))
	}
	s, err := ort.OpenFeatures(path, o.ORT())
	if err != nil {
		return nil, fault.New(fault.ToolFailed, "%v", err)
	}
	if s.Size != m.Info.ImageSize || s.Classes != m.Info.FeatureDim {
		s.Close()
		return nil, fault.New(fault.NotAModel, "%s takes %d px images to %d features, the model %d px to %d: delete it and run again", path, s.Size, s.Classes, m.Info.ImageSize, m.Info.FeatureDim)
	}
	how := "the cached conversion of the model's base"
	if converted {
		how = "the model's base, converted now and cached"
	}
	o.Say("feature cache engine: onnxruntime %s (runtime.engine %s: %s, %s)", ort.Version(), o.Engine, how, path)
	return &Features{Engine: EngineONNXRuntime, onnx: s}, nil
}
