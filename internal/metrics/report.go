// Package metrics computes what xcept reports about a classifier: the
// confusion matrix, scikit-learn's classification report (same numbers, same
// text), top-k accuracy, the most confused pairs and CI gates, and reads and
// writes predictions files.
package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Scores are one line of a classification report.
type Scores struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1-score"`
	Support   int64   `json:"support"`
}

// Report is scikit-learn's classification_report for single-label
// classification, called with labels= and target_names= for every class (as
// xcept always does), so the "micro avg" line is always the accuracy.
type Report struct {
	Classes  []string
	PerClass []Scores
	Accuracy float64
	Macro    Scores
	Weighted Scores
}

// NewReport computes the report from a confusion matrix. Undefined ratios
// (no predictions of a class, no samples of it) are 0, as scikit-learn's
// default zero_division="warn" makes them.
func NewReport(cm *Confusion) *Report {
	k := len(cm.Classes)
	r := &Report{Classes: cm.Classes, PerClass: make([]Scores, k)}
	precision := make([]float64, k)
	recall := make([]float64, k)
	f1 := make([]float64, k)
	support := make([]float64, k)
	var correct, total int64
	for i := range k {
		tp := cm.Counts[i][i]
		trueSum := cm.RowSum(i)
		predSum := cm.ColSum(i)
		precision[i] = ratio(float64(tp), float64(predSum))
		recall[i] = ratio(float64(tp), float64(trueSum))
		// sklearn's F-beta from counts, (1+b²)tp / (b²·true + pred), not
		// from the rounded precision and recall: the last bit matters for
		// the text report's rounding.
		f1[i] = ratio(2*float64(tp), float64(trueSum)+float64(predSum))
		support[i] = float64(trueSum)
		r.PerClass[i] = Scores{precision[i], recall[i], f1[i], trueSum}
		correct += tp
		total += trueSum
	}
	r.Accuracy = ratio(float64(correct), float64(total))
	r.Macro = Scores{mean(precision), mean(recall), mean(f1), total}
	r.Weighted = Scores{
		weightedMean(precision, support),
		weightedMean(recall, support),
		weightedMean(f1, support),
		total,
	}
	return r
}

// ratio divides, giving 0 where the denominator is 0 (zero_division="warn").
func ratio(num, den float64) float64 {
	if den == 0 {
		return 0
	}
	return num / den
}

// mean is numpy's nanmean of a NaN-free array: a pairwise sum over the count.
func mean(a []float64) float64 {
	if len(a) == 0 {
		return 0
	}
	return pairwiseSum(a) / float64(len(a))
}

// weightedMean is numpy.average(a, weights=w); when every weight is 0,
// scikit-learn falls back to the unweighted mean.
func weightedMean(a, w []float64) float64 {
	scale := pairwiseSum(w)
	if scale == 0 {
		return mean(a)
	}
	products := make([]float64, len(a))
	for i := range a {
		products[i] = a[i] * w[i]
	}
	return pairwiseSum(products) / scale
}

// pairwiseSum adds like numpy's float reduction (eight accumulators in blocks
// of up to 128, halves above that), so averages agree with scikit-learn to
// the last bit and the rounded text never differs at a tie.
func pairwiseSum(a []float64) float64 {
	n := len(a)
	switch {
	case n < 8:
		s := 0.0
		for _, x := range a {
			s += x
		}
		return s
	case n <= 128:
		var r [8]float64
		copy(r[:], a[:8])
		i := 8
		for ; i < n-n%8; i += 8 {
			for j := range r {
				r[j] += a[i+j]
			}
		}
		s := ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
		for ; i < n; i++ {
			s += a[i]
		}
		return s
	default:
		half := n / 2
		half -= half % 8
		return pairwiseSum(a[:half]) + pairwiseSum(a[half:])
	}
}

// Text renders the report exactly as scikit-learn's classification_report
// prints it with the given number of digits (scikit-learn's default is 2).
func (r *Report) Text(digits int) string {
	const lastHeading = "weighted avg"
	width := max(utf8.RuneCountInString(lastHeading), digits)
	for _, c := range r.Classes {
		width = max(width, utf8.RuneCountInString(c))
	}
	// When no prediction is right, scikit-learn's true-positive counts start
	// as a float array and every support prints as a float ("33.0").
	floatSupport := r.Accuracy == 0
	var b strings.Builder
	b.WriteString(padLeft("", width) + " ")
	for _, h := range []string{"precision", "recall", "f1-score", "support"} {
		b.WriteString(" " + padLeft(h, 9))
	}
	b.WriteString("\n\n")
	for i, c := range r.Classes {
		writeScoresLine(&b, c, r.PerClass[i], width, digits, floatSupport)
	}
	b.WriteString("\n")
	// The accuracy line leaves precision and recall blank and prints the
	// micro-averaged F1, which equals the accuracy.
	b.WriteString(padLeft("accuracy", width) + " " + " " + padLeft("", 9) + " " + padLeft("", 9))
	b.WriteString(" " + padLeft(fixed(r.Accuracy, digits), 9))
	b.WriteString(" " + padLeft(supportText(r.Macro.Support, floatSupport), 9) + "\n")
	writeScoresLine(&b, "macro avg", r.Macro, width, digits, floatSupport)
	writeScoresLine(&b, lastHeading, r.Weighted, width, digits, floatSupport)
	return b.String()
}

func writeScoresLine(b *strings.Builder, name string, s Scores, width, digits int, floatSupport bool) {
	b.WriteString(padLeft(name, width) + " ")
	for _, v := range []float64{s.Precision, s.Recall, s.F1} {
		b.WriteString(" " + padLeft(fixed(v, digits), 9))
	}
	b.WriteString(" " + padLeft(supportText(s.Support, floatSupport), 9) + "\n")
}

func supportText(n int64, asFloat bool) string {
	if asFloat {
		return strconv.FormatInt(n, 10) + ".0"
	}
	return strconv.FormatInt(n, 10)
}

// fixed formats like Python's "{:.Nf}": both round the exact binary value
// correctly, so they agree digit for digit.
func fixed(v float64, digits int) string { return strconv.FormatFloat(v, 'f', digits, 64) }

// padLeft right-aligns s in width characters, counted in code points as
// Python's str.format counts them.
func padLeft(s string, width int) string {
	if n := utf8.RuneCountInString(s); n < width {
		return strings.Repeat(" ", width-n) + s
	}
	return s
}

// MarshalJSON writes the report as scikit-learn's output_dict=True: one key
// per class in label order, then "accuracy", "macro avg", "weighted avg";
// supports are floats there too.
func (r *Report) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, c := range r.Classes {
		if err := writeKeyScores(&b, c, r.PerClass[i]); err != nil {
			return nil, err
		}
		b.WriteByte(',')
	}
	b.WriteString(`"accuracy":` + jsonFloat(r.Accuracy) + ",")
	if err := writeKeyScores(&b, "macro avg", r.Macro); err != nil {
		return nil, err
	}
	b.WriteByte(',')
	if err := writeKeyScores(&b, "weighted avg", r.Weighted); err != nil {
		return nil, err
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func writeKeyScores(b *bytes.Buffer, key string, s Scores) error {
	k, err := json.Marshal(key)
	if err != nil {
		return err
	}
	fmt.Fprintf(b, `%s:{"precision":%s,"recall":%s,"f1-score":%s,"support":%s}`, k,
		jsonFloat(s.Precision), jsonFloat(s.Recall), jsonFloat(s.F1), jsonFloat(float64(s.Support)))
	return nil
}

// jsonFloat writes the shortest text that reads back as the same float, with
// a ".0" on whole numbers so that JSON readers keep them floats as Python does.
func jsonFloat(v float64) string {
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return s
}

// UnmarshalJSON reads what MarshalJSON wrote (or scikit-learn's dict).
func (r *Report) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("classification report: want a JSON object")
	}
	*r = Report{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if key == "accuracy" {
			if err := dec.Decode(&r.Accuracy); err != nil {
				return err
			}
			continue
		}
		var raw struct {
			Precision float64 `json:"precision"`
			Recall    float64 `json:"recall"`
			F1        float64 `json:"f1-score"`
			Support   float64 `json:"support"`
		}
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("classification report %q: %w", key, err)
		}
		s := Scores{raw.Precision, raw.Recall, raw.F1, int64(raw.Support)}
		switch key {
		case "macro avg":
			r.Macro = s
		case "weighted avg":
			r.Weighted = s
		default:
			r.Classes = append(r.Classes, key)
			r.PerClass = append(r.PerClass, s)
		}
	}
	_, err := dec.Token()
	return err
}
