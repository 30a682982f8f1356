package neardup

import (
	"math/rand/v2"
	"testing"
)

// TestFindKinds: copies (a small perturbation of another row) are found
// and named by labels and splits; distinct random rows are not.
func TestFindKinds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const dim = 64
	items := []Item{
		{"train", 0, "a"}, {"train", 0, "a-copy"}, // in class
		{"train", 1, "b"}, {"test", 1, "b-copy"}, // across splits
		{"val", 2, "c"}, {"train", 0, "c-copy"}, // across classes (and splits)
	}
	for i := 0; i < 40; i++ {
		items = append(items, Item{"train", i % 3, "distinct"})
	}
	feats := make([]float32, len(items)*dim)
	for i := range items {
		for j := 0; j < dim; j++ {
			feats[i*dim+j] = float32(rng.NormFloat64())
		}
	}
	for _, p := range [][2]int{{0, 1}, {2, 3}, {4, 5}} {
		for j := 0; j < dim; j++ {
			feats[p[1]*dim+j] = feats[p[0]*dim+j] + float32(0.05*rng.NormFloat64())
		}
	}
	pairs, err := Find(items, feats, dim, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	want := map[[2]int]string{{0, 1}: ReasonInClass, {2, 3}: ReasonAcrossSplits, {4, 5}: ReasonAcrossClasses}
	if len(pairs) != len(want) {
		t.Fatalf("found %d pairs, want %d: %+v", len(pairs), len(want), pairs)
	}
	for _, p := range pairs {
		if r, ok := want[[2]int{p.A, p.B}]; !ok || r != p.Reason {
			t.Errorf("pair %+v: want reason %q", p, r)
		}
		if p.Similarity < 0.95 || p.Similarity > 1+1e-9 {
			t.Errorf("pair %+v: similarity out of [0.95, 1]", p)
		}
	}
	for i := 1; i < len(pairs); i++ {
		if pairs[i].Similarity > pairs[i-1].Similarity {
			t.Errorf("pairs not most similar first: %+v", pairs)
		}
	}
}

// TestCentringIgnoresWhatAllShare: rows that share a large common
// component are not near-duplicates once it is removed.
func TestCentringIgnoresWhatAllShare(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const dim, n = 32, 30
	feats := make([]float32, n*dim)
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{"train", 0, "x"}
		for j := 0; j < dim; j++ {
			feats[i*dim+j] = 10 + float32(rng.NormFloat64()) // raw cosine ≈ 0.99 for every pair
		}
	}
	pairs, err := Find(items, feats, dim, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	if len(pairs) != 0 {
		t.Errorf("%d pairs of distinct rows reported: %+v", len(pairs), pairs[0])
	}
}

func TestFindErrors(t *testing.T) {
	if _, err := Find([]Item{{}}, []float32{1, 2}, 3, 0.9); err == nil {
		t.Error("short features: no error")
	}
	if _, err := Find([]Item{{}}, []float32{1}, 1, 0); err == nil {
		t.Error("threshold 0: no error")
	}
}
