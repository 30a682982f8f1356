package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/device"
	"github.com/xcept/xcept/internal/infer"
	runs "github.com/xcept/xcept/internal/run"
)

func init() { verbs = append(verbs, NewPredictCmd) }

// PredictOptions is everything `xcept predict` needs, already validated.
type PredictOptions struct {
	cli.Output          // where and how it prints: text, JSON Lines or quiet
	Run        string   // run folder: its serving model with the best checkpoint
	Model      string   // or an exported serving SavedModel (TF Serving layout allowed)
	Paths      []string // images and folders of images
	TopK       int
	Batch      int
	Engine     infer.EngineOptions
	Limits     infer.Limits
	// Reject answers "unknown" for images whose calibrated top probability
	// is below the run's (or the export's) threshold.
	Reject bool
	// AllowUntrusted runs a --model that xcept did not export, or whose
	// graph holds ops outside the allowlist (internal/trust).
	AllowUntrusted bool
}

// NewPredictCmd builds `xcept predict`.
func NewPredictCmd(g *Globals) *cobra.Command {
	o := &PredictOptions{}
	cmd := &cobra.Command{
		Use:   "predict (--run runs/NAME | --model DIR) IMAGE|DIR...",
		Short: "Print the top-k classes of images",
		Long: `predict prints the k most probable classes of each image, one line per image
(--json: one JSON object per line). Folders are read recursively; files in them
that are no image at all (a README) are left out.

--run uses the run's best checkpoint. --model is an exported serving SavedModel
(saved_model.pb and assets/labels.txt; in a TF Serving layout DIR/1/, DIR/2/...
the newest version), or a model folder's serving/. Models are programs: a
--model that xcept did not export, or whose graph holds an op xcept's models
do not need (a file, process or Python op), is refused unless
--allow-untrusted-model.

The model decodes each file's own bytes, as TF Serving and Python do, so the
probabilities are theirs. Files TensorFlow would read differently from prepare
(an EXIF orientation, animations, GIF, BMP, WebP, TIFF) are first decoded by xcept,
upright, and passed on losslessly as PNG.

--reject answers "unknown" for an image whose calibrated top probability p is
below the "unknown" threshold chosen on the validation split (run.json's
calibration.reject for --run, the export's manifest for --model), compared as
log-odds, log(p / the sum of the other probabilities), which still ranks
images whose p rounds to 1: its line reads "FILE: unknown (log-odds S <
threshold T): CLASS P, ..." and its JSON object has "unknown": true (false for
the others). A model without a threshold is exit 5.

A file that cannot be read is reported on its own line (or JSON object) and the
others are still predicted.
Exit codes: 0 every image predicted, 2 bad flags, 4 a file could not be read
or a path does not exist, 5 the model failed, 130 interrupted.`,
		Example: `  xcept predict --run runs/flowers photo.jpg more-photos/
  xcept predict --model export/serving --top-k 3 --json photo.jpg
  xcept predict --run runs/flowers --reject photo.jpg`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Paths, o.Output = args, g.Output
			var err error
			if o.Engine, o.Limits, err = inferConfig(g, cmd.Flags()); err != nil {
				return err
			}
			if err := o.validate(); err != nil {
				return err
			}
			return runPredict(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Run, "run", "", "run folder (runs/NAME): predict with its best checkpoint")
	f.StringVar(&o.Model, "model", "", "exported serving SavedModel folder (or a TF Serving folder of versions)")
	f.IntVar(&o.TopK, "top-k", 5, "classes to print per image, most probable first")
	f.IntVar(&o.Batch, "batch", 32, "images per model call")
	f.BoolVar(&o.Reject, "reject", false, "answer \"unknown\" below the model's calibrated threshold (chosen on the validation split to accept 95% of its images)")
	f.BoolVar(&o.AllowUntrusted, "allow-untrusted-model", false, "run a --model that xcept did not export or whose graph holds ops inference does not need (models are programs: only one you trust)")
	addDeviceFlag(f)
	engineFlag(f)
	return cmd
}

// engineFlag adds --engine, bound to runtime.engine by inferConfig.
func engineFlag(f *pflag.FlagSet) {
	f.String("engine", "", "tensorflow | onnxruntime | auto: the engine that runs the model (runtime.engine; default tensorflow)")
}

// inferConfig reads what inference takes from the layered configuration:
// the runtime section (the engine, from --engine where the command has it,
// and TensorFlow's session options) and prepare's input limits.
func inferConfig(g *Globals, flags *pflag.FlagSet) (infer.EngineOptions, infer.Limits, error) {
	bind := map[string]string{"runtime.device": deviceFlag}
	if flags.Lookup("engine") != nil {
		bind["runtime.engine"] = "engine"
	}
	v, err := g.Config(flags, bind)
	if err != nil {
		return infer.EngineOptions{}, infer.Limits{}, err
	}
	lim := infer.Limits{MaxFileBytes: v.GetInt64("prepare.max_file_mb") << 20}
	lim.MaxPixels = v.GetInt64("prepare.max_pixels")
	eo, err := engineConfig(v)
	if err != nil {
		return eo, lim, err
	}
	if flags.Lookup("engine") == nil {
		eo.Engine = infer.EngineTensorFlow // Grad-CAM and training run on TensorFlow only
	}
	if !g.Quiet {
		eo.Progress = g.Stderr
	}
	return eo, lim, nil
}

// engineConfig reads the runtime section's engine settings: runtime.engine,
// onnxruntime's spinning and execution providers, and the session options
// both engines share.
func engineConfig(v *viper.Viper) (infer.EngineOptions, error) {
	eo := infer.EngineOptions{Engine: v.GetString("runtime.engine"), Spin: v.GetBool("runtime.onnxruntime_spin")}
	var err error
	if eo.Session, err = sessionOptions(v); err != nil {
		return eo, err
	}
	if eo.Providers, err = infer.ParseProviders(v.GetString("runtime.onnxruntime_providers")); err != nil {
		return eo, err
	}
	return eo, infer.ValidEngine(eo.Engine)
}

func (o *PredictOptions) validate() error {
	switch {
	case (o.Run == "") == (o.Model == ""):
		return cli.Usagef("give one of --run runs/NAME or --model DIR")
	case len(o.Paths) == 0:
		return cli.Usagef("no images: give image files or folders after the flags")
	case o.TopK < 1:
		return cli.Usagef("--top-k %d: want 1 or more", o.TopK)
	case o.Batch < 1:
		return cli.Usagef("--batch %d: want 1 or more", o.Batch)
	}
	return nil
}

// openServing opens what --run or --model names for encoded images.
func openServing(ctx context.Context, run, modelDir string, opts infer.EngineOptions, allowUntrusted bool) (*infer.Serving, func(), error) {
	if modelDir != "" {
		switch opts.Engine {
		case infer.EngineONNXRuntime:
			return nil, nil, cli.Usagef("runtime.engine (--engine) onnxruntime runs a run's checkpoint (--run); a --model SavedModel runs on tensorflow or auto")
		case infer.EngineAuto:
			opts.Say("engine: tensorflow (runtime.engine auto: --model is a SavedModel, run on TensorFlow; --run converts checkpoints for onnxruntime)")
		}
		s, err := infer.OpenSavedModel(modelDir, opts.Session, allowUntrusted)
		if err != nil {
			return nil, nil, err
		}
		return s, func() { s.Close() }, nil
	}
	r, err := runs.Open(run)
	if err != nil {
		return nil, nil, err
	}
	s, err := infer.OpenRunServing(ctx, r, opts)
	if err != nil {
		return nil, nil, err
	}
	return s, func() { s.Close() }, nil
}

// predictLine is one image in --json output.
type predictLine struct {
	File      string           `json:"file"`
	Top       []infer.Class    `json:"top,omitempty"`
	Converted string           `json:"converted,omitempty"`
	Error     *infer.FileError `json:"error,omitempty"`
	// Unknown (with --reject): the top probability is below Threshold.
	Unknown *bool  `json:"unknown,omitempty"`
	why     string // with --reject, for the text line: the score against the threshold
}

func runPredict(ctx context.Context, o *PredictOptions) error {
	if _, err := device.Check(o.Engine.Session); err != nil { // the runtime.device guard
		return err
	}
	s, done, err := openServing(ctx, o.Run, o.Model, o.Engine, o.AllowUntrusted)
	if err != nil {
		return err
	}
	defer done()
	var reject *calibrate.Rejection
	if o.Reject {
		if reject, err = s.Rejection(); err != nil {
			return err
		}
		o.Notef("answering \"unknown\" below %s (accepts %.0f%% of the validation images)", reject.Describe(), 100*reject.Accept)
	}
	inputs := infer.ExpandPaths(o.Paths)
	var total, failed int
	err = s.PredictFiles(ctx, inputs, o.Batch, o.Limits, func(p infer.Prediction) error {
		total++
		line := predictLine{File: p.Path, Converted: p.Converted, Error: p.Err}
		if p.Err != nil {
			failed++
		} else {
			line.Top = infer.Top(p.Probs, s.Classes, o.TopK)
			if reject != nil {
				unknown := reject.Unknown(p.Probs)
				line.Unknown = &unknown
				line.why = fmt.Sprintf("%s < threshold %.4g", reject.Says(p.Probs), reject.Threshold)
			}
		}
		if o.JSON {
			return o.Line(line)
		}
		_, err := io.WriteString(o.Stdout, predictText(line))
		return err
	})
	switch {
	case err != nil:
		return err
	case total == 0:
		return cli.Dataf("no images in %s", strings.Join(o.Paths, ", "))
	case failed > 0:
		return cli.Dataf("%d of %d images could not be read (listed with their reasons above)", failed, total)
	}
	return nil
}

// predictText is one image's line: its path, then classes with probabilities.
func predictText(l predictLine) string {
	if l.Error != nil {
		return fmt.Sprintf("%s: error: %s (%s)\n", l.File, l.Error.Reason, l.Error.Detail)
	}
	parts := make([]string, len(l.Top))
	for i, c := range l.Top {
		parts[i] = fmt.Sprintf("%s %.4f", c.Name, c.Probability)
	}
	if l.Unknown != nil && *l.Unknown {
		return fmt.Sprintf("%s: unknown (%s): %s\n", l.File, l.why, strings.Join(parts, ", "))
	}
	return l.File + ": " + strings.Join(parts, ", ") + "\n"
}
