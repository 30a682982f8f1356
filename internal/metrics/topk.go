package metrics

import (
	"cmp"
	"slices"
)

// Row is one evaluated sample: its true and predicted class indices, the
// image it came from (may be empty) and the predicted probability of every
// class (nil when unknown).
type Row struct {
	File  string
	True  int
	Pred  int
	Probs []float64
}

// Confidence is the probability given to the predicted class, or -1 when the
// row has no probabilities.
func (r Row) Confidence() float64 {
	if r.Probs == nil {
		return -1
	}
	return r.Probs[r.Pred]
}

// Argmax is the index of the largest value of row, the first of equals: the
// predicted class of a row of probabilities or logits.
func Argmax[T ~float32 | ~float64](row []T) int {
	best := 0
	for i, v := range row {
		if v > row[best] {
			best = i
		}
	}
	return best
}

// Ranked returns class indices from most to least probable. Equal
// probabilities keep label order, so the ranking never depends on sort
// internals.
func (r Row) Ranked() []int {
	idx := make([]int, len(r.Probs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(r.Probs[b], r.Probs[a]) })
	return idx
}

// HasProbs reports whether every row carries probabilities.
func HasProbs(rows []Row) bool {
	if len(rows) == 0 {
		return false
	}
	for _, r := range rows {
		if r.Probs == nil {
			return false
		}
	}
	return true
}

// TopK is the fraction of rows whose true class is among the k most probable
// classes. ok is false when some row has no probabilities. k larger than the
// number of classes counts every row as a hit.
func TopK(rows []Row, k int) (acc float64, ok bool) {
	if !HasProbs(rows) || k < 1 {
		return 0, false
	}
	hits := 0
	for _, r := range rows {
		if slices.Contains(r.Ranked()[:min(k, len(r.Probs))], r.True) {
			hits++
		}
	}
	return float64(hits) / float64(len(rows)), true
}
