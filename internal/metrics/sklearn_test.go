package metrics

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/xcept/xcept/internal/testenv"
)

// sklearnCase is one entry of testdata/cases.json (see sklearn_cases.py).
type sklearnCase struct {
	Name    string      `json:"name"`
	Classes []string    `json:"classes"`
	YTrue   []int       `json:"y_true"`
	YPred   []int       `json:"y_pred"`
	Probs   [][]float64 `json:"probs"`
}

func (c sklearnCase) rows() []Row {
	rows := make([]Row, len(c.YTrue))
	for i := range rows {
		rows[i] = Row{True: c.YTrue[i], Pred: c.YPred[i]}
		if c.Probs != nil {
			rows[i].Probs = c.Probs[i]
		}
	}
	return rows
}

// sklearnAnswer is what scikit-learn says about a case.
type sklearnAnswer struct {
	Name        string             `json:"name"`
	Report      json.RawMessage    `json:"report"`
	Text        string             `json:"text"`
	TextDigits4 string             `json:"text_digits_4"`
	Confusion   [][]int64          `json:"confusion"`
	Normalized  [][]float64        `json:"normalized"`
	TopK        map[string]float64 `json:"top_k"`
}

func loadCases(t *testing.T) []sklearnCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []sklearnCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	return cases
}

// sklearnAnswers runs the reference script live, so the expectations are the
// installed scikit-learn's, never a stale copy.
func sklearnAnswers(t *testing.T) map[string]sklearnAnswer {
	t.Helper()
	py := testenv.Python(t)
	cmd := exec.Command(py, "sklearn_cases.py", "reference", "cases.json")
	cmd.Dir = "testdata"
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sklearn_cases.py reference: %v\n%s", err, stderr.String())
	}
	var answers []sklearnAnswer
	if err := json.Unmarshal(out, &answers); err != nil {
		t.Fatal(err)
	}
	byName := map[string]sklearnAnswer{}
	for _, a := range answers {
		byName[a.Name] = a
	}
	return byName
}

const tolerance = 1e-9

func TestMatchesScikitLearn(t *testing.T) {
	answers := sklearnAnswers(t)
	for _, c := range loadCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			want, ok := answers[c.Name]
			if !ok {
				t.Fatalf("no scikit-learn answer for %s", c.Name)
			}
			cm := NewConfusion(c.Classes, c.rows())
			rep := NewReport(cm)

			if got := rep.Text(2); got != want.Text {
				t.Errorf("report text differs from scikit-learn's\n got:\n%s\nwant:\n%s", got, want.Text)
			}
			if got := rep.Text(4); got != want.TextDigits4 {
				t.Errorf("report text (digits=4) differs\n got:\n%s\nwant:\n%s", got, want.TextDigits4)
			}
			compareReportDicts(t, rep, want.Report)
			compareMatrices(t, cm, want)
			for ks, wantAcc := range want.TopK {
				k, _ := strconv.Atoi(ks)
				got, ok := TopK(c.rows(), k)
				if !ok || math.Abs(got-wantAcc) > tolerance {
					t.Errorf("top-%d accuracy = %v (ok=%v), scikit-learn %v", k, got, ok, wantAcc)
				}
			}
		})
	}
}

// compareReportDicts checks our JSON against output_dict=True key by key
// (through generic maps, so a missing or extra key fails too).
func compareReportDicts(t *testing.T, rep *Report, want json.RawMessage) {
	t.Helper()
	ours, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var got, exp map[string]any
	if err := json.Unmarshal(ours, &got); err != nil {
		t.Fatalf("our report JSON: %v\n%s", err, ours)
	}
	if err := json.Unmarshal(want, &exp); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(exp) {
		t.Errorf("report has %d keys, scikit-learn %d", len(got), len(exp))
	}
	for key, ev := range exp {
		gv, ok := got[key]
		if !ok {
			t.Errorf("report lacks key %q", key)
			continue
		}
		switch ev := ev.(type) {
		case float64:
			if g, _ := gv.(float64); math.Abs(g-ev) > tolerance {
				t.Errorf("%s = %v, scikit-learn %v", key, gv, ev)
			}
		case map[string]any:
			gm, _ := gv.(map[string]any)
			if len(gm) != len(ev) {
				t.Errorf("%s has keys %v, scikit-learn %v", key, gm, ev)
			}
			for field, want := range ev {
				if g, _ := gm[field].(float64); math.Abs(g-want.(float64)) > tolerance {
					t.Errorf("%s %s = %v, scikit-learn %v", key, field, gm[field], want)
				}
			}
		}
	}
	// The key order must be scikit-learn's too: classes, then the summaries.
	var back Report
	if err := json.Unmarshal(ours, &back); err != nil {
		t.Fatal(err)
	}
	for i, c := range rep.Classes {
		if back.Classes[i] != c {
			t.Fatalf("class keys out of order: %v", back.Classes)
		}
	}
}

func compareMatrices(t *testing.T, cm *Confusion, want sklearnAnswer) {
	t.Helper()
	norm := cm.Normalized()
	for i := range want.Confusion {
		for j := range want.Confusion[i] {
			if cm.Counts[i][j] != want.Confusion[i][j] {
				t.Errorf("confusion[%d][%d] = %d, scikit-learn %d", i, j, cm.Counts[i][j], want.Confusion[i][j])
			}
			if math.Abs(norm[i][j]-want.Normalized[i][j]) > tolerance {
				t.Errorf("normalized[%d][%d] = %v, scikit-learn %v", i, j, norm[i][j], want.Normalized[i][j])
			}
		}
	}
}

// TestPairwiseSumMatchesNumpyOrder pins the summation order that makes
// averages bit-identical to numpy's: a naive loop differs here.
func TestPairwiseSumMatchesNumpyOrder(t *testing.T) {
	a := make([]float64, 300)
	naive := 0.0
	for i := range a {
		a[i] = 1.0 / float64(i+3)
		naive += a[i]
	}
	// numpy.sum(1.0 / np.arange(3, 303)) in float64.
	const numpy = 4.789297397713862
	if got := pairwiseSum(a); got != numpy {
		t.Errorf("pairwiseSum = %.17g, numpy %.17g (naive loop %.17g)", got, numpy, naive)
	}
}
