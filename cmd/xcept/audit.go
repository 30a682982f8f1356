package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xcept/xcept/internal/audit"
	"github.com/xcept/xcept/internal/auditrun"
	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/device"
	"github.com/xcept/xcept/internal/neardup"
)

func init() { verbs = append(verbs, NewAuditCmd) }

// NewAuditCmd builds `xcept audit`.
func NewAuditCmd(g *Globals) *cobra.Command {
	var (
		opts      auditrun.Options
		maxIssues string
		seed      int64
	)
	cmd := &cobra.Command{
		Use:   "audit --run runs/NAME [--max-label-issues N|FRACTION]",
		Short: "Find likely mislabelled images and near-duplicate images (label conflicts, leakage across splits)",
		Long: `audit checks a run's data, not its model: it needs the run's dataset and
frozen base, no checkpoint.

Label audit: the training and validation images are split into --folds folds
(stratified by label); a head (softmax regression on the standardised
frozen-base features) is fitted on all folds but one and predicts the one left
out, so every image gets probabilities from a head that never saw it. Confident
learning (Northcutt, Jiang & Chuang 2021, as cleanlab's find_label_issues does
it by default) then lists the likely mislabelled images, most likely first,
with the given and the suggested label.

Near-duplicates: every pair of images (all splits) whose centred frozen-base
features have a cosine similarity of at least --near-duplicate-threshold:
re-encoded, resized, slightly cropped or recoloured copies, reported as
near-duplicate-in-class, near-duplicate-across-classes (a label conflict) or
near-duplicate-across-splits (leakage), like prepare's exact duplicates.

The features come from the run's feature cache when it holds the images as
they are (a run trained without augmentation); otherwise the frozen base runs
over the training and validation images once (slower; said on stderr) and the
result is cached for the next audit. The test images are run every time.

Writes label_issues.json, label_issues.csv, near_duplicates.json, audit.json
and report.html (galleries of both) into RUN/audit (or --out).
--max-label-issues fails the run (exit 3, after every report is written) when
more images than N, or than FRACTION of the audited images, are label issues.
Exit codes: 0 done, 2 bad flags, 3 the gate failed, 4 a missing or unusable run
or dataset, 5 the model failed, 6 another process is writing the run, 130
interrupted.`,
		Example: `  xcept audit --run runs/flowers
  xcept audit --run runs/flowers --max-label-issues 0.02 --json
  xcept audit --run runs/flowers --max-label-issues 25 --out audit-flowers`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Output = g.Output
			v, err := g.Config(cmd.Flags(), map[string]string{"seed": "seed", "runtime.device": deviceFlag})
			if err != nil {
				return err
			}
			if opts.Session, err = sessionOptions(v); err != nil {
				return cli.Usagef("%v", err)
			}
			opts.Seed = uint64(v.GetInt64("seed"))
			if cmd.Flags().Changed("max-label-issues") {
				if opts.MaxIssues, err = auditrun.ParseLimit(maxIssues); err != nil {
					return err
				}
			}
			if err := validateAudit(opts); err != nil {
				return err
			}
			return runAudit(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Run, "run", "", "run folder (runs/NAME) whose data to audit")
	f.StringVar(&opts.Out, "out", "", "report folder (default: RUN/audit)")
	f.IntVar(&opts.Folds, "folds", 5, "folds of the out-of-fold heads (2 or more)")
	f.Float64Var(&opts.L2, "l2", audit.DefaultL2, "weight decay of the out-of-fold heads (mean cross-entropy + l2/2·‖W‖²)")
	f.Float64Var(&opts.Threshold, "near-duplicate-threshold", neardup.DefaultThreshold, "cosine similarity of centred features at and above which two images are near-duplicates, in (0, 1]")
	f.StringVar(&maxIssues, "max-label-issues", "", "gate: fail (exit 3) when more images than N (25) or than FRACTION (0.02, 2%) of the audited ones are label issues")
	f.Int64Var(&seed, "seed", 42, "seed of the folds")
	addDeviceFlag(f)
	return cmd
}

func validateAudit(o auditrun.Options) error {
	switch {
	case o.Run == "":
		return cli.Usagef("--run runs/NAME is required: the run whose data to audit")
	case o.Folds < 2:
		return cli.Usagef("--folds %d: want 2 or more", o.Folds)
	case !(o.L2 >= 0):
		return cli.Usagef("--l2 %g: want 0 or more", o.L2)
	case !(o.Threshold > 0 && o.Threshold <= 1):
		return cli.Usagef("--near-duplicate-threshold %g: want a cosine similarity in (0, 1]", o.Threshold)
	}
	return nil
}

func runAudit(ctx context.Context, o auditrun.Options) error {
	if _, err := device.Check(o.Session); err != nil {
		return err
	}
	res, err := auditrun.Run(ctx, o)
	if err != nil {
		return err
	}
	if err := o.Result(res, func(w io.Writer) error {
		fmt.Fprintf(w, "label audit: %d of %d training and validation images are likely mislabelled (%.1f%%), %d-fold heads on %s\n",
			res.LabelIssues, res.Images, 100*res.IssueShare, res.Folds, res.Features)
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(res.NearDuplicates)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, res.NearDuplicates[k]))
		}
		fmt.Fprintf(w, "near-duplicates (similarity ≥ %.3f): %s\n", res.Threshold, strings.Join(parts, ", "))
		if res.Gate != nil {
			verdict := "passed"
			if !res.Gate.Passed {
				verdict = "FAILED"
			}
			fmt.Fprintf(w, "gate %s: label issues %d <= %d (--max-label-issues %s)\n", verdict, res.LabelIssues, res.Gate.Max, res.Gate.Limit)
		}
		fmt.Fprintf(w, "report: %s\n", res.Report)
		return nil
	}); err != nil {
		return err
	}
	return res.GateError()
}
