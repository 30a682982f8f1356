package export

import (
	"fmt"
	"math"
)

// Agreement is how closely a candidate's probabilities follow the
// reference's on the same images.
type Agreement struct {
	Agreement     float64 `json:"agreement"`     // share of images whose top-1 class is the reference's
	Disagreements int     `json:"disagreements"` // images whose top-1 class differs
	MaxAbsDiff    float64 `json:"max_abs_diff"`  // largest |Δprobability| over every image and class
	NonFinite     int     `json:"non_finite"`    // NaN or infinite values, each counted as a difference of 1
}

// compare measures cand against ref, both n×classes row-major.
func compare(ref, cand []float32, n, classes int) (Agreement, error) {
	if n < 1 || classes < 1 || len(ref) != n*classes || len(cand) != n*classes {
		return Agreement{}, fmt.Errorf("comparing %d reference and %d candidate probabilities for %d images of %d classes",
			len(ref), len(cand), n, classes)
	}
	var a Agreement
	for i := 0; i < n; i++ {
		r, c := ref[i*classes:(i+1)*classes], cand[i*classes:(i+1)*classes]
		broken := false
		for k := range r {
			d := math.Abs(float64(r[k]) - float64(c[k]))
			if math.IsNaN(d) || math.IsInf(d, 0) {
				// Never a match, and still a number JSON can hold:
				// probabilities differ by 1 at most.
				a.NonFinite++
				broken, d = true, 1
			}
			a.MaxAbsDiff = math.Max(a.MaxAbsDiff, d)
		}
		if broken || argmax(c) != argmax(r) {
			a.Disagreements++
		}
	}
	a.Agreement = float64(n-a.Disagreements) / float64(n)
	return a, nil
}

// accuracy is the top-1 accuracy of probabilities (n×classes) on labels.
func accuracy(probs []float32, labels []int32, classes int) float64 {
	if len(labels) == 0 {
		return 0
	}
	correct := 0
	for i, l := range labels {
		if argmax(probs[i*classes:(i+1)*classes]) == int(l) {
			correct++
		}
	}
	return float64(correct) / float64(len(labels))
}

// argmax is the index of the largest value, the first one on ties, as
// numpy.argmax and tf.argmax pick it. NaN counts as the largest, as in numpy.
func argmax(v []float32) int {
	best := 0
	for i := 1; i < len(v); i++ {
		if math.IsNaN(float64(v[best])) {
			return best
		}
		if v[i] > v[best] || math.IsNaN(float64(v[i])) {
			best = i
		}
	}
	return best
}
