// Package evaluate is `xcept evaluate`: it scores a run's best checkpoint on
// a split or a labelled folder, or a predictions file, writes the reports
// (report.Write) and prints the summary. The command only turns flags into
// Options.
package evaluate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/device"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/infer"
	"github.com/xcept/xcept/internal/metrics"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/report"
	"github.com/xcept/xcept/internal/run"
)

// The options that errors name (the command layer names their flags).
const (
	optRun         fault.Option = "run"
	optPredictions fault.Option = "predictions"
	optLabels      fault.Option = "labels"
	optSplit       fault.Option = "split"
	optOOD         fault.Option = "ood"
	optTTA         fault.Option = "tta"
	optTopK        fault.Option = "top-k"
	optBatch       fault.Option = "batch"
	optOut         fault.Option = "out"
)

// Options is everything an evaluation needs. Validate checks them.
type Options struct {
	cli.Output                 // where and how it prints: text, JSON Lines or quiet
	Predictions string         // predictions file: true,pred[,file][,probabilities]
	Labels      string         // labels.txt: class names in index order
	Run         string         // or a run folder, evaluated with its best checkpoint
	Split       string         // with Run: test, val, train, or a folder with one sub-folder per class
	Batch       int            // with Run: images per model call
	History     string         // optional training history.csv for the curves; "" with Run: the run's
	Out         string         // report folder; "" with Run: the run folder
	TopK        int            // k of top-k accuracy
	Gates       []metrics.Gate // CI gates
	Engine      infer.EngineOptions
	Limits      infer.Limits
	OOD         string // with Run: a folder of images of none of the classes (AUROC, share accepted at the threshold)
	TTA         bool   // with Run: also score the mean of each image's and its mirror image's predictions
}

// Validate checks option combinations, naming the option at fault
// (fault.Option: the command layer names its flag), and fills
// the defaults that need no file read.
func (o *Options) Validate() error {
	if o.Run != "" {
		return o.validateRun()
	}
	if o.Predictions == "" {
		return fault.New(fault.BadValue, "%s runs/NAME or %s FILE is required (see --help)", optRun, optPredictions)
	}
	if o.Labels == "" {
		return fault.New(fault.BadValue, "%s labels.txt is required with %s: it gives the classes and their order", optLabels, optPredictions)
	}
	switch {
	case o.OOD != "":
		return fault.New(fault.BadValue, "%s needs %s: it predicts the folder with the run's model", optOOD, optRun)
	case o.TTA:
		return fault.New(fault.BadValue, "%s needs %s: it predicts mirrored images with the run's model", optTTA, optRun)
	}
	if o.TopK < 1 {
		return fault.New(fault.BadValue, "%s %d: want 1 or more", optTopK, o.TopK)
	}
	if o.Out == "" {
		base := strings.TrimSuffix(filepath.Base(o.Predictions), filepath.Ext(o.Predictions))
		o.Out = filepath.Join(filepath.Dir(o.Predictions), base+"-report")
	}
	if sameFile(o.Predictions, filepath.Join(o.Out, report.FilePredictions)) {
		return fault.New(fault.BadValue, "%s %s would overwrite the input %s: choose another %s", optOut, o.Out, o.Predictions, optOut)
	}
	return nil
}

func (o *Options) validateRun() error {
	switch {
	case o.Predictions != "":
		return fault.New(fault.BadValue, "%s and %s exclude each other: evaluate a run's model, or a predictions file", optRun, optPredictions)
	case o.Labels != "":
		return fault.New(fault.BadValue, "%s is for %s: a run knows its classes", optLabels, optPredictions)
	case o.TopK < 1:
		return fault.New(fault.BadValue, "%s %d: want 1 or more", optTopK, o.TopK)
	case o.Batch < 1:
		return fault.New(fault.BadValue, "%s %d: want 1 or more", optBatch, o.Batch)
	case o.Split == "":
		return fault.New(fault.BadValue, "%s is empty: give test, val, train or a folder", optSplit)
	}
	for _, g := range o.Gates {
		if g.Metric == metrics.GateOODAUROC && o.OOD == "" {
			return fault.New(fault.BadValue, "%s needs %s DIR: a folder of images of none of the classes", g, optOOD)
		}
	}
	if o.OOD != "" {
		if st, err := os.Stat(o.OOD); err != nil || !st.IsDir() {
			return fault.New(fault.BadData, "%s %s: no such folder (want a folder of images of none of the classes)", optOOD, o.OOD)
		}
	}
	return nil
}

// sameFile reports whether two paths name one existing file.
func sameFile(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

// Result is what an evaluation printed as --json: the report's summary and,
// with a run, where the model ran.
type Result struct {
	*report.Summary
	Device *device.Placement `json:"device,omitempty"` // with --run: where the model ran
}

// Run evaluates what the options name, writes the reports and prints the
// summary. A failed gate is an error after everything was written and
// printed; the result is returned whenever the reports were written.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Run != "" {
		return runModel(ctx, o)
	}
	return runPredictions(o)
}

// runPredictions reads the labels and predictions and writes the reports.
func runPredictions(o Options) (*Result, error) {
	labels, err := metrics.ReadLabels(o.Labels)
	if err != nil {
		return nil, err
	}
	if err := metrics.CheckClasses(o.Gates, labels.Names); err != nil {
		return nil, fault.New(fault.BadValue, "%v in %s", err, o.Labels)
	}
	rows, err := metrics.ReadPredictions(o.Predictions, labels)
	if err != nil {
		return nil, err
	}
	sum, err := report.Write(report.Input{
		Classes:     labels.Names,
		Rows:        rows,
		HistoryPath: o.History,
		OutDir:      o.Out,
		Gates:       o.Gates,
		TopK:        o.TopK,
		Source:      fmt.Sprintf("predictions %s, labels %s", o.Predictions, o.Labels),
		FileBase:    filepath.Dir(o.Predictions),
	})
	return finish(o, &Result{Summary: sum}, err)
}

// finish prints a written report's summary; err is report.Write's (a
// failed gate among them), returned after the summary is printed.
func finish(o Options, res *Result, err error) (*Result, error) {
	if res.Summary == nil {
		return nil, err
	}
	if perr := res.print(o.Output); perr != nil {
		return res, perr
	}
	return res, err
}

// runModel predicts a split (or a labelled folder) with the run's best
// checkpoint and writes the reports.
func runModel(ctx context.Context, o Options) (*Result, error) {
	place, err := device.Check(o.Engine.Session)
	if err != nil {
		return nil, err
	}
	r, err := run.Open(o.Run)
	if err != nil {
		return nil, err
	}
	if o.Out == "" || run.Inside(r.Dir, o.Out) {
		lock, err := run.Acquire(r.Dir, "evaluate")
		if err != nil {
			return nil, err
		}
		defer lock.Release()
	}
	info, err := model.ReadInfo(r.Info.Model)
	if err != nil {
		return nil, err
	}
	if err := contract.CheckFit(info.Fit(), contract.Fit{Name: "run.json of " + r.Dir, Classes: r.Info.Classes, Arch: r.Info.Arch}, infer.Refit); err != nil {
		return nil, err
	}
	if err := metrics.CheckClasses(o.Gates, info.Classes); err != nil {
		return nil, fault.New(fault.BadValue, "%v of the model", err)
	}
	src, err := newSource(r, info, o)
	if err != nil {
		return nil, err
	}
	m, err := infer.OpenPixels(ctx, r, o.Engine)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	place.Use(info.Precision)
	place.Announce(o.Stderr, o.Quiet)
	var reject *calibrate.Rejection
	if o.OOD != "" {
		if reject = infer.RunRejection(r, info); reject == nil {
			return nil, fault.New(fault.NotAModel, "%s: run %s has no \"unknown\" threshold (calibration.reject in run.json): train or finetune it with a model that holds a temperature (prepare rebuilds the model)", optOOD, r.Dir)
		}
	}
	m.TTA = o.TTA
	ev, err := src.predict(ctx, m)
	if err != nil {
		return nil, err
	}
	if len(ev.Rows) == 0 {
		return nil, fault.New(fault.BadData, "%s: no image could be evaluated", src.name)
	}
	var tta *calibrate.TTA
	if o.TTA {
		if tta, err = infer.MeasureTTA(ev, len(info.Classes)); err != nil {
			return nil, err
		}
	}
	var ood *calibrate.OOD
	if o.OOD != "" {
		if ood, err = src.measureOOD(ctx, m, ev, reject); err != nil {
			return nil, err
		}
	}
	gallery, err := src.gallery(info.Classes, ev)
	if err != nil {
		return nil, err
	}
	if o.History == "" {
		if _, err := os.Stat(r.Path(run.HistoryFile)); err == nil {
			o.History = r.Path(run.HistoryFile)
		}
	}
	if o.Out == "" {
		o.Out = r.Dir
	}
	sum, err := report.Write(report.Input{
		Classes:     info.Classes,
		Rows:        ev.Rows,
		HistoryPath: o.History,
		OutDir:      o.Out,
		Gates:       o.Gates,
		TopK:        o.TopK,
		Source:      fmt.Sprintf("run %s, best checkpoint%s, on %s", r.Dir, bestEpoch(r), src.name),
		Gallery:     gallery,
		Temperature: temperature(r, info),
		Fit:         r.Info.Calibration,
		OOD:         ood,
		TTA:         tta,
	})
	return finish(o, &Result{Summary: sum, Device: place}, err)
}

// temperature is the one the run's best checkpoint holds (0: none).
func temperature(r *run.Run, info *model.Info) float64 {
	if r.Info.Calibration == nil || !info.Calibratable() {
		return 0
	}
	return r.Info.Calibration.Temperature
}

// bestEpoch says which epoch the best checkpoint is from, when it is known.
func bestEpoch(r *run.Run) string {
	var st struct {
		BestEpoch int `json:"best_epoch"`
	}
	if err := r.LoadState(run.Best, &st); err == nil && st.BestEpoch > 0 {
		return fmt.Sprintf(" (epoch %d)", st.BestEpoch)
	}
	return ""
}
