// Package audit finds likely mislabelled images: out-of-fold predicted
// probabilities from heads fitted on the frozen base's features (oof.go),
// then confident learning (Northcutt, Jiang & Chuang, "Confident Learning:
// Estimating Uncertainty in Dataset Labels", JAIR 2021) as cleanlab 2.9's
// filter.find_label_issues does it by default: per-class thresholds, the
// calibrated confident joint, pruning by noise rate, issues ranked by self
// confidence. internal/audit/testdata/cleanlab_reference.py checks the two
// agree on the same probabilities.
package audit

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/xcept/xcept/internal/metrics"
)

// The constants of cleanlab's internal/constants.py.
const (
	floatingPointComparison = 1e-6
	thresholdLowerBound     = 2 * floatingPointComparison
	tinyValue               = 1e-100
	missingClassThreshold   = 2 // no probability reaches it: a class nobody is labelled with is never guessed
)

// Confident is what confident learning found.
type Confident struct {
	// Thresholds[k]: the mean predicted probability of class k over the
	// images labelled k (the per-class threshold t_k).
	Thresholds []float64 `json:"thresholds"`
	// Joint[given][true]: the calibrated confident joint, counts that sum
	// to the number of images, each row to the images labelled so.
	Joint [][]int `json:"confident_joint"`
	// Issues: indices of the likely mislabelled images, most likely first
	// (lowest self confidence, the probability of the given label).
	Issues []int `json:"-"`
}

// FindLabelIssues runs confident learning on labels (in [0, k)) and
// probs (row-major, len(labels)×k, out-of-fold). It is cleanlab 2.9's
// find_label_issues(labels, pred_probs, filter_by="prune_by_noise_rate",
// return_indices_ranked_by="self_confidence") with its other defaults
// (frac_noise 1, min_examples_per_class 1).
func FindLabelIssues(labels []int, probs []float64, k int) (*Confident, error) {
	n := len(labels)
	if k < 2 {
		return nil, fmt.Errorf("confident learning needs at least 2 classes, got %d", k)
	}
	if len(probs) != n*k {
		return nil, fmt.Errorf("%d probabilities for %d images of %d classes", len(probs), n, k)
	}
	counts := make([]int, k)
	for i, l := range labels {
		if l < 0 || l >= k {
			return nil, fmt.Errorf("image %d: label %d outside [0, %d)", i, l, k)
		}
		counts[l]++
	}
	row := func(i int) []float64 { return probs[i*k : (i+1)*k] }
	thr, joint := confidentJoint(labels, probs, k, counts)
	cj := roundRows(joint)

	prune := keepAtLeastOnePerClass(cj, k)

	// Prune by noise rate: of the images labelled c, the prune[j][c] whose
	// p_j − p_c is largest are issues, for every other class j.
	issue := make([]bool, n)
	byClass := make([][]int, k)
	for i, l := range labels {
		byClass[l] = append(byClass[l], i)
	}
	for c, members := range byClass {
		if len(members) <= 1 { // min_examples_per_class
			continue
		}
		for j := 0; j < k; j++ {
			m := prune[j][c]
			if j == c || m <= 0 {
				continue
			}
			order := slices.Clone(members)
			slices.SortStableFunc(order, func(a, b int) int {
				return cmp.Compare(-(row(a)[j] - row(a)[c]), -(row(b)[j] - row(b)[c]))
			})
			for _, i := range order[:min(m, len(order))] {
				issue[i] = true
			}
		}
	}
	// An image the model predicts its given label for is never an issue.
	for i, l := range labels {
		if !issue[i] {
			continue
		}
		p := slices.Clone(row(i))
		p[l] += floatingPointComparison
		if metrics.Argmax(p) == l {
			issue[i] = false
		}
	}
	var issues []int
	for i, bad := range issue {
		if bad {
			issues = append(issues, i)
		}
	}
	slices.SortStableFunc(issues, func(a, b int) int { return cmp.Compare(row(a)[labels[a]], row(b)[labels[b]]) })
	return &Confident{Thresholds: thr, Joint: cj, Issues: issues}, nil
}

// confidentJoint returns the per-class thresholds and the calibrated
// confident joint before rounding (cleanlab's compute_confident_joint).
func confidentJoint(labels []int, probs []float64, k int, counts []int) ([]float64, [][]float64) {
	n := len(labels)
	row := func(i int) []float64 { return probs[i*k : (i+1)*k] }
	// Per-class thresholds: the expected self confidence of each class.
	thr := make([]float64, k)
	for c := range thr {
		thr[c] = missingClassThreshold
	}
	sums := make([]float64, k)
	for i, l := range labels {
		sums[l] += row(i)[l]
	}
	for c := range thr {
		if counts[c] > 0 {
			thr[c] = max(sums[c]/float64(counts[c]), thresholdLowerBound)
		}
	}

	// The confident joint: each image with at least one class at or above
	// its threshold counts once, at (given label, the confident class; the
	// most probable one when several are confident).
	joint := make([][]float64, k)
	for c := range joint {
		joint[c] = make([]float64, k)
	}
	for i, l := range labels {
		p := row(i)
		guess, confident := -1, 0
		for c, v := range p {
			if v >= thr[c]-floatingPointComparison {
				confident++
				if guess < 0 {
					guess = c
				}
			}
		}
		if confident == 0 {
			continue
		}
		if confident > 1 {
			guess = metrics.Argmax(p)
		}
		joint[l][guess]++
	}
	for c := range joint {
		joint[c][c] = max(joint[c][c], 1)
	}
	// Calibrated: rows sum to the label counts, the whole to n.
	total := 0.0
	for c := range joint {
		rs := sum(joint[c])
		for j := range joint[c] {
			joint[c][j] = joint[c][j] / max(rs, tinyValue) * float64(counts[c])
		}
		total += sum(joint[c])
	}
	for c := range joint {
		for j := range joint[c] {
			joint[c][j] = joint[c][j] / max(total, tinyValue) * float64(n)
		}
	}
	return thr, joint
}

// keepAtLeastOnePerClass is cleanlab's _keep_at_least_n_per_class(cj.T,
// n=1, frac_noise=1): the transposed joint with every diagonal at least 1,
// what a diagonal gained taken evenly from the column's non-zero noise
// counts. prune[true][given].
func keepAtLeastOnePerClass(cj [][]int, k int) [][]int {
	m := make([][]float64, k)
	for t := range m {
		m[t] = make([]float64, k)
		for g := range m[t] {
			m[t][g] = float64(cj[g][t])
		}
	}
	diff := make([]float64, k)
	nonzero := make([]float64, k)
	for c := 0; c < k; c++ {
		diff[c] = max(m[c][c], 1) - m[c][c]
		nz := 0
		for r := 0; r < k; r++ {
			if m[r][c] != 0 {
				nz++
			}
		}
		nonzero[c] = max(float64(nz)-1, 1)
	}
	for r := range m {
		for c := range m[r] {
			if r == c {
				continue
			}
			m[r][c] = max(m[r][c]-diff[c]/nonzero[c], 0)
		}
	}
	for c := 0; c < k; c++ {
		m[c][c] = max(m[c][c], 1)
	}
	// frac_noise 1 changes nothing but the cast to int (truncation).
	for r := range m {
		for c := range m[r] {
			m[r][c] = math.Trunc(m[r][c])
		}
	}
	return roundRows(m)
}

// roundRows rounds every row to integers keeping its (rounded) total:
// cleanlab's round_preserving_row_totals.
func roundRows(m [][]float64) [][]int {
	out := make([][]int, len(m))
	for r, row := range m {
		out[r] = roundPreservingSum(row)
	}
	return out
}

// roundPreservingSum is cleanlab's round_preserving_sum: round half to
// even, then move the entries with the largest rounding loss (gain) up
// (down) one at a time until the sum is the rounded sum.
func roundPreservingSum(fs []float64) []int {
	ints := make([]float64, len(fs))
	for i, f := range fs {
		ints[i] = math.RoundToEven(f)
	}
	orig := math.RoundToEven(sum(fs))
	got := math.RoundToEven(sum(ints))
	for math.Abs(got-orig) > floatingPointComparison {
		d := math.RoundToEven(orig - got)
		inc := 1.0
		if d < 0 {
			inc = -1
		}
		changes := min(int(math.Abs(d)), len(fs))
		// numpy's argsort of the residues (stable for the few classes it
		// sorts here), reversed when rounding up.
		idx := make([]int, len(fs))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(fs[a]-ints[a], fs[b]-ints[b]) })
		if inc > 0 {
			slices.Reverse(idx)
		}
		for _, i := range idx[:changes] {
			ints[i] += inc
		}
		got = math.RoundToEven(sum(ints))
	}
	out := make([]int, len(fs))
	for i, v := range ints {
		out[i] = int(v)
	}
	return out
}

func sum(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s
}
