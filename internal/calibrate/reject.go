package calibrate

import (
	"fmt"
	"math"
	"slices"
)

// DefaultAccept is the share of known images the rejection threshold is
// chosen to accept on the validation split.
const DefaultAccept = 0.95

// ScoreConfidence names the rejection score: the calibrated top probability.
const ScoreConfidence = "confidence"

// Rejection is the "unknown" rule: an image whose score is below
// Threshold is answered as unknown.
type Rejection struct {
	Score     string  `json:"score"`     // ScoreConfidence
	Accept    float64 `json:"accept"`    // the share of validation images asked to be accepted
	Threshold float64 `json:"threshold"` // accept when score ≥ Threshold
	Accepted  float64 `json:"accepted"`  // the share of validation images it accepts
}

// Confidences are the top probability of each row.
func Confidences(probs []float32, k int) []float64 {
	out := make([]float64, 0, len(probs)/k)
	for r := 0; r*k < len(probs); r++ {
		_, c := argmax(probs[r*k : (r+1)*k])
		out = append(out, c)
	}
	return out
}

// Threshold returns the highest threshold that still accepts (score ≥
// threshold) at least accept of scores.
func Threshold(scores []float64, accept float64) (*Rejection, error) {
	if len(scores) == 0 {
		return nil, fmt.Errorf("no scores to choose a threshold on")
	}
	if !(accept > 0 && accept <= 1) {
		return nil, fmt.Errorf("acceptance rate %v: want a fraction in (0, 1]", accept)
	}
	s := slices.Clone(scores)
	slices.Sort(s)
	// Accepting the top m = ceil(accept·n) scores: the threshold is the
	// m-th highest, s[n-m].
	n := len(s)
	m := int(math.Ceil(accept*float64(n) - 1e-9))
	t := s[n-max(1, m)]
	return &Rejection{Score: ScoreConfidence, Accept: accept, Threshold: t, Accepted: AcceptedShare(scores, t)}, nil
}

// AcceptedShare is the share of scores at or above threshold.
func AcceptedShare(scores []float64, threshold float64) float64 {
	if len(scores) == 0 {
		return 0
	}
	n := 0
	for _, v := range scores {
		if v >= threshold {
			n++
		}
	}
	return float64(n) / float64(len(scores))
}

// AUROC is the area under the ROC curve of telling known images (higher
// scores expected) from unknown ones: the probability that a random known
// score exceeds a random unknown one, ties counting half (Mann-Whitney U).
func AUROC(known, unknown []float64) (float64, error) {
	if len(known) == 0 || len(unknown) == 0 {
		return 0, fmt.Errorf("AUROC needs known and unknown scores (%d and %d)", len(known), len(unknown))
	}
	type item struct {
		v     float64
		known bool
	}
	all := make([]item, 0, len(known)+len(unknown))
	for _, v := range known {
		all = append(all, item{v, true})
	}
	for _, v := range unknown {
		all = append(all, item{v, false})
	}
	slices.SortFunc(all, func(a, b item) int {
		switch {
		case a.v < b.v:
			return -1
		case a.v > b.v:
			return 1
		}
		return 0
	})
	// Rank sum of the known scores, ties sharing their mean rank.
	var rankSum float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		mean := float64(i+j+1) / 2 // ranks i+1 .. j
		for _, it := range all[i:j] {
			if it.known {
				rankSum += mean
			}
		}
		i = j
	}
	nk, nu := float64(len(known)), float64(len(unknown))
	return (rankSum - nk*(nk+1)/2) / (nk * nu), nil
}

// Confidence is a row's rejection score: its top probability.
func Confidence(row []float32) float64 {
	_, c := argmax(row)
	return c
}

// Unknown reports whether a row of calibrated probabilities is answered
// "unknown": its score is below the threshold.
func (r *Rejection) Unknown(row []float32) bool { return Confidence(row) < r.Threshold }

// Deployed is what an exported model carries of its run's fit: the
// temperature its probabilities already include, and the "unknown"
// threshold to apply to them (nil: none was chosen).
type Deployed struct {
	Temperature float64    `json:"temperature"`
	Reject      *Rejection `json:"reject,omitempty"`
}

// Deployed is the part of the fit an export records.
func (f *Fit) Deployed() *Deployed {
	if f == nil {
		return nil
	}
	return &Deployed{Temperature: f.Temperature, Reject: f.Reject}
}
