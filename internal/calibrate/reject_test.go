package calibrate

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestThresholdAcceptsTheAskedShare(t *testing.T) {
	scores := make([]float64, 200)
	rng := rand.New(rand.NewPCG(5, 5))
	for i := range scores {
		scores[i] = rng.Float64()
	}
	for _, accept := range []float64{0.5, 0.9, 0.95, 1} {
		r, err := Threshold(scores, accept)
		if err != nil {
			t.Fatal(err)
		}
		if r.Accepted < accept || r.Accepted > accept+1.0/200+1e-12 {
			t.Errorf("accept %v: threshold %v accepts %v", accept, r.Threshold, r.Accepted)
		}
	}
	if _, err := Threshold(scores, 0); err == nil {
		t.Error("an acceptance rate of 0 must be refused")
	}
	if _, err := Threshold(nil, 0.9); err == nil {
		t.Error("no scores must be refused")
	}
}

func TestAUROC(t *testing.T) {
	cases := []struct {
		known, unknown []float64
		want           float64
	}{
		{[]float64{0.9, 0.8}, []float64{0.1, 0.2}, 1},
		{[]float64{0.1, 0.2}, []float64{0.9, 0.8}, 0},
		{[]float64{0.5, 0.5}, []float64{0.5}, 0.5},
		// Pairs: (0.9>0.6) (0.9>0.3) (0.4<0.6) (0.4>0.3): 3 of 4.
		{[]float64{0.9, 0.4}, []float64{0.6, 0.3}, 0.75},
		// A tie counts half: (0.6=0.6) → 0.5, (0.6>0.2) → 1: 0.75.
		{[]float64{0.6}, []float64{0.6, 0.2}, 0.75},
	}
	for _, c := range cases {
		got, err := AUROC(c.known, c.unknown)
		if err != nil || math.Abs(got-c.want) > 1e-12 {
			t.Errorf("AUROC(%v, %v) = %v, %v; want %v", c.known, c.unknown, got, err, c.want)
		}
	}
	if _, err := AUROC(nil, []float64{1}); err == nil {
		t.Error("no known scores must be refused")
	}
}
