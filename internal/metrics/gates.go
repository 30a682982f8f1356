package metrics

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/xcept/xcept/internal/fault"
)

// Gate is one CI quality gate: a minimum accuracy, a minimum recall of one
// class or (Class == "") of every class, or a maximum expected calibration
// error (computed outside this package, by internal/calibrate).
type Gate struct {
	Metric string  // "accuracy", "recall" or "ece"
	Class  string  // recall gates: the class, or "" for every class
	Min    float64 // passes when the value is at least Min
	Max    float64 // ece gates: passes when the value is at most Max
}

// Gate metrics.
const (
	GateAccuracy = "accuracy"
	GateRecall   = "recall"
	GateECE      = "ece"
	GateOODAUROC = "ood_auroc" // evaluate --ood's AUROC (computed by internal/calibrate)
)

// MinOODAUROC builds the --min-ood-auroc gate.
func MinOODAUROC(v float64) (Gate, error) {
	if v < 0 || v > 1 || v != v {
		return Gate{}, fault.New(fault.BadValue, "%s %v: want a fraction from 0 to 1 (0.5 is chance)", fault.Option("min-ood-auroc"), v)
	}
	return Gate{Metric: GateOODAUROC, Min: v}, nil
}

// CheckMin judges a minimum gate computed outside this package (ood_auroc).
func CheckMin(g Gate, value float64) GateResult {
	return GateResult{Gate: g.String(), Metric: g.Metric, Min: g.Min, Value: value, Passed: value >= g.Min}
}

// MaxECE builds the --max-ece gate.
func MaxECE(v float64) (Gate, error) {
	if v < 0 || v > 1 || v != v {
		return Gate{}, fault.New(fault.BadValue, "%s %v: want a fraction from 0 to 1 (0.05 for 5%%)", fault.Option("max-ece"), v)
	}
	return Gate{Metric: GateECE, Max: v}, nil
}

// CheckMax judges a maximum gate (ece) against its value.
func CheckMax(g Gate, value float64) GateResult {
	return GateResult{Gate: g.String(), Metric: g.Metric, Max: g.Max, Value: value, Passed: value <= g.Max}
}

// String is how the gate is written on the command line.
func (g Gate) String() string {
	v := strconv.FormatFloat(g.Min, 'g', -1, 64)
	switch {
	case g.Metric == GateECE:
		return "--max-ece " + strconv.FormatFloat(g.Max, 'g', -1, 64)
	case g.Metric == GateOODAUROC:
		return "--min-ood-auroc " + v
	case g.Metric == GateAccuracy:
		return "--min-accuracy " + v
	case g.Class == "":
		return "--min-recall " + v
	default:
		return "--min-recall " + g.Class + "=" + v
	}
}

const optMinRecall fault.Option = "min-recall"

// ParseMinRecall reads a --min-recall value: "X" for every class or
// "CLASS=X" for one. The class name may itself contain "=": the last one
// separates the threshold.
func ParseMinRecall(s string) (Gate, error) {
	g := Gate{Metric: GateRecall}
	value := s
	if i := strings.LastIndex(s, "="); i >= 0 {
		g.Class, value = strings.TrimSpace(s[:i]), s[i+1:]
		if g.Class == "" {
			return g, fault.New(fault.BadValue, "%s %q: want X or CLASS=X", optMinRecall, s)
		}
	}
	min, err := parseThreshold(value)
	if err != nil {
		return g, fault.New(fault.BadValue, "%s %q: %v", optMinRecall, s, err)
	}
	g.Min = min
	return g, nil
}

// MinAccuracy builds the --min-accuracy gate.
func MinAccuracy(v float64) (Gate, error) {
	if v < 0 || v > 1 || v != v {
		return Gate{}, fault.New(fault.BadValue, "%s %v: want a fraction from 0 to 1 (0.9 for 90%%)", fault.Option("min-accuracy"), v)
	}
	return Gate{Metric: GateAccuracy, Min: v}, nil
}

func parseThreshold(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || v < 0 || v > 1 {
		return 0, fmt.Errorf("threshold %q is not a fraction from 0 to 1 (0.9 for 90%%)", s)
	}
	return v, nil
}

// CheckClasses reports a recall gate naming a class that is not in classes.
func CheckClasses(gates []Gate, classes []string) error {
	for _, g := range gates {
		if g.Metric == GateRecall && g.Class != "" && !slices.Contains(classes, g.Class) {
			return fmt.Errorf("%s: no class %q among the %d classes", g, g.Class, len(classes))
		}
	}
	return nil
}

// GateResult is one checked gate. A gate over every class yields one result
// per class with samples; classes with no samples have no recall to check.
type GateResult struct {
	Gate   string  `json:"gate"`
	Metric string  `json:"metric"`
	Class  string  `json:"class,omitempty"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max,omitempty"` // ece gates
	Value  float64 `json:"value"`
	Passed bool    `json:"passed"`
	Note   string  `json:"note,omitempty"`
}

// Describe is the one-line account of a failed gate: what, value, and by how much.
func (r GateResult) Describe() string {
	what := r.Metric
	if r.Class != "" {
		what = fmt.Sprintf("recall of %q", r.Class)
	}
	if r.Note != "" {
		return fmt.Sprintf("%s: %s (%s)", what, r.Note, r.Gate)
	}
	if r.Metric == GateECE {
		return fmt.Sprintf("expected calibration error %.4f > %.4f by %.4f (%s)", r.Value, r.Max, r.Value-r.Max, r.Gate)
	}
	if r.Metric == GateOODAUROC {
		what = "AUROC of the evaluated against the --ood images"
	}
	return fmt.Sprintf("%s %.4f < %.4f by %.4f (%s)", what, r.Value, r.Min, r.Min-r.Value, r.Gate)
}

// CheckGates evaluates the counting gates against a report, in the order
// given; ece gates are left to the caller that computed the ECE (CheckMax).
func CheckGates(rep *Report, gates []Gate) ([]GateResult, error) {
	if err := CheckClasses(gates, rep.Classes); err != nil {
		return nil, err
	}
	out := []GateResult{} // JSON readers get [], not null
	for _, g := range gates {
		base := GateResult{Gate: g.String(), Metric: g.Metric, Min: g.Min}
		switch {
		case g.Metric == GateECE || g.Metric == GateOODAUROC:
			continue
		case g.Metric == GateAccuracy:
			base.Value, base.Passed = rep.Accuracy, rep.Accuracy >= g.Min
			out = append(out, base)
		case g.Class == "":
			for i, c := range rep.Classes {
				if rep.PerClass[i].Support == 0 {
					continue
				}
				r := base
				r.Class, r.Value = c, rep.PerClass[i].Recall
				r.Passed = r.Value >= g.Min
				out = append(out, r)
			}
		default:
			i := indexOf(rep.Classes, g.Class)
			r := base
			r.Class, r.Value = g.Class, rep.PerClass[i].Recall
			r.Passed = r.Value >= g.Min
			if rep.PerClass[i].Support == 0 {
				// A gate someone asked for by name must not pass unchecked.
				r.Passed, r.Note = false, "no samples of this class, recall undefined"
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// FailedGates joins the failed gates into one line, or "" when all passed.
func FailedGates(results []GateResult) string {
	var failed []string
	for _, r := range results {
		if !r.Passed {
			failed = append(failed, r.Describe())
		}
	}
	return strings.Join(failed, "; ")
}
