package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/device"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/infer"
	"github.com/xcept/xcept/internal/loader"
	"github.com/xcept/xcept/internal/metrics"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/report"
	runs "github.com/xcept/xcept/internal/run"
)

func init() { verbs = append(verbs, NewEvaluateCmd) }

// EvaluateOptions is everything `xcept evaluate` needs, already validated.
type EvaluateOptions struct {
	cli.Output                 // where and how it prints: text, JSON Lines or quiet
	Predictions string         // predictions file: true,pred[,file][,probabilities]
	Labels      string         // labels.txt: class names in index order
	Run         string         // or a run folder, evaluated with its best checkpoint
	Split       string         // with Run: test, val, train, or a folder with one sub-folder per class
	Batch       int            // with Run: images per model call
	History     string         // optional training history.csv for the curves
	Out         string         // report folder
	TopK        int            // k of top-k accuracy
	Gates       []metrics.Gate // CI gates
	Engine      infer.EngineOptions
	placement   *device.Placement // with --run: where the model runs (device.Check)
	Limits      infer.Limits
}

// NewEvaluateCmd builds `xcept evaluate`.
func NewEvaluateCmd(g *Globals) *cobra.Command {
	var (
		opts        EvaluateOptions
		minAccuracy float64
		minRecall   []string
		maxECE      float64
	)
	cmd := &cobra.Command{
		Use:   "evaluate (--run runs/NAME [--split test|val|DIR] | --predictions FILE --labels labels.txt) [gates]",
		Short: "Report accuracy, per-class scores and the confusion matrix; gate CI on them",
		Long: `evaluate writes predictions.csv, report.txt (scikit-learn's classification_report
layout), report.json, confusion.csv, confusion.png and one self-contained
report.html (with the training curves and a gallery of the worst mistakes).

--run evaluates a run's best checkpoint on --split: the prepared dataset's test
split (the default), val or train, read in order with no augmentation, or a
folder with one sub-folder per class, whose images are decoded and resized as
prepare did (unreadable ones are left out, each named on stderr). The reports
go to the run folder unless --out says otherwise. A
model whose classes differ from the data's (a class folder the model does not
know) is a data error (exit 4).

--predictions reads a CSV with columns "true" and "pred" (class names or
indices of labels.txt), optionally "file" and one probability column per class
("prob:CLASS" or the bare class name), such as the predictions.csv evaluate
itself writes. No model is needed.

report.html and --json also give the calibration: the expected calibration
error (ECE, 15 equal-width bins) and negative log-likelihood of the
probabilities, and for a run whose model holds a temperature (fitted by train
and finetune on the validation split) the same figures uncalibrated (T = 1),
with a reliability diagram (reliability.png).

Gates make CI fail on a bad model: every report is still written, then the
command exits with code 3 and one line naming each failed gate and by how much.
Exit codes: 0 done and every gate passed, 2 bad flags, 3 a gate failed, 4 a
missing or unusable path, file or dataset, or classes that do not match the
model's, 5 the model failed, 6 another process is writing the run (reports into
the run folder need its lock), 130 interrupted.`,
		Example: `  xcept evaluate --run runs/flowers --min-accuracy 0.9 --min-recall 0.8
  xcept evaluate --run runs/flowers --max-ece 0.05
  xcept evaluate --run runs/flowers --split new-photos/ --out eval-new
  xcept evaluate --predictions preds.csv --labels ds/labels.txt --out eval
  xcept evaluate --predictions preds.csv --labels labels.txt --min-accuracy 0.9 --min-recall 0.8 --min-recall cat=0.95 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Output = g.Output
			if cmd.Flags().Changed("min-accuracy") {
				gate, err := metrics.MinAccuracy(minAccuracy)
				if err != nil {
					return cli.Usagef("%v", err)
				}
				opts.Gates = append(opts.Gates, gate)
			}
			if cmd.Flags().Changed("max-ece") {
				gate, err := metrics.MaxECE(maxECE)
				if err != nil {
					return cli.Usagef("%v", err)
				}
				opts.Gates = append(opts.Gates, gate)
			}
			for _, v := range minRecall {
				gate, err := metrics.ParseMinRecall(v)
				if err != nil {
					return cli.Usagef("%v", err)
				}
				opts.Gates = append(opts.Gates, gate)
			}
			if err := validateEvaluate(&opts); err != nil {
				return err
			}
			if opts.Run != "" {
				var err error
				if opts.Engine, opts.Limits, err = inferConfig(g, cmd.Flags()); err != nil {
					return err
				}
				err = runEvaluateModel(cmd.Context(), opts)
				g.trackAfter(cmd.Context(), opts.Run, opts.Out)
				return err
			}
			return runEvaluate(opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Predictions, "predictions", "", "predictions CSV to evaluate (columns true,pred by class name or index)")
	f.StringVar(&opts.Labels, "labels", "", "labels.txt: one class name per line, in index order")
	f.StringVar(&opts.Run, "run", "", "run folder (runs/NAME): evaluate its best checkpoint")
	f.StringVar(&opts.Split, "split", "test", "with --run: test, val, train, or a folder with one sub-folder per class")
	f.IntVar(&opts.Batch, "batch", 32, "with --run: images per model call")
	engineFlag(f)
	f.Bool("confusion", true, "accepted for compatibility: the confusion matrix (confusion.csv, confusion.png) is always written")
	f.StringVar(&opts.History, "history", "", "training history.csv to draw the training curves from (default with --run: the run's)")
	f.StringVar(&opts.Out, "out", "", "report folder (default: the run folder, or NAME-report beside the predictions file NAME.csv)")
	addDeviceFlag(f)
	f.IntVar(&opts.TopK, "top-k", 5, "k of the top-k accuracy (needs probability columns)")
	f.Float64Var(&minAccuracy, "min-accuracy", 0, "gate: fail (exit 3) when accuracy is below this fraction")
	f.Float64Var(&maxECE, "max-ece", 0, "gate: fail (exit 3) when the expected calibration error (15 bins) of the probabilities is above this fraction")
	f.StringArrayVar(&minRecall, "min-recall", nil, "gate: fail when the recall of every class (X) or of one class (CLASS=X) is below X; repeatable")
	return cmd
}

// validateEvaluate checks flag combinations and fills defaults.
func validateEvaluate(o *EvaluateOptions) error {
	if o.Run != "" {
		return validateEvaluateRun(o)
	}
	if o.Predictions == "" {
		return cli.Usagef("--run runs/NAME or --predictions FILE is required (see --help)")
	}
	if o.Labels == "" {
		return cli.Usagef("--labels labels.txt is required with --predictions: it gives the classes and their order")
	}
	if o.TopK < 1 {
		return cli.Usagef("--top-k %d: want 1 or more", o.TopK)
	}
	if o.Out == "" {
		base := strings.TrimSuffix(filepath.Base(o.Predictions), filepath.Ext(o.Predictions))
		o.Out = filepath.Join(filepath.Dir(o.Predictions), base+"-report")
	}
	if sameFile(o.Predictions, filepath.Join(o.Out, report.FilePredictions)) {
		return cli.Usagef("--out %s would overwrite the input %s: choose another --out", o.Out, o.Predictions)
	}
	return nil
}

// sameFile reports whether two paths name one existing file.
func sameFile(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

// runEvaluate reads the labels and predictions and writes the reports.
func runEvaluate(o EvaluateOptions) error {
	labels, err := metrics.ReadLabels(o.Labels)
	if err != nil {
		return err
	}
	if err := metrics.CheckClasses(o.Gates, labels.Names); err != nil {
		return cli.Usagef("%v in %s", err, o.Labels)
	}
	rows, err := metrics.ReadPredictions(o.Predictions, labels)
	if err != nil {
		return err
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
	if sum != nil {
		if perr := printSummary(o, sum); perr != nil {
			return perr
		}
	}
	return err
}

// printSummary writes the summary as JSON, or for people as the text
// report, the top-k figures, the gates and where report.html is.
func printSummary(o EvaluateOptions, s *report.Summary) error {
	if o.JSON {
		return o.Result(struct {
			*report.Summary
			Device *device.Placement `json:"device,omitempty"` // with --run: where the model ran
		}{s, o.placement}, nil)
	}
	var b strings.Builder
	b.WriteString(s.Report.Text(2))
	switch {
	case s.TopK != nil:
		fmt.Fprintf(&b, "\ntop-1 accuracy %.4f, top-%d accuracy %.4f (from the probabilities)\n", *s.Top1, s.K, *s.TopK)
	case s.Top1 != nil:
		fmt.Fprintf(&b, "\ntop-1 accuracy %.4f (from the probabilities)\n", *s.Top1)
	}
	if c := s.Calibration; c != nil {
		fmt.Fprintf(&b, "\ncalibration (%d bins): ECE %.4f, NLL %.4f", c.Bins, c.Evaluated.ECE, c.Evaluated.NLL)
		if u := c.Uncalibrated; u != nil {
			fmt.Fprintf(&b, " at temperature %.3f (uncalibrated: ECE %.4f, NLL %.4f)", c.Temperature, u.ECE, u.NLL)
		}
		b.WriteString("\n")
	}
	if len(s.MostConfused) > 0 {
		b.WriteString("\nmost confused (true -> predicted):\n")
		for _, p := range s.MostConfused[:min(5, len(s.MostConfused))] {
			fmt.Fprintf(&b, "  %s -> %s: %d (%.1f%% of %s)\n", p.True, p.Pred, p.Count, p.Rate*100, p.True)
		}
	}
	if len(s.Gates) > 0 {
		b.WriteString("\n")
		for _, g := range s.Gates {
			result := "pass"
			if !g.Passed {
				result = "FAIL"
			}
			fmt.Fprintf(&b, "gate %s: %s %s\n", result, g.Gate, gateSubject(g))
		}
	}
	fmt.Fprintf(&b, "\nreport: %s\n", s.Files[report.FileReportHTML])
	_, err := io.WriteString(o.Stdout, b.String())
	return err
}

func gateSubject(g metrics.GateResult) string {
	what := g.Metric
	if g.Class != "" {
		what = "recall of " + g.Class
	}
	if g.Note != "" {
		return fmt.Sprintf("(%s: %s)", what, g.Note)
	}
	return fmt.Sprintf("(%s %.4f)", what, g.Value)
}

// Named splits of a prepared dataset that --split accepts.
var namedSplits = []string{dataset.Test, dataset.Val, dataset.Train}

func validateEvaluateRun(o *EvaluateOptions) error {
	switch {
	case o.Predictions != "":
		return cli.Usagef("--run and --predictions exclude each other: evaluate a run's model, or a predictions file")
	case o.Labels != "":
		return cli.Usagef("--labels is for --predictions: a run knows its classes")
	case o.TopK < 1:
		return cli.Usagef("--top-k %d: want 1 or more", o.TopK)
	case o.Batch < 1:
		return cli.Usagef("--batch %d: want 1 or more", o.Batch)
	case o.Split == "":
		return cli.Usagef("--split is empty: give test, val, train or a folder")
	}
	return nil
}

// runEvaluateModel predicts a split (or a labelled folder) with the run's
// best checkpoint and writes the reports.
func runEvaluateModel(ctx context.Context, o EvaluateOptions) error {
	var err error
	if o.placement, err = device.Check(o.Engine.Session); err != nil {
		return err
	}
	r, err := runs.Open(o.Run)
	if err != nil {
		return err
	}
	if o.Out == "" || runs.Inside(r.Dir, o.Out) {
		lock, err := runs.Acquire(r.Dir, "evaluate")
		if err != nil {
			return err
		}
		defer lock.Release()
	}
	info, err := model.ReadInfo(r.Info.Model)
	if err != nil {
		return err
	}
	if err := contract.CheckFit(info.Fit(), contract.Fit{Name: "run.json of " + r.Dir, Classes: r.Info.Classes}, infer.Refit); err != nil {
		return err
	}
	if err := metrics.CheckClasses(o.Gates, info.Classes); err != nil {
		return cli.Usagef("%v of the model", err)
	}
	src, err := evaluationSource(r, info, o)
	if err != nil {
		return err
	}
	m, err := infer.OpenPixels(ctx, r, o.Engine)
	if err != nil {
		return err
	}
	defer m.Close()
	o.placement.Use(info.Precision)
	o.placement.Announce(o.Stderr, o.Quiet)
	ev, err := src.predict(ctx, m)
	if err != nil {
		return err
	}
	if len(ev.Rows) == 0 {
		return cli.Dataf("%s: no image could be evaluated", src.name)
	}
	gallery, err := src.gallery(info.Classes, ev)
	if err != nil {
		return err
	}
	if o.History == "" {
		if _, err := os.Stat(r.Path(runs.HistoryFile)); err == nil {
			o.History = r.Path(runs.HistoryFile)
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
	})
	if sum != nil {
		if perr := printSummary(o, sum); perr != nil {
			return perr
		}
	}
	return err
}

// temperature is the one the run's best checkpoint holds (0: none).
func temperature(r *runs.Run, info *model.Info) float64 {
	if r.Info.Calibration == nil || !info.Calibratable() {
		return 0
	}
	return r.Info.Calibration.Temperature
}

// bestEpoch says which epoch the best checkpoint is from, when it is known.
func bestEpoch(r *runs.Run) string {
	var st struct {
		BestEpoch int `json:"best_epoch"`
	}
	if err := r.LoadState(runs.Best, &st); err == nil && st.BestEpoch > 0 {
		return fmt.Sprintf(" (epoch %d)", st.BestEpoch)
	}
	return ""
}

// evalSource is what --split names: a prepared split's records, or a
// labelled folder of image files.
type evalSource struct {
	name   string // for messages and the report page
	shards []string
	files  []infer.LabelledFile
	fit    imageio.Fit
	o      EvaluateOptions
}

func evaluationSource(r *runs.Run, info *model.Info, o EvaluateOptions) (*evalSource, error) {
	ds, dsErr := dataset.ReadManifest(r.Info.Dataset)
	if slices.Contains(namedSplits, o.Split) {
		if dsErr != nil {
			return nil, cli.Dataf("run %s: its dataset %s cannot be read (%v): evaluate a folder with --split DIR", r.Dir, r.Info.Dataset, dsErr)
		}
		if err := contract.CheckFit(info.Fit(), contract.Fit{Name: "the dataset " + r.Info.Dataset, Classes: ds.ClassNames()}, infer.Refit); err != nil {
			return nil, err
		}
		shards := ds.ShardPaths(r.Info.Dataset, o.Split)
		if n, _ := loader.Count(shards); n == 0 {
			return nil, cli.Dataf("the dataset %s has no %s images: choose another --split (test, val, train or a folder)", r.Info.Dataset, o.Split)
		}
		return &evalSource{name: fmt.Sprintf("the %s split of %s", o.Split, r.Info.Dataset), shards: shards, o: o}, nil
	}
	if st, err := os.Stat(o.Split); err != nil || !st.IsDir() {
		return nil, cli.Dataf("--split %s: no such folder (want test, val, train, or a folder with one sub-folder per class)", o.Split)
	}
	files, err := infer.ScanLabelled(o.Split, info.Classes, "--split")
	if err != nil {
		return nil, err
	}
	fit := imageio.Squash // the serving graph's own resize, when the dataset is gone
	if dsErr == nil {
		if f, err := imageio.ParseFit(ds.Image.Resize); err == nil {
			fit = f
		}
	}
	return &evalSource{name: "the folder " + o.Split, files: files, fit: fit, o: o}, nil
}

func (s *evalSource) predict(ctx context.Context, m *infer.Pixels) (*infer.Evaluated, error) {
	if s.files == nil {
		return infer.PredictRecords(ctx, m, s.shards, s.o.Batch)
	}
	skipped := 0
	ev, err := infer.PredictLabelled(ctx, m, s.files, s.fit, s.o.Batch, s.o.Limits, func(e *infer.FileError) {
		skipped++
		s.o.Notef("skipped %s: %s (%s)", e.Path, e.Reason, e.Detail)
	})
	if err == nil && skipped > 0 {
		s.o.Notef("%d unreadable files left out of the evaluation", skipped)
	}
	return ev, err
}

// galleryShown is how many mistakes the page shows.
const galleryShown = 24

// gallery picks the worst mistakes. Files are read from disk by the
// report; records lend their stored (already resized) image.
func (s *evalSource) gallery(classes []string, ev *infer.Evaluated) ([]report.GalleryItem, error) {
	items := report.WorstMistakes(classes, ev.Rows, galleryShown, "")
	if s.files != nil {
		return items, nil
	}
	// Items name their rows by file; prepared datasets name every record
	// uniquely. A name missing or shared (records from another tool) gets
	// no picture rather than someone else's.
	record := map[string]int{}
	for i, row := range ev.Rows {
		if _, seen := record[row.File]; seen || row.File == "" {
			record[row.File] = -1
			continue
		}
		record[row.File] = ev.Records[i]
	}
	want := map[int]bool{}
	for _, it := range items {
		if i := record[it.Name]; i >= 0 {
			want[i] = true
		}
	}
	images, err := infer.RecordImages(s.shards, want)
	if err != nil {
		return nil, err
	}
	for i := range items {
		items[i].Path = ""
		if r := record[items[i].Name]; r >= 0 {
			items[i].Image = images[r]
		}
	}
	return items, nil
}
