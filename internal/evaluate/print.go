package evaluate

import (
	"fmt"
	"io"
	"strings"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/metrics"
	"github.com/xcept/xcept/internal/report"
)

// print writes the result as JSON, or for people as the text report, the
// top-k figures, the calibration, the gates and where report.html is.
func (res *Result) print(out cli.Output) error {
	if out.JSON {
		return out.Result(res, nil)
	}
	_, err := io.WriteString(out.Stdout, res.Text())
	return err
}

// Text is the summary for people.
func (res *Result) Text() string {
	s := res.Summary
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
	if t := s.TTA; t != nil {
		fmt.Fprintf(&b, "\ntest-time augmentation (%s): accuracy %.4f, ECE %.4f, NLL %.4f (without: accuracy %.4f, ECE %.4f, NLL %.4f)\n",
			strings.Join(t.Views, " + "), t.With.Accuracy, t.With.ECE, t.With.NLL, t.Without.Accuracy, t.Without.ECE, t.Without.NLL)
	}
	if d := s.OOD; d != nil {
		fmt.Fprintf(&b, "\nout of distribution (%d --ood images against the %d evaluated): AUROC %.4f; at the \"unknown\" threshold %.4g, %.1f%% of the --ood images and %.1f%% of the evaluated ones accepted (asked: %.0f%%)\n",
			d.Images, d.Known, d.AUROC, d.Threshold, 100*d.OODAccepted, 100*d.KnownAccepted, 100*d.Accept)
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
	return b.String()
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
