package calibrate

import (
	"fmt"
	"math"
	"slices"
)

// DefaultAccept is the share of known images the rejection threshold is
// chosen to accept on the validation split.
const DefaultAccept = 0.95

// Rejection scores, by name.
const (
	// ScoreConfidence is the calibrated top probability p (runs calibrated
	// before ScoreLogOdds).
	ScoreConfidence = "confidence"
	// ScoreLogOdds is the log-odds of the calibrated top probability,
	// log(p / (1 − p)) with 1 − p computed as the sum of the other
	// probabilities: it ranks images as the confidence does wherever
	// float32 can tell their top probabilities apart, and goes on ranking
	// them where the top probability rounds to 1 (p ≥ 1 − 6e-8), which a
	// sharp temperature makes the rule for confident images. +Inf when
	// every other probability is 0.
	ScoreLogOdds = "log_odds"
)

// maxThreshold stands in for +Inf in a threshold (JSON has no infinity):
// it accepts exactly the scores of +Inf, as +Inf would.
const maxThreshold = math.MaxFloat64

// Rejection is the "unknown" rule: an image whose score is below
// Threshold is answered as unknown.
type Rejection struct {
	Score     string  `json:"score"`     // ScoreLogOdds (ScoreConfidence in older runs)
	Accept    float64 `json:"accept"`    // the share of validation images asked to be accepted
	Threshold float64 `json:"threshold"` // accept when score ≥ Threshold
	Accepted  float64 `json:"accepted"`  // the share of validation images it accepts
	// Confidence is Threshold as a top probability, for people (for
	// ScoreLogOdds 1 / (1 + e^−Threshold), which may print as 1).
	Confidence float64 `json:"confidence,omitempty"`
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
	t := min(s[n-max(1, m)], maxThreshold)
	return &Rejection{Score: ScoreConfidence, Accept: accept, Threshold: t, Accepted: AcceptedShare(scores, t), Confidence: t}, nil
}

// ChooseThreshold scores rows of calibrated probabilities (n × k) by the
// named score and returns the highest threshold accepting at least accept
// of them.
func ChooseThreshold(score string, probs []float32, k int, accept float64) (*Rejection, error) {
	scores, err := ScoresOf(score, probs, k)
	if err != nil {
		return nil, err
	}
	r, err := Threshold(scores, accept)
	if err != nil {
		return nil, err
	}
	r.Score = score
	r.Confidence = r.confidence()
	return r, nil
}

// ScoresOf is each row's score by name.
func ScoresOf(score string, probs []float32, k int) ([]float64, error) {
	f, err := scoreFunc(score)
	if err != nil {
		return nil, err
	}
	out := make([]float64, 0, len(probs)/k)
	for r := 0; r*k < len(probs); r++ {
		out = append(out, f(probs[r*k:(r+1)*k]))
	}
	return out, nil
}

func scoreFunc(score string) (func([]float32) float64, error) {
	switch score {
	case ScoreConfidence:
		return Confidence, nil
	case ScoreLogOdds:
		return LogOdds, nil
	}
	return nil, fmt.Errorf("rejection score %q: this xcept knows %s and %s", score, ScoreLogOdds, ScoreConfidence)
}

// LogOdds is ScoreLogOdds of one row of probabilities.
func LogOdds(row []float32) float64 {
	top, p := argmax(row)
	var rest float64
	for j, q := range row {
		if j != top {
			rest += float64(q)
		}
	}
	if rest <= 0 {
		return math.Inf(1)
	}
	return math.Log(p) - math.Log(rest)
}

// confidence is the threshold as a top probability.
func (r *Rejection) confidence() float64 {
	if r.Score != ScoreLogOdds {
		return r.Threshold
	}
	return 1 / (1 + math.Exp(-r.Threshold))
}

// ScoreRow is one row's score by the rule's score (a score this xcept
// does not know scores -Inf: everything is unknown rather than accepted).
func (r *Rejection) ScoreRow(row []float32) float64 {
	f, err := scoreFunc(r.Score)
	if err != nil {
		return math.Inf(-1)
	}
	return f(row)
}

// Check reports a rule this xcept cannot apply (an unknown score).
func (r *Rejection) Check() error {
	_, err := scoreFunc(r.Score)
	return err
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
func (r *Rejection) Unknown(row []float32) bool { return r.ScoreRow(row) < r.Threshold }

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

// Describe says the rule for people: "a log-odds of 9.21 (a top
// probability of 0.9999)", or for ScoreConfidence "a top probability of
// 0.7312".
func (r *Rejection) Describe() string {
	if r.Score == ScoreLogOdds {
		return fmt.Sprintf("a log-odds of %.4g (a top probability of %.6g)", r.Threshold, r.confidence())
	}
	return fmt.Sprintf("a top probability of %.4g", r.Threshold)
}

// Says is how a row's score reads in a message, "log-odds 6.91" or "top
// probability 0.4123".
func (r *Rejection) Says(row []float32) string {
	if r.Score == ScoreLogOdds {
		return fmt.Sprintf("log-odds %.4g", r.ScoreRow(row))
	}
	return fmt.Sprintf("top probability %.4f", r.ScoreRow(row))
}
