// Package export turns a run's best checkpoint into deployable artefacts (a
// SavedModel laid out for TF Serving, a TensorFlow Lite file, an ONNX file)
// and proves each against the trained model before publishing it: the
// artefact is built in a hidden folder, run on held-out images next to the
// trained model, and only renamed into place when it agrees.
//
//	<out>/<name>/<version>/            SavedModel (TF Serving's model_base_path is <out>/<name>)
//	  saved_model.pb, fingerprint.pb, xcept-model.json (trust.MarkFile), variables/, assets/labels.txt, assets.extra/xcept_export.json
//	<out>/<name>-tflite/<version>/     <name>_<float32|float16|dynamic|int8>.tflite, labels.txt, export.json
//	<out>/<name>-onnx/<version>/       <name>.onnx, labels.txt, export.json
//
// Versions are positive integers, one more than the largest present; an
// export never replaces one.
package export

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"

	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/device"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/run"
)

// Formats.
const (
	SavedModel = "savedmodel"
	TFLite     = "tflite"
	ONNX       = "onnx"
)

// Formats lists the export formats.
var Formats = []string{SavedModel, TFLite, ONNX}

// Quantizations (TFLite only; the other formats are float32).
const (
	QuantNone    = "none"
	QuantFloat16 = "float16"
	QuantDynamic = "dynamic"
	QuantInt8    = "int8"
)

// Quantizations lists the quantization choices.
var Quantizations = []string{QuantNone, QuantFloat16, QuantDynamic, QuantInt8}

// Splits a verification may draw its images from.
var VerifySplits = []string{"test", "val"}

// GatedByDefault reports whether an export's agreement is held to the
// float threshold unless told otherwise: float32 and float16 weights should
// change almost nothing, 8-bit weights (dynamic, int8) are expected to move
// some predictions, so their agreement is reported and gated only on request.
func GatedByDefault(quantize string) bool {
	return quantize == QuantNone || quantize == QuantFloat16
}

// Options say what to export and how to verify it.
type Options struct {
	RunDir               string
	Format               string
	Quantize             string
	Out                  string   // parent of the export folders; "" is RUN/export
	Name                 string   // "" is the run folder's name
	Images               int      // most verification images
	Splits               []string // verification splits, drawn in this order
	BatchSize            int      // images per inference call, for every runtime alike
	MinAgreement         float64  // top-1 agreement below which the export fails; 0 only reports
	RepresentativeImages int      // int8 calibration images, from the training split
	ONNXOpset            int
	Session              graph.SessionOptions
	Progress             io.Writer // progress lines and the scripts' messages; nil: none
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// The options that errors name (fault.Option: the command layer names
// their flags).
const (
	optFormat       fault.Option = "format"
	optQuantize     fault.Option = "quantize"
	optMinAgreement fault.Option = "min-agreement"
	optName         fault.Option = "name"
)

// Validate checks the options before anything is read or written, naming
// the option at fault.
func (o *Options) Validate() error {
	switch {
	case o.RunDir == "":
		return fault.New(fault.BadValue, "%s DIR is required: the run whose best checkpoint to export", fault.Option("run"))
	case !slices.Contains(Formats, o.Format):
		return fault.New(fault.BadValue, "%s %q: use one of %s", optFormat, o.Format, strings.Join(Formats, ", "))
	case !slices.Contains(Quantizations, o.Quantize):
		return fault.New(fault.BadValue, "%s %q: use one of %s", optQuantize, o.Quantize, strings.Join(Quantizations, ", "))
	case o.Format != TFLite && o.Quantize != QuantNone:
		return fault.New(fault.BadValue, "%s %s applies to %s tflite only (%s exports float32)", optQuantize, o.Quantize, optFormat, o.Format)
	case o.Images < 1:
		return fault.New(fault.BadValue, "%s %d: verify on at least 1 image", fault.Option("images"), o.Images)
	case o.BatchSize < 1:
		return fault.New(fault.BadValue, "%s %d: want at least 1", fault.Option("batch-size"), o.BatchSize)
	case o.MinAgreement < 0 || o.MinAgreement > 1:
		return fault.New(fault.BadValue, "%s %g: want a fraction in [0, 1] (0.99 is 99%%)", optMinAgreement, o.MinAgreement)
	case o.Quantize == QuantInt8 && o.RepresentativeImages < 1:
		return fault.New(fault.BadValue, "export.representative_images %d: int8 needs at least 1 calibration image", o.RepresentativeImages)
	case o.Format == ONNX && (o.ONNXOpset < 13 || o.ONNXOpset > 18):
		return fault.New(fault.BadValue, "export.onnx_opset %d: tf2onnx converts to opsets 13 to 18", o.ONNXOpset)
	case len(o.Splits) == 0:
		return fault.New(fault.BadValue, "export.verify_splits is empty: give test, val or both")
	}
	for _, s := range o.Splits {
		if !slices.Contains(VerifySplits, s) {
			return fault.New(fault.BadValue, "export.verify_splits %q: verify on held-out images, test or val", s)
		}
	}
	if o.Name != "" && !namePattern.MatchString(o.Name) {
		return fault.New(fault.BadValue, "%s %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", optName, o.Name)
	}
	return nil
}

// Result describes a published export. Artefact and Labels are paths in
// Path (the version folder); export.json holds the same with them relative.
type Result struct {
	Format     string   `json:"format"`
	Quantize   string   `json:"quantize"`
	Run        string   `json:"run"`
	Checkpoint string   `json:"checkpoint"`
	Epoch      int      `json:"checkpoint_epoch"`
	Classes    []string `json:"classes"`
	ImageSize  int      `json:"image_size"`
	TensorFlow string   `json:"tensorflow_version"` // that built the model (and converts it)
	Precision  string   `json:"precision"`          // the model's policy (model.json)
	Arch       string   `json:"arch"`               // the model's backbone (model.arch)
	// Device is where the export was verified: the reference model's device.
	Device     *device.Placement `json:"device,omitempty"`
	Path       string            `json:"path,omitempty"`
	Version    int64             `json:"version,omitempty"`
	Artefact   string            `json:"artefact"` // the file to deploy; the version folder for a SavedModel
	Labels     string            `json:"labels"`   // one class name per line, in the order of the probabilities
	SizeBytes  int64             `json:"size_bytes"`
	Signatures []SignatureSpec   `json:"signatures"`
	// Calibration is the run's temperature, which the exported
	// probabilities already include, and its "unknown" threshold on them,
	// which `predict --reject` and `serve.reject` apply (nil: the model
	// holds no temperature). A TFLite file's description and an ONNX
	// file's metadata_props carry the same figures.
	Calibration *calibrate.Deployed `json:"calibration,omitempty"`
	// TFLiteMetadata: the .tflite carries TFLite Model Metadata (MediaPipe Tasks loads it).
	TFLiteMetadata bool         `json:"tflite_metadata,omitempty"`
	Verification   Verification `json:"verification"`
}

// Verification is the comparison of the artefact with the trained model.
type Verification struct {
	Images       int      `json:"images"`
	Splits       []string `json:"splits"`
	BatchSize    int      `json:"batch_size"`
	MinAgreement float64  `json:"min_agreement"` // 0: reported, not gated
	Reference    Check    `json:"reference"`
	Candidates   []Check  `json:"candidates"`
	Passed       bool     `json:"passed"`
}

// Check is one model run on the verification images.
type Check struct {
	Name      string     `json:"name"`
	Runtime   string     `json:"runtime"`
	Input     string     `json:"input"`
	SizeBytes int64      `json:"size_bytes"`
	LatencyMS float64    `json:"latency_ms"` // mean per image, warm-up excluded
	Accuracy  float64    `json:"accuracy"`
	Agreement *Agreement `json:"agreement,omitempty"` // with the reference; nil for the reference itself
}

// Worst is the candidate with the lowest agreement.
func (v *Verification) Worst() *Check {
	var worst *Check
	for i := range v.Candidates {
		c := &v.Candidates[i]
		if worst == nil || c.Agreement.Agreement < worst.Agreement.Agreement {
			worst = c
		}
	}
	return worst
}

// Run exports o.RunDir's best checkpoint in o.Format, verifies it and
// publishes it. On any error nothing new is left on disk.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	j, err := newJob(ctx, o)
	if err != nil {
		return nil, err
	}
	defer j.close()
	return j.export(ctx)
}

// source is everything the export reads, checked before anything is written.
type source struct {
	run          *run.Run
	lock         *run.Lock // held when the export goes into the run folder
	info         *model.Info
	verifyShards []string
	trainShards  []string
	epoch        int
}

// openSource opens the run; an export written into it (base inside the run
// folder) takes the run's lock first, released by the job's close.
func openSource(o Options, base string) (src *source, err error) {
	abs, err := filepath.Abs(o.RunDir)
	if err != nil {
		return nil, fault.About(fault.BadValue, fault.RunFolder, o.RunDir, "%v", err)
	}
	r, err := run.Open(abs)
	if err != nil {
		return nil, err
	}
	var lock *run.Lock
	if run.Inside(abs, base) {
		if lock, err = run.Acquire(abs, "export"); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				lock.Release()
			}
		}()
	}
	if err = r.NeedCheckpoint(run.Best, "to export"); err != nil {
		return nil, err
	}
	var state struct {
		Epoch int `json:"epoch"`
	}
	if err := r.LoadState(run.Best, &state); err != nil {
		return nil, fault.About(fault.ToolFailed, fault.RunFolder, o.RunDir, "reading the best checkpoint's state: %v", err)
	}
	info, err := model.ReadInfo(r.Info.Model)
	if err != nil {
		return nil, err
	}
	m, err := dataset.ReadManifest(r.Info.Dataset)
	if err != nil {
		return nil, fault.New(fault.BadData, "run %s: dataset %s: %v", r.Dir, r.Info.Dataset, err)
	}
	if err := contract.CheckFit(info.Fit(), m.Fit(r.Info.Dataset), "run "+r.Dir+" was trained on other data: prepare its dataset again or train a new run"); err != nil {
		return nil, err
	}
	src = &source{run: r, lock: lock, info: info, epoch: state.Epoch, trainShards: m.ShardPaths(r.Info.Dataset, "train")}
	for _, s := range o.Splits {
		src.verifyShards = append(src.verifyShards, m.ShardPaths(r.Info.Dataset, s)...)
	}
	return src, nil
}

// exportName is --name, or the run folder's name.
func (o *Options) exportName() (string, error) {
	if o.Name != "" {
		return o.Name, nil
	}
	abs, err := filepath.Abs(o.RunDir)
	if err != nil {
		return "", fault.About(fault.BadValue, fault.RunFolder, o.RunDir, "%v", err)
	}
	name := filepath.Base(abs)
	if !namePattern.MatchString(name) {
		return "", fault.New(fault.BadValue, "the run folder's name %q cannot name an export: give %s", name, optName)
	}
	return name, nil
}

// base is the folder the format's versions live in, absolute.
func (o *Options) base(name string) (string, error) {
	out := o.Out
	if out == "" {
		out = filepath.Join(o.RunDir, "export")
	}
	out, err := filepath.Abs(out)
	if err != nil {
		return "", fault.About(fault.BadValue, fault.OutFolder, o.Out, "%v", err)
	}
	if o.Format == SavedModel {
		return filepath.Join(out, name), nil
	}
	return filepath.Join(out, name+"-"+o.Format), nil
}

// artefactFile is the file name of a TFLite or ONNX export.
func (o *Options) artefactFile(name string) string {
	if o.Format == ONNX {
		return name + ".onnx"
	}
	q := o.Quantize
	if q == QuantNone {
		q = "float32"
	}
	return name + "_" + q + ".tflite"
}

func (o *Options) threads() int {
	if o.Session.IntraOpThreads > 0 {
		return o.Session.IntraOpThreads
	}
	return runtime.NumCPU()
}

// progress prints progress lines when it has somewhere to.
type progress struct{ w io.Writer }

func (p *progress) printf(format string, args ...any) {
	if p.w != nil {
		fmt.Fprintf(p.w, format+"\n", args...)
	}
}

// writer is where the scripts' messages go; nil discards them.
func (p *progress) writer() io.Writer { return p.w }
