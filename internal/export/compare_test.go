package export

import (
	"math"
	"testing"
)

func TestArgmax(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		name string
		v    []float32
		want int
	}{
		{"single", []float32{0.3}, 0},
		{"last", []float32{0.1, 0.2, 0.7}, 2},
		{"tie picks the first, as numpy", []float32{0.4, 0.4, 0.2}, 0},
		{"NaN wins, as numpy", []float32{0.9, nan, 0.1}, 1},
		{"first NaN wins", []float32{nan, 0.5, nan}, 0},
		{"negative", []float32{-3, -1, -2}, 1},
	}
	for _, tt := range tests {
		if got := argmax(tt.v); got != tt.want {
			t.Errorf("%s: argmax(%v) = %d, want %d", tt.name, tt.v, got, tt.want)
		}
	}
}

func TestCompare(t *testing.T) {
	nan := float32(math.NaN())
	ref := []float32{0.7, 0.2, 0.1 /**/, 0.1, 0.8, 0.1 /**/, 0.3, 0.3, 0.4 /**/, 0.5, 0.25, 0.25}
	tests := []struct {
		name string
		cand []float32
		want Agreement
	}{
		{"identical", ref, Agreement{Agreement: 1}},
		{"small drift", []float32{0.69, 0.21, 0.1, 0.1, 0.8, 0.1, 0.3, 0.3, 0.4, 0.5, 0.25, 0.25}, Agreement{Agreement: 1, MaxAbsDiff: 0.01}},
		{"one flip", []float32{0.7, 0.2, 0.1, 0.1, 0.8, 0.1, 0.45, 0.3, 0.25, 0.5, 0.25, 0.25},
			Agreement{Agreement: 0.75, Disagreements: 1, MaxAbsDiff: 0.15}},
		{"NaN is a difference of 1, never a match", []float32{0.7, 0.2, 0.1, 0.1, 0.8, 0.1, 0.3, 0.3, 0.4, nan, nan, nan},
			Agreement{Agreement: 0.75, Disagreements: 1, MaxAbsDiff: 1, NonFinite: 3}},
	}
	for _, tt := range tests {
		got, err := compare(ref, tt.cand, 4, 3)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got.Agreement != tt.want.Agreement || got.Disagreements != tt.want.Disagreements ||
			math.Abs(got.MaxAbsDiff-tt.want.MaxAbsDiff) > 1e-6 || got.NonFinite != tt.want.NonFinite {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestCompareRefusesMismatchedSizes(t *testing.T) {
	for _, c := range []struct{ ref, cand, n, k int }{{6, 6, 3, 3}, {6, 3, 2, 3}, {0, 0, 0, 3}, {6, 6, 2, 0}} {
		if _, err := compare(make([]float32, c.ref), make([]float32, c.cand), c.n, c.k); err == nil {
			t.Errorf("compare(%d, %d values, n=%d, k=%d) did not fail", c.ref, c.cand, c.n, c.k)
		}
	}
}

func TestAccuracy(t *testing.T) {
	probs := []float32{0.7, 0.3 /**/, 0.4, 0.6 /**/, 0.5, 0.5}
	if got := accuracy(probs, []int32{0, 1, 1}, 2); math.Abs(got-2.0/3) > 1e-12 {
		t.Errorf("accuracy = %v, want 2/3 (a tie counts for the first class)", got)
	}
	if got := accuracy(nil, nil, 2); got != 0 {
		t.Errorf("accuracy of nothing = %v", got)
	}
}
