package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/xcept/xcept/internal/testenv"
)

// blobs makes n images of k classes in dim dimensions: class means spread
// apart by sep, unit noise, and a share flip of the labels moved to
// another class at random. It returns the features, the given labels and
// which images were flipped.
func blobs(seed uint64, n, k, dim int, sep, flip float64) ([]float32, []int, []bool) {
	rng := rand.New(rand.NewPCG(seed, 1))
	means := make([]float64, k*dim)
	for i := range means {
		means[i] = rng.NormFloat64() * sep
	}
	feats := make([]float32, n*dim)
	labels := make([]int, n)
	flipped := make([]bool, n)
	for i := range labels {
		c := i % k
		for j := 0; j < dim; j++ {
			feats[i*dim+j] = float32(means[c*dim+j] + rng.NormFloat64())
		}
		labels[i] = c
		if rng.Float64() < flip {
			labels[i] = (c + 1 + rng.IntN(k-1)) % k
			flipped[i] = true
		}
	}
	return feats, labels, flipped
}

// TestAgreesWithCleanlab: on the same out-of-fold probabilities, the Go
// confident learning and cleanlab 2.9's find_label_issues (default
// filter_by, ranked by self confidence) find the same issues (≥ 95%
// overlap; in fact all) in the same order among the first 20, with the
// same thresholds and confident joint.
func TestAgreesWithCleanlab(t *testing.T) {
	py := testenv.Python(t)
	type input struct {
		K      int       `json:"k"`
		Labels []int     `json:"labels"`
		Probs  []float64 `json:"probs"`
	}
	cases := []struct {
		name                 string
		seed                 uint64
		n, k, dim            int
		sep, flip            float64
		emptyClass, lopsided bool
	}{
		{"ten classes, 5% flipped", 1, 1200, 10, 24, 0.45, 0.05, false, false},
		{"three classes, 15% flipped", 2, 600, 3, 8, 0.5, 0.15, false, false},
		{"two classes, hard", 3, 400, 2, 6, 0.3, 0.1, false, false},
		{"a class nobody is labelled with", 4, 500, 5, 10, 0.6, 0.08, true, false},
		{"one big class", 5, 700, 4, 10, 0.5, 0.1, false, true},
	}
	var inputs []input
	var ours []*Confident
	var floats [][][]float64
	for _, c := range cases {
		feats, labels, _ := blobs(c.seed, c.n, c.k, c.dim, c.sep, c.flip)
		if c.emptyClass {
			for i, l := range labels {
				if l == c.k-1 {
					labels[i] = 0
				}
			}
		}
		if c.lopsided {
			for i := range labels {
				if i%3 != 0 && labels[i] != 0 && i%5 == 0 {
					labels[i] = 0
				}
			}
		}
		oof, err := OutOfFold(context.Background(), feats, c.dim, labels, c.k, 5, DefaultL2, c.seed)
		if err != nil {
			t.Fatal(err)
		}
		got, err := FindLabelIssues(labels, oof.Probs, c.k)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, input{K: c.k, Labels: labels, Probs: oof.Probs})
		ours = append(ours, got)
		counts := make([]int, c.k)
		for _, l := range labels {
			counts[l]++
		}
		_, f := confidentJoint(labels, oof.Probs, c.k, counts)
		floats = append(floats, f)
	}
	in, err := json.Marshal(inputs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join("testdata", "cleanlab_reference.py"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cleanlab_reference.py: %v\n%s", err, stderr.String())
	}
	var wants []struct {
		Issues     []int
		Thresholds []float64
		Joint      [][]int
	}
	if err := json.Unmarshal(out, &wants); err != nil || len(wants) != len(cases) {
		t.Fatalf("cleanlab_reference.py answered %d cases (%v), want %d", len(wants), err, len(cases))
	}
	for i, c := range cases {
		got, want := ours[i], wants[i]
		if len(want.Issues) == 0 {
			t.Fatalf("%s: cleanlab found no issues: the case tests nothing", c.name)
		}
		common := 0
		for _, j := range got.Issues {
			if slices.Contains(want.Issues, j) {
				common++
			}
		}
		overlap := float64(common) / float64(max(len(got.Issues), len(want.Issues)))
		top := min(20, len(want.Issues), len(got.Issues))
		t.Logf("%s: %d issues (cleanlab %d), overlap %.3f", c.name, len(got.Issues), len(want.Issues), overlap)
		if overlap < 0.95 {
			t.Errorf("%s: overlap %.3f < 0.95: ours %v, cleanlab %v", c.name, overlap, got.Issues, want.Issues)
		}
		if !slices.Equal(got.Issues[:top], want.Issues[:top]) {
			t.Errorf("%s: first %d differ:\n ours     %v\n cleanlab %v", c.name, top, got.Issues[:top], want.Issues[:top])
		}
		for k := range want.Thresholds {
			if math.Abs(got.Thresholds[k]-want.Thresholds[k]) > 1e-12 {
				t.Errorf("%s: threshold %d = %v, cleanlab %v", c.name, k, got.Thresholds[k], want.Thresholds[k])
			}
		}
		// The joint's rows are rounded keeping their totals, moving the
		// cells with the largest rounding residues; numpy's argsort orders
		// tied residues as its SIMD kernel happens to (AVX-512 here), so
		// rows may differ only between cells whose unrounded values tie.
		for r := range want.Joint {
			var tied []float64
			gs, ws := 0, 0
			for j := range want.Joint[r] {
				gs, ws = gs+got.Joint[r][j], ws+want.Joint[r][j]
				if got.Joint[r][j] != want.Joint[r][j] {
					tied = append(tied, floats[i][r][j])
				}
			}
			if gs != ws || (len(tied) > 0 && slices.Min(tied) != slices.Max(tied)) {
				t.Errorf("%s: confident joint row %d = %v, cleanlab %v (calibrated %v)", c.name, r, got.Joint[r], want.Joint[r], floats[i][r])
			} else if len(tied) > 0 {
				t.Logf("%s: confident joint row %d: %d cells tied at %v rounded the other way", c.name, r, len(tied), tied[0])
			}
		}
	}
}

// TestFindsFlippedLabels: with separable classes, the out-of-fold heads and
// confident learning find most flipped labels and little else.
func TestFindsFlippedLabels(t *testing.T) {
	feats, labels, flipped := blobs(7, 1000, 8, 16, 1.2, 0.05)
	oof, err := OutOfFold(context.Background(), feats, 16, labels, 8, 5, DefaultL2, 7)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := FindLabelIssues(labels, oof.Probs, 8)
	if err != nil {
		t.Fatal(err)
	}
	s := Score(cl.Issues, flipped)
	t.Logf("%d flipped, %d issues: precision %.3f recall %.3f", s.Flipped, len(cl.Issues), s.Precision, s.Recall)
	if s.Precision < 0.8 || s.Recall < 0.8 {
		t.Errorf("precision %.3f, recall %.3f: want both ≥ 0.8", s.Precision, s.Recall)
	}
}

func TestStratifiedFolds(t *testing.T) {
	labels := make([]int, 103)
	for i := range labels {
		labels[i] = i % 3
	}
	f := StratifiedFolds(labels, 3, 5, 1)
	counts := map[[2]int]int{}
	for i, g := range f {
		counts[[2]int{g, labels[i]}]++
	}
	for g := 0; g < 5; g++ {
		for c := 0; c < 3; c++ {
			if n := counts[[2]int{g, c}]; n < 6 || n > 7 {
				t.Errorf("fold %d holds %d of class %c (want 6 or 7 of 34–35)", g, n, 'a'+c)
			}
		}
	}
	if !slices.Equal(f, StratifiedFolds(labels, 3, 5, 1)) {
		t.Error("the same seed dealt other folds")
	}
}

func TestRoundPreservingSum(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want []int
	}{
		// cleanlab.internal.util.round_preserving_sum's answers:
		{[]float64{0.5, 1.5, 2.5}, []int{0, 2, 2}}, // half to even; the sum 4.5 rounds to 4 too
		{[]float64{0.4, 0.4, 0.4}, []int{0, 0, 1}}, // sum 1.2 → 1: the largest residue goes up, ties the last
		{[]float64{2.6, 2.6, 2.8}, []int{2, 3, 3}}, // 9 rounded, sum 8: the one rounded most up comes down, ties the first
		{[]float64{3, 0, 7}, []int{3, 0, 7}},
	} {
		if got := roundPreservingSum(c.in); !slices.Equal(got, c.want) {
			t.Errorf("roundPreservingSum(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestFindLabelIssuesErrors(t *testing.T) {
	if _, err := FindLabelIssues([]int{0, 1}, []float64{1, 0, 0, 1}, 1); err == nil {
		t.Error("one class: no error")
	}
	if _, err := FindLabelIssues([]int{0, 1}, []float64{1, 0, 0}, 2); err == nil {
		t.Error("short probabilities: no error")
	}
	if _, err := FindLabelIssues([]int{0, 2}, []float64{1, 0, 0, 1}, 2); err == nil {
		t.Error("label out of range: no error")
	}
}
