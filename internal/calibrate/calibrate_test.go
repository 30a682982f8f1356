package calibrate

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/xcept/xcept/internal/testenv"
)

// synthetic draws n rows of k logits, spread so that softmax(z) is
// overconfident, and labels drawn from softmax(z / trueT).
func synthetic(seed uint64, n, k int, spread, trueT float64) ([]float32, []int32) {
	rng := rand.New(rand.NewPCG(seed, 1))
	logits := make([]float32, n*k)
	labels := make([]int32, n)
	for i := range n {
		for j := range k {
			logits[i*k+j] = float32(rng.NormFloat64() * spread)
		}
		p := Scale(logits[i*k:(i+1)*k], k, trueT)
		u, acc := rng.Float64(), 0.0
		labels[i] = int32(k - 1)
		for j, q := range p {
			if acc += float64(q); u < acc {
				labels[i] = int32(j)
				break
			}
		}
	}
	return logits, labels
}

// TestAgreesWithPythonReference: ECE and NLL equal the reference
// (testdata/reference.py: scikit-learn's log_loss, Guo et al.'s ECE written
// out, SciPy's bounded minimiser for T) on the same probabilities to 1e-6.
func TestAgreesWithPythonReference(t *testing.T) {
	py := testenv.Python(t)
	cases := []struct {
		name          string
		seed          uint64
		n, k          int
		spread, trueT float64
	}{
		{"overconfident", 1, 600, 5, 4, 2.5},
		{"underconfident", 2, 400, 3, 0.5, 0.6},
		{"two classes", 3, 300, 2, 3, 1.7},
		{"many classes", 4, 200, 40, 2, 1.3},
	}
	type input struct {
		K      int       `json:"k"`
		Logits []float32 `json:"logits"`
		Labels []int32   `json:"labels"`
		Probs  []float32 `json:"probs"`
	}
	inputs := make([]input, len(cases))
	for i, c := range cases {
		logits, labels := synthetic(c.seed, c.n, c.k, c.spread, c.trueT)
		inputs[i] = input{K: c.k, Logits: logits, Labels: labels, Probs: Scale(logits, c.k, 1)}
	}
	in, err := json.Marshal(inputs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join("testdata", "reference.py"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reference.py: %v\n%s", err, stderr.String())
	}
	var wants []struct{ ECE, NLL, Temperature float64 }
	if err := json.Unmarshal(out, &wants); err != nil || len(wants) != len(cases) {
		t.Fatalf("reference.py answered %d cases (%v), want %d", len(wants), err, len(cases))
	}
	for i, c := range cases {
		in, want := inputs[i], wants[i]
		ece, err := ECE(in.Probs, in.Labels, c.k, Bins)
		if err != nil {
			t.Fatal(err)
		}
		nll, err := NLL(in.Probs, in.Labels, c.k)
		if err != nil {
			t.Fatal(err)
		}
		temp, err := FitTemperature(in.Logits, in.Labels, c.k)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: ECE %.6f NLL %.6f T %.6f (reference %.6f %.6f %.6f)", c.name, ece, nll, temp, want.ECE, want.NLL, want.Temperature)
		if math.Abs(ece-want.ECE) > 1e-6 || math.Abs(nll-want.NLL) > 1e-6 {
			t.Errorf("%s: ECE %.9f NLL %.9f, reference %.9f %.9f", c.name, ece, nll, want.ECE, want.NLL)
		}
		if math.Abs(temp-want.Temperature) > 1e-5*want.Temperature {
			t.Errorf("%s: T %.9f, reference %.9f", c.name, temp, want.Temperature)
		}
	}
}

func TestFitRecoversTheTemperatureAndLowersECE(t *testing.T) {
	logits, labels := synthetic(7, 20000, 4, 4, 2)
	fit, err := FitSplit("val", logits, labels, 4)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(fit.Temperature-2) > 0.1 {
		t.Errorf("T = %.3f, labels were drawn at T = 2", fit.Temperature)
	}
	if !(fit.After.ECE < fit.Before.ECE/3 && fit.After.NLL < fit.Before.NLL) {
		t.Errorf("before ECE %.4f NLL %.4f, after %.4f %.4f: calibration must lower both", fit.Before.ECE, fit.Before.NLL, fit.After.ECE, fit.After.NLL)
	}
	if fit.Before.Accuracy != fit.After.Accuracy {
		t.Errorf("accuracy %v → %v: a temperature never changes the top class", fit.Before.Accuracy, fit.After.Accuracy)
	}
}

func TestFitClampsSeparableSplits(t *testing.T) {
	// Every row right by a wide margin: the NLL falls as T → 0.
	logits := []float32{5, 0, 0, 5, 5, 0}
	if got, _ := FitTemperature(logits, []int32{0, 1, 0}, 2); got != MinTemperature {
		t.Errorf("T = %v, want the floor %v", got, MinTemperature)
	}
	// Every row wrong: the NLL falls as T → ∞.
	if got, _ := FitTemperature(logits, []int32{1, 0, 1}, 2); got != MaxTemperature {
		t.Errorf("T = %v, want the ceiling %v", got, MaxTemperature)
	}
}

func TestUncalibrateUndoesATemperature(t *testing.T) {
	logits, _ := synthetic(3, 50, 6, 3, 1)
	raw := Scale(logits, 6, 1)
	back := Uncalibrate(Scale(logits, 6, 2.7), 6, 2.7)
	for i := range raw {
		if math.Abs(float64(raw[i]-back[i])) > 1e-5 {
			t.Fatalf("value %d: %v, want %v", i, back[i], raw[i])
		}
	}
}

func TestReliabilityBins(t *testing.T) {
	// Confidences 0.85 (right), 0.85 (wrong), 0.65 (right).
	probs := []float32{0.85, 0.15, 0.15, 0.85, 0.65, 0.35}
	bins, err := Reliability(probs, []int32{0, 0, 0}, 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	if bins[8].Count != 2 || bins[8].Accuracy != 0.5 || bins[6].Count != 1 || bins[6].Accuracy != 1 {
		t.Errorf("bins %+v", bins)
	}
	want := (2.0/3)*math.Abs(0.5-0.85) + (1.0/3)*math.Abs(1-0.65)
	if got := ECEOf(bins); math.Abs(got-want) > 1e-6 {
		t.Errorf("ECE %v, want %v", got, want)
	}
	if _, err := ECE(probs, []int32{0, 2, 0}, 2, 15); err == nil {
		t.Error("a label outside the classes must be refused")
	}
	if _, err := NLL(probs[:5], []int32{0, 0, 0}, 2); err == nil {
		t.Error("a ragged probability matrix must be refused")
	}
}
