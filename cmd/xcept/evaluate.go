package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/metrics"
	"github.com/xcept/xcept/internal/report"
)

func init() { verbs = append(verbs, NewEvaluateCmd) }

// EvaluateOptions is everything `xcept evaluate` needs, already validated.
type EvaluateOptions struct {
	Predictions string         // predictions file: true,pred[,file][,probabilities]
	Labels      string         // labels.txt: class names in index order
	History     string         // optional training history.csv for the curves
	Out         string         // report folder
	TopK        int            // k of top-k accuracy
	Gates       []metrics.Gate // CI gates
	JSON        bool           // print the summary as JSON
	Stdout      io.Writer
	Stderr      io.Writer
}

// NewEvaluateCmd builds `xcept evaluate`.
func NewEvaluateCmd(g *Globals) *cobra.Command {
	var (
		opts        EvaluateOptions
		minAccuracy float64
		minRecall   []string
	)
	cmd := &cobra.Command{
		Use:   "evaluate --predictions FILE --labels labels.txt [--out DIR] [gates]",
		Short: "Report accuracy, per-class scores and the confusion matrix; gate CI on them",
		Long: `evaluate writes predictions.csv, report.txt (scikit-learn's classification_report
layout), report.json, confusion.csv, confusion.png and one self-contained
report.html to --out.

--predictions reads a CSV with columns "true" and "pred" (class names or
indices of labels.txt), optionally "file" and one probability column per class
("prob:CLASS" or the bare class name), such as the predictions.csv evaluate
itself writes. No model is needed.

Gates make CI fail on a bad model: every report is still written, then the
command exits with code 3 and one line naming each failed gate and by how much.`,
		Example: `  xcept evaluate --predictions preds.csv --labels ds/labels.txt --out eval
  xcept evaluate --predictions preds.csv --labels labels.txt --min-accuracy 0.9 --min-recall 0.8 --min-recall cat=0.95 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.JSON, opts.Stdout, opts.Stderr = g.JSON, g.Stdout, g.Stderr
			if cmd.Flags().Changed("min-accuracy") {
				gate, err := metrics.MinAccuracy(minAccuracy)
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
			return runEvaluate(opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Predictions, "predictions", "", "predictions CSV to evaluate (columns true,pred by class name or index)")
	f.StringVar(&opts.Labels, "labels", "", "labels.txt: one class name per line, in index order")
	f.StringVar(&opts.History, "history", "", "training history.csv to draw the training curves from")
	f.StringVar(&opts.Out, "out", "", "report folder (default: NAME-report beside the predictions file NAME.csv)")
	f.IntVar(&opts.TopK, "top-k", 5, "k of the top-k accuracy (needs probability columns)")
	f.Float64Var(&minAccuracy, "min-accuracy", 0, "gate: fail (exit 3) when accuracy is below this fraction")
	f.StringArrayVar(&minRecall, "min-recall", nil, "gate: fail when the recall of every class (X) or of one class (CLASS=X) is below X; repeatable")
	return cmd
}

// validateEvaluate checks flag combinations and fills defaults.
func validateEvaluate(o *EvaluateOptions) error {
	if o.Predictions == "" {
		return cli.Usagef("--predictions FILE is required (see --help)")
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
		enc := json.NewEncoder(o.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	var b strings.Builder
	b.WriteString(s.Report.Text(2))
	switch {
	case s.TopK != nil:
		fmt.Fprintf(&b, "\ntop-1 accuracy %.4f, top-%d accuracy %.4f (from the probabilities)\n", *s.Top1, s.K, *s.TopK)
	case s.Top1 != nil:
		fmt.Fprintf(&b, "\ntop-1 accuracy %.4f (from the probabilities)\n", *s.Top1)
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
