package metrics

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// Confusion is a confusion matrix: Counts[t][p] is the number of samples of
// true class t predicted as class p, in the order of Classes.
type Confusion struct {
	Classes []string
	Counts  [][]int64
}

// NewConfusion counts the rows. Every row's classes must be in range; the
// predictions reader guarantees it.
func NewConfusion(classes []string, rows []Row) *Confusion {
	k := len(classes)
	cm := &Confusion{Classes: classes, Counts: make([][]int64, k)}
	for i := range cm.Counts {
		cm.Counts[i] = make([]int64, k)
	}
	for _, r := range rows {
		cm.Counts[r.True][r.Pred]++
	}
	return cm
}

// RowSum is the number of samples whose true class is t (its support).
func (cm *Confusion) RowSum(t int) int64 {
	var s int64
	for _, n := range cm.Counts[t] {
		s += n
	}
	return s
}

// ColSum is the number of samples predicted as class p.
func (cm *Confusion) ColSum(p int) int64 {
	var s int64
	for t := range cm.Counts {
		s += cm.Counts[t][p]
	}
	return s
}

// Total is the number of samples.
func (cm *Confusion) Total() int64 {
	var s int64
	for t := range cm.Counts {
		s += cm.RowSum(t)
	}
	return s
}

// Normalized divides each row by its sum, like scikit-learn's
// confusion_matrix(normalize="true"); a class with no samples gets a row of 0.
func (cm *Confusion) Normalized() [][]float64 {
	out := make([][]float64, len(cm.Counts))
	for t, row := range cm.Counts {
		out[t] = make([]float64, len(row))
		sum := float64(cm.RowSum(t))
		for p, n := range row {
			out[t][p] = ratio(float64(n), sum)
		}
	}
	return out
}

// Pair is one off-diagonal cell of the confusion matrix.
type Pair struct {
	True  string `json:"true"`
	Pred  string `json:"pred"`
	Count int64  `json:"count"`
	// Rate is Count over the true class's support: how often that class is
	// mistaken for Pred.
	Rate float64 `json:"rate"`
}

// MostConfused returns up to n off-diagonal cells with at least one sample,
// most frequent first (ties: higher rate, then label order).
func (cm *Confusion) MostConfused(n int) []Pair {
	type cell struct {
		t, p  int
		count int64
		rate  float64
	}
	var cells []cell
	for t, row := range cm.Counts {
		sum := float64(cm.RowSum(t))
		for p, c := range row {
			if t != p && c > 0 {
				cells = append(cells, cell{t, p, c, ratio(float64(c), sum)})
			}
		}
	}
	slices.SortStableFunc(cells, func(a, b cell) int {
		return cmp.Or(cmp.Compare(b.count, a.count), cmp.Compare(b.rate, a.rate))
	})
	pairs := make([]Pair, 0, min(n, len(cells)))
	for _, c := range cells[:min(n, len(cells))] {
		pairs = append(pairs, Pair{cm.Classes[c.t], cm.Classes[c.p], c.count, c.rate})
	}
	return pairs
}

// WriteCSV writes the matrix twice in one table: first column "matrix" is
// "counts" or "row_normalized", then the true class, then one column per
// predicted class. One header and a fixed width keep it readable both by a
// spreadsheet and by a CSV parser.
func (cm *Confusion) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	header := append([]string{"matrix", "true"}, cm.Classes...)
	if err := cw.Write(header); err != nil {
		return err
	}
	for t, row := range cm.Counts {
		rec := []string{"counts", cm.Classes[t]}
		for _, n := range row {
			rec = append(rec, strconv.FormatInt(n, 10))
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	for t, row := range cm.Normalized() {
		rec := []string{"row_normalized", cm.Classes[t]}
		for _, v := range row {
			rec = append(rec, strconv.FormatFloat(v, 'g', -1, 64))
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("confusion matrix CSV: %w", err)
	}
	return nil
}
