package main

import (
	"github.com/spf13/cobra"

	"github.com/xcept/xcept/internal/evaluate"
	"github.com/xcept/xcept/internal/metrics"
)

func init() { verbs = append(verbs, NewEvaluateCmd) }

// NewEvaluateCmd builds `xcept evaluate`.
func NewEvaluateCmd(g *Globals) *cobra.Command {
	var (
		opts        evaluate.Options
		minAccuracy float64
		minRecall   []string
		maxECE      float64
		minAUROC    float64
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

--ood DIR (with --run) predicts a folder of images of none of the model's
classes (any layout) and reports how well the calibrated top probability tells
them from the evaluated images: AUROC, and the share of each accepted at the
run's "unknown" threshold (chosen on the validation split to accept 95% of its
images). --min-ood-auroc X gates on that AUROC.

--tta (with --run) also predicts every evaluated image mirrored left to right
and reports accuracy, ECE and NLL of the mean of the two predictions beside
those of the image alone (the rest of the report stays without TTA, as predict
and serve answer).

Gates make CI fail on a bad model: every report is still written, then the
command exits with code 3 and one line naming each failed gate and by how much.
Exit codes: 0 done and every gate passed, 2 bad flags, 3 a gate failed, 4 a
missing or unusable path, file or dataset, or classes that do not match the
model's, 5 the model failed, 6 another process is writing the run (reports into
the run folder need its lock), 130 interrupted.`,
		Example: `  xcept evaluate --run runs/flowers --min-accuracy 0.9 --min-recall 0.8
  xcept evaluate --run runs/flowers --max-ece 0.05
  xcept evaluate --run runs/flowers --ood other-photos/ --min-ood-auroc 0.9 --tta
  xcept evaluate --run runs/flowers --split new-photos/ --out eval-new
  xcept evaluate --predictions preds.csv --labels ds/labels.txt --out eval
  xcept evaluate --predictions preds.csv --labels labels.txt --min-accuracy 0.9 --min-recall 0.8 --min-recall cat=0.95 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Output = g.Output
			if cmd.Flags().Changed("min-accuracy") {
				gate, err := metrics.MinAccuracy(minAccuracy)
				if err != nil {
					return err
				}
				opts.Gates = append(opts.Gates, gate)
			}
			if cmd.Flags().Changed("max-ece") {
				gate, err := metrics.MaxECE(maxECE)
				if err != nil {
					return err
				}
				opts.Gates = append(opts.Gates, gate)
			}
			if cmd.Flags().Changed("min-ood-auroc") {
				gate, err := metrics.MinOODAUROC(minAUROC)
				if err != nil {
					return err
				}
				opts.Gates = append(opts.Gates, gate)
			}
			for _, v := range minRecall {
				gate, err := metrics.ParseMinRecall(v)
				if err != nil {
					return err
				}
				opts.Gates = append(opts.Gates, gate)
			}
			if err := opts.Validate(); err != nil {
				return err
			}
			if opts.Run == "" {
				_, err := evaluate.Run(cmd.Context(), opts)
				return err
			}
			var err error
			if opts.Engine, opts.Limits, err = inferConfig(g, cmd.Flags()); err != nil {
				return err
			}
			_, err = evaluate.Run(cmd.Context(), opts)
			g.trackAfter(cmd.Context(), opts.Run, opts.Out)
			return err
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
	f.Float64Var(&minAUROC, "min-ood-auroc", 0, "gate: fail (exit 3) when the AUROC of the evaluated against the --ood images is below this fraction")
	f.StringVar(&opts.OOD, "ood", "", "with --run: folder of images of none of the classes; reports AUROC and the share accepted at the \"unknown\" threshold")
	f.BoolVar(&opts.TTA, "tta", false, "with --run: also report accuracy and ECE of the mean of each image's and its mirror image's predictions")
	f.StringArrayVar(&minRecall, "min-recall", nil, "gate: fail when the recall of every class (X) or of one class (CLASS=X) is below X; repeatable")
	return cmd
}
