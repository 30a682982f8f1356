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

func TestMeasureOOD(t *testing.T) {
	// Known confidences 0.9, 0.8, 0.6; OOD 0.7, 0.5: pairs known > OOD 5 of 6.
	known := []float32{0.9, 0.1, 0.2, 0.8, 0.6, 0.4}
	ood := []float32{0.3, 0.7, 0.5, 0.5}
	r := &Rejection{Score: ScoreConfidence, Accept: 0.95, Threshold: 0.65}
	o, err := MeasureOOD(known, ood, 2, r)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(o.AUROC-5.0/6) > 1e-12 || math.Abs(o.KnownAccepted-2.0/3) > 1e-12 || o.OODAccepted != 0.5 || o.Known != 3 || o.Images != 2 || o.Threshold != 0.65 {
		t.Errorf("%+v", o)
	}
	if _, err := MeasureOOD(known, nil, 2, r); err == nil {
		t.Error("no OOD images must be refused")
	}
	if _, err := MeasureOOD(known, ood, 2, nil); err == nil {
		t.Error("no threshold must be refused")
	}
}

func TestMeasureTTA(t *testing.T) {
	labels := []int32{0, 1}
	plain := []float32{0.4, 0.6, 0.3, 0.7}   // row 0 wrong
	flipped := []float32{0.8, 0.2, 0.1, 0.9} // both right
	tta, err := MeasureTTA(labels, 2, plain, map[string][]float32{"hflip": flipped})
	if err != nil {
		t.Fatal(err)
	}
	if tta.Without.Accuracy != 0.5 || tta.With.Accuracy != 1 || len(tta.Views) != 2 || tta.Views[1] != "hflip" {
		t.Errorf("%+v", tta)
	}
	// Mean rows (0.6, 0.4) and (0.2, 0.8): NLL = -(ln 0.6 + ln 0.8)/2.
	if want := -(math.Log(0.6) + math.Log(0.8)) / 2; math.Abs(tta.With.NLL-want) > 1e-6 {
		t.Errorf("NLL with TTA %v, want %v", tta.With.NLL, want)
	}
}

// TestLogOddsRanksSaturatedConfidence: at a sharp temperature the top
// probabilities of confident rows all round to 1 in float32, so the
// confidence cannot rank them and a threshold on it accepts them all; the
// log-odds still ranks them, and its threshold accepts the share asked.
func TestLogOddsRanksSaturatedConfidence(t *testing.T) {
	var logits []float32
	for i := range 20 {
		logits = append(logits, 1+float32(i)*0.2, 0, -0.5) // gaps 1 to 4.8
	}
	probs := Scale(logits, 3, 0.05)
	conf := Confidences(probs, 3)
	odds, err := ScoresOf(ScoreLogOdds, probs, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range conf {
		if conf[i] != 1 {
			t.Fatalf("row %d: confidence %v, want it rounded to 1 (the case this score is for)", i, conf[i])
		}
		// log(p/(1-p)) = gap/T for two classes far apart: here the gap to the runner-up dominates.
		if want := float64(logits[3*i]) / 0.05; math.Abs(odds[i]-want) > 1e-3*want {
			t.Errorf("row %d: log-odds %v, want about %v", i, odds[i], want)
		}
		if i > 0 && odds[i] <= odds[i-1] {
			t.Errorf("row %d: log-odds %v not above row %d's %v", i, odds[i], i-1, odds[i-1])
		}
	}
	byConf, _ := Threshold(conf, 0.5)
	if byConf.Accepted != 1 {
		t.Errorf("the confidence threshold accepts %v; the test expects the saturated 1 to accept all", byConf.Accepted)
	}
	r, err := ChooseThreshold(ScoreLogOdds, probs, 3, 0.5)
	if err != nil || r.Accepted != 0.5 || r.Score != ScoreLogOdds || r.Confidence != 1/(1+math.Exp(-r.Threshold)) {
		t.Errorf("log-odds threshold %+v, %v: want exactly half accepted", r, err)
	}
	unknown := 0
	for i := range 20 {
		if r.Unknown(probs[3*i : 3*i+3]) {
			unknown++
		}
	}
	if unknown != 10 {
		t.Errorf("%d of 20 unknown, want 10", unknown)
	}
	// Every other probability 0: +Inf, and a threshold that JSON can hold.
	inf, _ := ChooseThreshold(ScoreLogOdds, []float32{1, 0, 0, 1, 0, 0}, 3, 0.95)
	if LogOdds([]float32{1, 0, 0}) != math.Inf(1) || inf.Threshold != math.MaxFloat64 || inf.Accepted != 1 {
		t.Errorf("all-zero rest: %+v", inf)
	}
	if _, err := ChooseThreshold("energy", probs, 3, 0.5); err == nil {
		t.Error("an unknown score must be refused")
	}
	if (&Rejection{Score: "energy"}).Unknown(probs[:3]) != true {
		t.Error("a rule with an unknown score must answer unknown, not accept")
	}
}
