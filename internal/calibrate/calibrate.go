// Package calibrate holds the math of trusting a classifier's confidence:
// temperature scaling (Guo et al. 2017: one scalar T, softmax(logits / T),
// fitted by minimising the negative log-likelihood on the validation
// split), the expected calibration error, the negative log-likelihood and
// the reliability diagram's bins. Probabilities and logits are row-major
// n × k float32 slices, labels one int32 per row; all sums are float64.
// metrics stays pure counting; this package is where the figures of
// confidence are computed.
package calibrate

import (
	"fmt"
	"math"

	"github.com/xcept/xcept/internal/metrics"
)

// Bins is the number of equal-width confidence bins of the ECE and the
// reliability diagram (Guo et al.'s 15).
const Bins = 15

// MinTemperature and MaxTemperature bound the fitted temperature: a
// validation split the head separates perfectly drives the optimum to 0
// (ever sharper), one it gets all wrong to infinity.
const (
	MinTemperature = 0.05
	MaxTemperature = 20
)

// nllFloor is the probability below which a true class's probability is
// counted as nllFloor in NLL (float32 softmax underflows to 0 past ~1e-45).
const nllFloor = 1e-12

func rows(x []float32, labels []int32, k int) (int, error) {
	n := len(labels)
	if k < 2 || len(x) != n*k {
		return 0, fmt.Errorf("%d values is not %d rows of %d classes", len(x), n, k)
	}
	for i, y := range labels {
		if y < 0 || int(y) >= k {
			return 0, fmt.Errorf("row %d: label %d outside [0, %d)", i, y, k)
		}
	}
	return n, nil
}

// Scale returns softmax(logits / t), row by row.
func Scale(logits []float32, k int, t float64) []float32 {
	out := make([]float32, len(logits))
	for r := 0; r*k < len(logits); r++ {
		row := logits[r*k : (r+1)*k]
		peak := math.Inf(-1)
		for _, z := range row {
			peak = math.Max(peak, float64(z)/t)
		}
		var sum float64
		e := make([]float64, k)
		for j, z := range row {
			e[j] = math.Exp(float64(z)/t - peak)
			sum += e[j]
		}
		for j := range row {
			out[r*k+j] = float32(e[j] / sum)
		}
	}
	return out
}

// Uncalibrate undoes a temperature t: softmax(t·log p). Since log p is the
// logits over t minus a per-row constant, Uncalibrate(softmax(z / t), t) =
// softmax(z), which is how evaluate recovers the uncalibrated probabilities
// of a calibrated model.
func Uncalibrate(probs []float32, k int, t float64) []float32 {
	logs := make([]float32, len(probs))
	for i, p := range probs {
		logs[i] = float32(math.Log(math.Max(float64(p), math.SmallestNonzeroFloat32)))
	}
	return Scale(logs, k, 1/t)
}

// NLL is the mean negative log-likelihood of the labels, -mean(log p[y]),
// each probability floored at 1e-12.
func NLL(probs []float32, labels []int32, k int) (float64, error) {
	n, err := rows(probs, labels, k)
	if err != nil || n == 0 {
		return 0, err
	}
	var sum float64
	for i, y := range labels {
		sum -= math.Log(math.Max(float64(probs[i*k+int(y)]), nllFloor))
	}
	return sum / float64(n), nil
}

// Bin is one equal-width confidence bin (Lo, Hi] of a reliability diagram.
type Bin struct {
	Lo         float64 `json:"lo"`
	Hi         float64 `json:"hi"`
	Count      int     `json:"count"`
	Confidence float64 `json:"confidence"` // mean top probability in the bin
	Accuracy   float64 `json:"accuracy"`   // share of the bin's rows whose top class is the label
}

// Reliability sorts the rows by their top probability into bins
// equal-width bins over (0, 1]: bin b holds confidences in (b/bins,
// (b+1)/bins] (a confidence of exactly 0 goes to the first).
func Reliability(probs []float32, labels []int32, k, bins int) ([]Bin, error) {
	if bins < 1 {
		return nil, fmt.Errorf("%d bins: need at least 1", bins)
	}
	if _, err := rows(probs, labels, k); err != nil {
		return nil, err
	}
	out := make([]Bin, bins)
	for b := range out {
		out[b].Lo, out[b].Hi = float64(b)/float64(bins), float64(b+1)/float64(bins)
	}
	for i, y := range labels {
		top, conf := argmax(probs[i*k : (i+1)*k])
		b := int(math.Ceil(conf*float64(bins))) - 1
		b = max(0, min(bins-1, b))
		out[b].Count++
		out[b].Confidence += conf
		if top == int(y) {
			out[b].Accuracy++
		}
	}
	for b := range out {
		if c := float64(out[b].Count); c > 0 {
			out[b].Confidence /= c
			out[b].Accuracy /= c
		}
	}
	return out, nil
}

// ECE is the expected calibration error over bins equal-width bins:
// Σ_b (|b| / n)·|accuracy(b) − confidence(b)|.
func ECE(probs []float32, labels []int32, k, bins int) (float64, error) {
	bs, err := Reliability(probs, labels, k, bins)
	if err != nil || len(labels) == 0 {
		return 0, err
	}
	return ECEOf(bs), nil
}

// ECEOf is the ECE of a reliability diagram's bins.
func ECEOf(bins []Bin) float64 {
	var n int
	for _, b := range bins {
		n += b.Count
	}
	if n == 0 {
		return 0
	}
	var e float64
	for _, b := range bins {
		e += float64(b.Count) / float64(n) * math.Abs(b.Accuracy-b.Confidence)
	}
	return e
}

func argmax(row []float32) (int, float64) {
	best := metrics.Argmax(row)
	return best, float64(row[best])
}

// nllAt is the mean NLL of softmax(β·z) and its first two derivatives in β
// (f' = mean(E_p[z] − z_y), f” = mean(Var_p[z]) ≥ 0: f is convex in β).
func nllAt(logits []float32, labels []int32, k int, beta float64) (f, d1, d2 float64) {
	e := make([]float64, k)
	for i, y := range labels {
		row := logits[i*k : (i+1)*k]
		peak := math.Inf(-1)
		for _, z := range row {
			peak = math.Max(peak, beta*float64(z))
		}
		var sum, mean, sq float64
		for j, z := range row {
			e[j] = math.Exp(beta*float64(z) - peak)
			sum += e[j]
		}
		for j, z := range row {
			p := e[j] / sum
			mean += p * float64(z)
			sq += p * float64(z) * float64(z)
		}
		f += peak + math.Log(sum) - beta*float64(row[y])
		d1 += mean - float64(row[y])
		d2 += sq - mean*mean
	}
	n := float64(len(labels))
	return f / n, d1 / n, d2 / n
}

// FitTemperature returns the T in [MinTemperature, MaxTemperature] that
// minimises the mean NLL of softmax(logits / T) on labels. The NLL is
// convex in β = 1/T, so the root of its derivative is bracketed and found
// by Newton steps that fall back to bisection.
func FitTemperature(logits []float32, labels []int32, k int) (float64, error) {
	n, err := rows(logits, labels, k)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("no rows to fit a temperature on")
	}
	lo, hi := 1/float64(MaxTemperature), 1/float64(MinTemperature)
	if _, d, _ := nllAt(logits, labels, k, lo); d >= 0 {
		return MaxTemperature, nil
	}
	if _, d, _ := nllAt(logits, labels, k, hi); d <= 0 {
		return MinTemperature, nil
	}
	beta := 1.0
	for range 200 {
		_, d1, d2 := nllAt(logits, labels, k, beta)
		if d1 > 0 {
			hi = beta
		} else {
			lo = beta
		}
		if math.Abs(d1) < 1e-12 || hi-lo < 1e-12*hi {
			break
		}
		next := beta - d1/d2
		if d2 <= 0 || !(next > lo && next < hi) {
			next = (lo + hi) / 2
		}
		beta = next
	}
	return 1 / beta, nil
}

// Scores are the calibration figures of one set of probabilities.
type Scores struct {
	ECE      float64 `json:"ece"`
	NLL      float64 `json:"nll"`
	Accuracy float64 `json:"accuracy"`
	Bins     []Bin   `json:"bins"`
}

// Score computes the ECE (Bins bins), NLL, accuracy and reliability bins.
func Score(probs []float32, labels []int32, k int) (Scores, error) {
	bins, err := Reliability(probs, labels, k, Bins)
	if err != nil {
		return Scores{}, err
	}
	nll, err := NLL(probs, labels, k)
	if err != nil {
		return Scores{}, err
	}
	var hits int
	for i, y := range labels {
		if top, _ := argmax(probs[i*k : (i+1)*k]); top == int(y) {
			hits++
		}
	}
	s := Scores{ECE: ECEOf(bins), NLL: nll, Bins: bins}
	if len(labels) > 0 {
		s.Accuracy = float64(hits) / float64(len(labels))
	}
	return s, nil
}

// Fit is a fitted temperature and what it changes on the split it was fitted on.
type Fit struct {
	Temperature float64 `json:"temperature"`
	Split       string  `json:"split"`
	Images      int     `json:"images"`
	Phase       string  `json:"phase,omitempty"` // the training phase whose best checkpoint it calibrates
	Epoch       int     `json:"epoch,omitempty"` // that checkpoint's epoch
	Before      Scores  `json:"before"`          // T = 1
	After       Scores  `json:"after"`
	// Reject is the "unknown" threshold on the calibrated probabilities'
	// log-odds (ScoreLogOdds), chosen on the same split to accept
	// DefaultAccept of its images.
	Reject *Rejection `json:"reject,omitempty"`
}

// FitSplit fits T on one split's logits and scores it before and after.
func FitSplit(split string, logits []float32, labels []int32, k int) (*Fit, error) {
	t, err := FitTemperature(logits, labels, k)
	if err != nil {
		return nil, err
	}
	before, err := Score(Scale(logits, k, 1), labels, k)
	if err != nil {
		return nil, err
	}
	calibrated := Scale(logits, k, t)
	after, err := Score(calibrated, labels, k)
	if err != nil {
		return nil, err
	}
	reject, err := ChooseThreshold(ScoreLogOdds, calibrated, k, DefaultAccept)
	if err != nil {
		return nil, err
	}
	return &Fit{Temperature: t, Split: split, Images: len(labels), Before: before, After: after, Reject: reject}, nil
}
