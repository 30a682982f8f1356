// Package infer is what predict, explain and evaluate share: opening a
// run's model with its best weights, reading images the way prepare does,
// batching them, and ranking classes.
package infer

import (
	"cmp"
	"slices"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/run"
)

// Class is one class of a ranked prediction.
type Class struct {
	Index       int     `json:"index"`
	Name        string  `json:"class"`
	Probability float64 `json:"probability"`
}

// Top returns the k most probable classes of one row of probabilities,
// most probable first; equal probabilities keep label order, as
// metrics.Row.Ranked does, so predict and evaluate never disagree on a tie.
func Top(probs []float32, names []string, k int) []Class {
	idx := make([]int, len(probs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(probs[b], probs[a]) })
	k = max(0, min(k, len(idx)))
	out := make([]Class, k)
	for j, i := range idx[:k] {
		out[j] = Class{Index: i, Name: names[i], Probability: float64(probs[i])}
	}
	return out
}

// Rows splits a flat n×k probability matrix into n rows of float64, the
// form metrics.Row holds.
func Rows(probs []float32, n int) [][]float64 {
	if n == 0 {
		return nil
	}
	k := len(probs) / n
	out := make([][]float64, n)
	for i := range out {
		row := make([]float64, k)
		for j := range row {
			row[j] = float64(probs[i*k+j])
		}
		out[i] = row
	}
	return out
}

// OpenServing loads the run's inference-only SavedModel with the best
// checkpoint restored into it.
func OpenServing(r *run.Run, opts graph.SessionOptions) (*model.Model, error) {
	return openRestored(r, model.OpenServing, opts)
}

// OpenTrainer loads the run's trainer SavedModel (it has the explain
// signature) with the best checkpoint restored into it.
func OpenTrainer(r *run.Run, opts graph.SessionOptions) (*model.Model, error) {
	return openRestored(r, model.Open, opts)
}

func openRestored(r *run.Run, open func(string, graph.SessionOptions) (*model.Model, error), opts graph.SessionOptions) (*model.Model, error) {
	if err := r.NeedCheckpoint(run.Best, "to predict with"); err != nil {
		return nil, err
	}
	m, err := open(r.Info.Model, opts)
	if err != nil {
		return nil, err
	}
	if err := contract.CheckFit(m.Info.Fit(), r.Fit(), Refit); err != nil {
		m.Close()
		return nil, err
	}
	if err := r.Restore(m.Session, run.Best); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// Refit says what to do when a model does not fit the data it is run on.
const Refit = "evaluate a model with the data it was trained for"
