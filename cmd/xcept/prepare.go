package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/model"
)

func init() { verbs = append(verbs, NewPrepareCmd) }

// buildModel builds the trainer/serving model of spec into dir (progress to
// stderr, nil for none). Tests replace it; nil makes prepare fail with a
// clear model error unless --no-model.
var buildModel = func(ctx context.Context, dir string, spec model.Spec, stderr io.Writer) error {
	_, err := model.Build(ctx, dir, spec, true, stderr)
	return err
}

// PrepareOptions is everything `xcept prepare` needs; runPrepare sees only this.
type PrepareOptions struct {
	cli.Output // where and how it prints: text, JSON Lines or quiet
	Dataset    dataset.Options
	Model      model.Spec // Classes is filled in once the dataset is known
	NoModel    bool
	Strict     bool
	Progress   bool // draw a progress bar on Stderr
}

// prepareKeys binds configuration keys to prepare's flags.
var prepareKeys = map[string]string{
	"seed":                         "seed",
	"model.arch":                   "arch",
	"model.image_size":             "image-size",
	"model.weights":                "weights",
	"model.precision":              "precision",
	"model.feature_blocks":         "feature-blocks",
	"prepare.split":                "split",
	"prepare.resize":               "resize",
	"prepare.format":               "image-format",
	"prepare.jpeg_quality":         "quality",
	"prepare.workers":              "workers",
	"prepare.follow_outside_links": "follow-outside-links",
}

// NewPrepareCmd builds `xcept prepare`.
func NewPrepareCmd(g *Globals) *cobra.Command {
	var o PrepareOptions
	cmd := &cobra.Command{
		Use:   "prepare --data DIR --out DIR",
		Short: "Audit an image folder, split it reproducibly, write TFRecords and build the model",
		Long: `prepare reads every image under --data (one sub-folder per class, or train/, val/
and test/ folders holding the class folders), decodes it fully, fixes what can be
fixed (EXIF orientation, CMYK, 16-bit, palette, transparency over white, animated
GIFs' first frame), reports what cannot in OUT/problems.json, and writes resized
TFRecord shards, labels.txt and manifest.json to --out. The originals are never
modified. Splits are drawn per class from a seeded hash of each file's content, so
adding images never moves existing ones. Then the model for the classes is built
into OUT/model (skip with --no-model).

Exit codes: 0 done, 2 bad flags, 3 --strict and problems were found (the dataset
is still written), 4 unusable data, 5 the model build failed, 130 interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.fromConfig(g, cmd.Flags()); err != nil {
				return err
			}
			return runPrepare(cmd.Context(), o)
		},
	}
	addPrepareFlags(cmd.Flags(), &o)
	return cmd
}

// addPrepareFlags declares prepare's flags on f.
func addPrepareFlags(f *pflag.FlagSet, o *PrepareOptions) {
	f.StringVar(&o.Dataset.Data, "data", "", "folder of images, one sub-folder per class (required)")
	f.StringVar(&o.Dataset.Out, "out", "", "folder to write the dataset to; replaced only if it is an xcept dataset (required)")
	addArchFlag(f)
	f.Int("image-size", 0, "side of the stored square images and of the model input; default: the architecture's (model.image_size)")
	f.String("split", "", "train,val,test shares, e.g. 0.8,0.1,0.1 (prepare.split)")
	f.Int64("seed", 0, "seed of the split and the record order (seed)")
	f.String("resize", "", "squash | center-crop | pad (prepare.resize)")
	f.String("image-format", "", "jpeg | png: how images are stored in the records (prepare.format)")
	f.Int("quality", 0, "JPEG quality 1-100 (prepare.jpeg_quality)")
	f.Int("workers", 0, "decoding goroutines, 0 for every core (prepare.workers)")
	f.Bool("follow-outside-links", false, "follow symbolic links that lead outside --data (prepare.follow_outside_links); by default they are reported and skipped")
	f.String("weights", "", "imagenet | none | FILE.h5: the architecture's base weights (model.weights)")
	f.String("precision", "", "float32 | mixed_bfloat16 | mixed_float16 (model.precision)")
	f.String("feature-blocks", "", "auto (train chooses on the validation split) or taps of the architecture, shallowest first, whose pooled outputs the head reads, e.g. block14 for Xception (model.feature_blocks)")
	f.BoolVar(&o.NoModel, "no-model", false, "write the dataset only; do not build the model")
	f.BoolVar(&o.Strict, "strict", false, "exit with code 3 if any problem was found (for CI); the dataset is still written")
}

// prepareOptionsFor resolves prepare's options for data and out from the
// configuration alone (for train, which prepares raw image folders itself).
func prepareOptionsFor(g *Globals, data, out string) (PrepareOptions, error) {
	var o PrepareOptions
	f := pflag.NewFlagSet("prepare", pflag.ContinueOnError)
	addPrepareFlags(f, &o)
	o.Dataset.Data, o.Dataset.Out = data, out
	return o, o.fromConfig(g, f)
}

// fromConfig fills the options from the layered configuration and validates
// the values that are not the dataset package's to check.
func (o *PrepareOptions) fromConfig(g *Globals, flags *pflag.FlagSet) error {
	v, err := g.Config(flags, prepareKeys)
	if err != nil {
		return err
	}
	d := &o.Dataset
	d.ImageSize = v.GetInt("model.image_size")
	d.Seed = v.GetInt64("seed")
	if d.Fractions, err = dataset.ParseFractions(v.GetString("prepare.split")); err != nil {
		return cli.Usagef("--split %v", err)
	}
	d.Fit = imageio.Fit(v.GetString("prepare.resize"))
	d.Format = imageio.Format(strings.ToLower(v.GetString("prepare.format")))
	d.Quality = v.GetInt("prepare.jpeg_quality")
	if d.ShardBytes = v.GetInt64("prepare.shard_mb") << 20; d.ShardBytes < 1 {
		return cli.Usagef("prepare.shard_mb %d: choose at least 1", v.GetInt64("prepare.shard_mb"))
	}
	d.MaxPixels = v.GetInt64("prepare.max_pixels")
	d.MaxFileBytes = v.GetInt64("prepare.max_file_mb") << 20
	d.MinSide = v.GetInt("prepare.min_side")
	d.FollowOutsideLinks = v.GetBool("prepare.follow_outside_links")
	if d.Workers = v.GetInt("prepare.workers"); d.Workers == 0 {
		d.Workers = runtime.NumCPU()
	} else if d.Workers < 0 {
		return cli.Usagef("--workers %d: choose 0 (every core) or more", d.Workers)
	}
	o.Model = modelSpec(v, nil)
	d.ImageSize = o.Model.ImageSize // the architecture's when model.image_size is 0
	if _, err := model.LookupArch(o.Model.Arch); err != nil {
		return err
	}
	if !o.NoModel {
		if err := o.Model.ValidateOptions(); err != nil {
			return err
		}
	}
	o.Output = g.Output
	o.Progress = o.Bar()
	return nil
}

// prepareSummary is the --json output: the dataset summary and the model folder.
type prepareSummary struct {
	dataset.Summary
	Model string `json:"model,omitempty"`
}

func runPrepare(ctx context.Context, o PrepareOptions) error {
	if !o.NoModel && buildModel == nil {
		return cli.Modelf("this xcept binary has no model builder: run prepare with --no-model")
	}
	if o.Progress {
		o.Dataset.Progress = &barProgress{w: o.Stderr}
	}
	if !o.NoModel {
		// The model is built inside the dataset's work folder, so the
		// dataset is published with model/ complete or not at all.
		o.Dataset.Finish = func(ctx context.Context, dir string, classes []string) error {
			spec := o.Model
			spec.Classes = classes
			err := buildModel(ctx, filepath.Join(dir, dataset.ModelDir), spec, o.Output.Progress())
			if err != nil && cli.KindOf(err) == cli.KindInternal && ctx.Err() == nil {
				err = cli.Modelf("building the model for %s: %v", o.Dataset.Out, err)
			}
			return err
		}
	}
	rep, err := dataset.Prepare(ctx, o.Dataset)
	if rep != nil && o.Chatty() {
		rep.WriteText(o.Stderr)
	}
	if err != nil {
		if rep != nil && o.JSON {
			if jerr := o.Result(prepareSummary{Summary: rep.Summary()}, nil); jerr != nil {
				return jerr
			}
		}
		return err
	}
	summary := prepareSummary{Summary: rep.Summary()}
	if !o.NoModel {
		summary.Model = filepath.Join(rep.Out, dataset.ModelDir)
	}
	if err := o.Result(summary, nil); err != nil {
		return err
	}
	if o.Strict && len(rep.Problems) > 0 {
		return cli.Gatef("--strict: %s found (see %s)", dataset.Plural(len(rep.Problems), "problem"), filepath.Join(rep.Out, dataset.ProblemsFile))
	}
	return nil
}

// barProgress draws dataset.Progress as a progress bar.
type barProgress struct {
	w   io.Writer
	bar *progressbar.ProgressBar
}

func (p *barProgress) Start(phase string, total int) {
	p.bar = progressbar.NewOptions(total,
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription(fmt.Sprintf("%-9s", phase)),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("img"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(true), // show the bar before the first image is done
	)
}

func (p *barProgress) Add(n int) { p.bar.Add(n) }
func (p *barProgress) Finish()   { p.bar.Finish() }
