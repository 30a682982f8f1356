// Package model is the Go side of the Keras Xception model: it builds the
// model folder with the embedded Python builder, reads model.json, and runs
// the trainer's signatures through the graph binding with typed arguments.
package model

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/pyenv"
	"github.com/xcept/xcept/internal/trust"
)

// Builder is the embedded script that builds a model folder.
const Builder = "build_model.py"

// Folder layout written by the builder.
const (
	TrainerDir = "trainer"
	ServingDir = "serving"
	InfoFile   = "model.json"
)

// Precisions lists the precision policies.
var Precisions = []string{"float32", "mixed_bfloat16", "mixed_float16"}

// MinBuilderVersion is the oldest builder whose models have every signature
// this xcept runs (eval_head_step, serving_default on encoded images).
const MinBuilderVersion = 2

// CalibrationBuilderVersion is the oldest builder whose models hold a
// temperature (set_temperature, logits from the eval steps): older ones
// train and predict uncalibrated.
const CalibrationBuilderVersion = 3

// Calibratable reports whether the model holds a temperature.
func (i *Info) Calibratable() bool { return i.BuilderVersion >= CalibrationBuilderVersion }

// FeatureMaskBuilderVersion is the oldest builder whose models tap several
// blocks and choose among them with a mask (set_feature_mask).
const FeatureMaskBuilderVersion = 5

// Choosable reports whether the trainer chooses the blocks the head reads.
func (i *Info) Choosable() bool {
	return i.BuilderVersion >= FeatureMaskBuilderVersion && len(i.FeatureChoices) > 1
}

// FeatureMask is the 0/1 mask over the concatenated features that keeps
// the taps in blocks.
func (i *Info) FeatureMask(blocks []string) ([]float32, error) {
	if len(i.FeatureWidths) != len(i.FeatureBlocks) {
		return nil, fmt.Errorf("model.json: %d feature widths for %d feature blocks", len(i.FeatureWidths), len(i.FeatureBlocks))
	}
	var mask []float32
	kept := 0
	for k, b := range i.FeatureBlocks {
		v := float32(0)
		if slices.Contains(blocks, b) {
			v, kept = 1, kept+1
		}
		for range i.FeatureWidths[k] {
			mask = append(mask, v)
		}
	}
	if kept != len(blocks) {
		return nil, fmt.Errorf("feature blocks %s are not all taps of the model (%s)", strings.Join(blocks, ","), strings.Join(i.FeatureBlocks, ","))
	}
	return mask, nil
}

// Features is the blocks whose pooled outputs the model's base taps.
// Builders before version 4 recorded none: their head read block14 alone.
func (i *Info) Features() []string {
	if len(i.FeatureBlocks) == 0 {
		return []string{"block14"}
	}
	return i.FeatureBlocks
}

// ParseBlocks splits a comma-separated block list (model.feature_blocks,
// --feature-blocks); the builder checks the names.
func ParseBlocks(list string) []string {
	var blocks []string
	for _, b := range strings.Split(list, ",") {
		if b = strings.TrimSpace(b); b != "" {
			blocks = append(blocks, b)
		}
	}
	return blocks
}

// MinImageSize is the smallest input Keras Xception accepts (each
// architecture's is its Arch.MinImageSize).
const MinImageSize = 71

// Optimizers are the optimizers of train.optimizer and finetune.optimizer;
// a value may carry parameters: adamw:weight_decay=0.01, sgd:momentum=0.9,nesterov=true.
var Optimizers = []string{"adam", "adamw", "sgd"}

// Spec is what the builder needs to build a model.
type Spec struct {
	// Arch is the backbone (model.arch, scripts/archs.json); "" is xception.
	Arch    string
	Classes []string
	// ImageSize 0 is the architecture's default (Resolve).
	ImageSize    int
	Weights      string // imagenet | none | PATH.h5
	Precision    string
	DenseUnits   int
	Dropout      float64
	UnfreezeFrom string
	// FeatureBlocks are the Xception blocks, shallowest first, whose pooled
	// outputs the head reads, or ["auto"] (the trainer chooses them on the
	// validation split, see Info.Choosable); empty: the builder's default, auto.
	FeatureBlocks []string
	Seed          int64
	// InitFrom, when set, is a checkpoint prefix whose model weights the
	// built trainer starts from (fine-tuning at another unfreeze boundary).
	InitFrom string
	// HeadOptimizer and FinetuneOptimizer are the optimizers of the frozen
	// phase and of fine-tuning (one of Optimizers, with parameters after a
	// colon); "" is adam. Their state is part of the trainer.
	HeadOptimizer, FinetuneOptimizer string
	// JitCompile (runtime.jit_compile) XLA-compiles the training and
	// inference signatures (tf.function jit_compile; the C API runs each as
	// one XLA cluster).
	JitCompile bool
	// GradientCheckpointing (finetune.gradient_checkpointing): finetune_step
	// keeps only the trained base's segment boundaries for the backward pass
	// and recomputes each segment's activations there (tf.recompute_grad).
	GradientCheckpointing bool
}

// Resolve fills in the architecture's defaults: the image size (0) and the
// fine-tuning boundary ("" or auto). An unknown architecture is a usage error.
func (s Spec) Resolve() (Spec, error) {
	a, err := LookupArch(s.Arch)
	if err != nil {
		return s, err
	}
	s.Arch = a.Name
	if s.ImageSize == 0 {
		s.ImageSize = a.ImageSize
	}
	if s.UnfreezeFrom == "" || s.UnfreezeFrom == "auto" {
		s.UnfreezeFrom = a.UnfreezeFrom
	}
	return s, nil
}

// Validate checks the spec before the builder starts, naming the config key.
func (s Spec) Validate() error {
	if len(s.Classes) < 2 {
		return fault.New(fault.BadData, "a model needs at least 2 classes, got %d", len(s.Classes))
	}
	return s.ValidateOptions()
}

// ValidateOptions checks everything but the classes (known only later).
func (s Spec) ValidateOptions() error {
	a, err := LookupArch(s.Arch)
	if err != nil {
		return err
	}
	for _, o := range [][2]string{{"train.optimizer", s.HeadOptimizer}, {"finetune.optimizer", s.FinetuneOptimizer}} {
		if _, err := ParseOptimizer(o[0], o[1]); err != nil {
			return err
		}
	}
	switch {
	case s.ImageSize < a.MinImageSize:
		return fault.BadSetting("model.image_size", "%d: %s needs at least %d", s.ImageSize, a.Display, a.MinImageSize)
	case !slices.Contains(Precisions, s.Precision):
		return fault.BadSetting("model.precision", "%q: use one of %s", s.Precision, strings.Join(Precisions, ", "))
	case s.DenseUnits < 1:
		return fault.New(fault.BadValue, "model.dense_units %d: must be at least 1", s.DenseUnits)
	case s.Dropout < 0 || s.Dropout >= 1:
		return fault.New(fault.BadValue, "model.dropout %g: must be in [0, 1)", s.Dropout)
	case s.Weights == "":
		return fault.BadSetting("model.weights", "is empty: use imagenet, none or a .h5 file")
	}
	if s.Weights != "imagenet" && s.Weights != "none" {
		if st, err := os.Stat(s.Weights); err != nil || st.IsDir() {
			return fault.BadSetting("model.weights", "%s: no such file (use imagenet, none or a Keras Xception notop .h5 file)", s.Weights)
		}
	}
	return nil
}

// args are the builder's arguments; the class names are in the file
// labels (one per line): a long list would not fit on a command line.
func (s Spec) args(dir, labels string, overwrite bool) []string {
	weights := s.Weights
	if weights != "imagenet" && weights != "none" {
		if abs, err := filepath.Abs(weights); err == nil {
			weights = abs
		}
	}
	args := []string{
		"--out", dir,
		"--labels", labels,
		"--arch", cmpOr(s.Arch, DefaultArch),
		"--image-size", strconv.Itoa(s.ImageSize),
		"--weights", weights,
		"--precision", s.Precision,
		"--dense-units", strconv.Itoa(s.DenseUnits),
		"--dropout", strconv.FormatFloat(s.Dropout, 'g', -1, 64),
		"--unfreeze-from", s.UnfreezeFrom,
		"--seed", strconv.FormatInt(s.Seed, 10),
	}
	if len(s.FeatureBlocks) > 0 {
		args = append(args, "--feature-blocks", strings.Join(s.FeatureBlocks, ","))
	}
	if s.InitFrom != "" {
		args = append(args, "--init-from", s.InitFrom)
	}
	if s.HeadOptimizer != "" {
		args = append(args, "--head-optimizer", s.HeadOptimizer)
	}
	if s.FinetuneOptimizer != "" {
		args = append(args, "--finetune-optimizer", s.FinetuneOptimizer)
	}
	if s.JitCompile {
		args = append(args, "--jit-compile")
	}
	if s.GradientCheckpointing {
		args = append(args, "--gradient-checkpointing")
	}
	if overwrite {
		args = append(args, "--overwrite")
	}
	return args
}

// Build runs the builder into dir (atomically: the builder writes a temporary
// folder and renames it). Progress lines go to progress (nil: discarded).
func Build(ctx context.Context, dir string, spec Spec, overwrite bool, progress io.Writer) (*Info, error) {
	spec, err := spec.Resolve()
	if err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	for _, c := range spec.Classes {
		if strings.ContainsAny(c, ",\n") {
			return nil, fault.New(fault.BadData, "class name %q: commas and newlines are not allowed in class names", c)
		}
	}
	labels, err := os.CreateTemp("", "xcept-labels-*.txt")
	if err != nil {
		return nil, fault.WriteFailed(os.TempDir(), err)
	}
	defer os.Remove(labels.Name())
	_, err = labels.Write(contract.LabelsText(spec.Classes))
	if cerr := labels.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fault.WriteFailed(labels.Name(), err)
	}
	if _, err := pyenv.Run(ctx, Builder, spec.args(dir, labels.Name(), overwrite), progress); err != nil {
		return nil, pyenv.Failure(ctx, dir, err)
	}
	// The serving model is xcept's: marked so that predict and serve run it
	// without --allow-untrusted-model (exports copy the mark).
	if err := trust.WriteMark(filepath.Join(dir, ServingDir)); err != nil {
		return nil, fault.New(fault.ToolFailed, "marking %s as built by xcept: %v", filepath.Join(dir, ServingDir), err)
	}
	return ReadInfo(dir)
}

// TensorSpec is one signature input or output as model.json records it.
type TensorSpec struct {
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
}

// SignatureSpec is one signature's inputs and outputs.
type SignatureSpec struct {
	Inputs  map[string]TensorSpec `json:"inputs"`
	Outputs map[string]TensorSpec `json:"outputs"`
}

// Info is model.json: what was built, and how.
type Info struct {
	FormatVersion      int                                 `json:"format_version"`
	BuilderVersion     int                                 `json:"builder_version"`
	ArchName           string                              `json:"arch"`          // see Arch
	GradCAMLayer       string                              `json:"gradcam_layer"` // the layer explain looks at
	Optimizers         map[string]string                   `json:"optimizers"`    // phase → optimizer (builder 6)
	Parameters         int64                               `json:"parameters"`
	Classes            []string                            `json:"classes"`
	NumClasses         int                                 `json:"num_classes"`
	ImageSize          int                                 `json:"image_size"`
	Weights            string                              `json:"weights"`
	WeightsSHA256      *string                             `json:"weights_sha256"`
	Precision          string                              `json:"precision"`
	JitCompile         bool                                `json:"jit_compile"` // runtime.jit_compile (false before it)
	DenseUnits         int                                 `json:"dense_units"`
	Dropout            float64                             `json:"dropout"`
	UnfreezeFrom       string                              `json:"unfreeze_from"`
	Seed               int64                               `json:"seed"`
	FeatureBlocks      []string                            `json:"feature_blocks"` // see Features
	FeatureDim         int                                 `json:"feature_dim"`
	FeatureChoices     [][]string                          `json:"feature_choices"` // see Choosable
	FeatureWidths      []int                               `json:"feature_widths"`  // per feature block
	Blocks             []string                            `json:"blocks"`
	TrainableVariables map[string]int                      `json:"trainable_variables"`
	Signatures         map[string]map[string]SignatureSpec `json:"signatures"`
	InitFrom           *string                             `json:"init_from"`
	TensorFlowVersion  string                              `json:"tensorflow_version"`
	KerasVersion       string                              `json:"keras_version"`

	// GradientCheckpointing is finetune.gradient_checkpointing (false before
	// it); RecomputeSegments name the last layer of each recomputed segment.
	GradientCheckpointing bool     `json:"gradient_checkpointing"`
	RecomputeSegments     []string `json:"recompute_segments"`
}

// Arch is the model's backbone; models built before model.arch are Xception.
func (i *Info) Arch() string { return cmpOr(i.ArchName, DefaultArch) }

// Optimizer is the optimizer of phase ("train" or "finetune"): adam for
// models built before train.optimizer.
func (i *Info) Optimizer(phase string) string { return cmpOr(i.Optimizers[phase], "adam") }

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Fit describes the model for contract.CheckFit.
func (i *Info) Fit() contract.Fit {
	return contract.Fit{Name: "the model", Classes: i.Classes, ImageSize: i.ImageSize, Arch: i.Arch()}
}

// ReadInfo reads dir/model.json.
func ReadInfo(dir string) (*Info, error) {
	path := filepath.Join(dir, InfoFile)
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fault.New(fault.NotAModel, "%s: no model here (build one with `xcept prepare`)", dir)
		}
		return nil, fault.New(fault.NotAModel, "%s: %v", path, err)
	}
	var info Info
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, fault.New(fault.NotAModel, "%s: not a valid model.json: %v", path, err)
	}
	if info.FormatVersion != 1 {
		return nil, fault.New(fault.NotAModel, "%s: format_version %d is not supported by this xcept (want 1); rebuild the model", path, info.FormatVersion)
	}
	if info.BuilderVersion < MinBuilderVersion {
		return nil, fault.New(fault.NotAModel, "%s: built by an older xcept (builder version %d, want %d): rebuild it with `xcept prepare` or `xcept build-model`",
			path, info.BuilderVersion, MinBuilderVersion)
	}
	arch, err := LookupArch(info.Arch())
	if err != nil {
		return nil, fault.New(fault.NotAModel, "%s: architecture %s is not known to this xcept (%v)", path, info.Arch(), err)
	}
	if info.NumClasses != len(info.Classes) || info.NumClasses < 2 || info.ImageSize < arch.MinImageSize {
		return nil, fault.New(fault.NotAModel, "%s: inconsistent model description (classes %d, num_classes %d, image_size %d)",
			path, len(info.Classes), info.NumClasses, info.ImageSize)
	}
	return &info, nil
}

// String describes the model in one line.
func (i *Info) String() string {
	display := "Xception"
	if a, err := LookupArch(i.Arch()); err == nil {
		display = a.Display
	}
	return fmt.Sprintf("%s %d px, %d classes, weights %s, %s", display, i.ImageSize, i.NumClasses, i.Weights, i.Precision)
}
