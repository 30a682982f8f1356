package dataset

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"testing"
)

func TestDisplayName(t *testing.T) {
	tests := []struct {
		in, want string
		odd      bool
	}{
		{"cat.jpg", "cat.jpg", false},
		{"café.jpg", "café.jpg", false},
		{"bad\xffname.jpg", `bad\xffname.jpg`, true},
		{"new\nline.jpg", `new\x0aline.jpg`, true},
		{"back\\slash\x01", `back\\slash\x01`, true},
		{"bidi\u202e.jpg", `bidi\u202e.jpg`, true},
	}
	for _, tt := range tests {
		got, odd := displayName(tt.in)
		if got != tt.want || odd != tt.odd {
			t.Errorf("displayName(%q) = %q, %v; want %q, %v", tt.in, got, odd, tt.want, tt.odd)
		}
	}
}

func TestParseFractions(t *testing.T) {
	tests := []struct {
		in   string
		want Fractions
		ok   bool
	}{
		{"0.8,0.1,0.1", Fractions{0.8, 0.1, 0.1}, true},
		{" 0.7, 0.3 ,0", Fractions{0.7, 0.3, 0}, true},
		{"1,0,0", Fractions{1, 0, 0}, true},
		{"0.8,0.1", Fractions{}, false},
		{"0.8,0.1,0.2", Fractions{}, false},
		{"0,0.5,0.5", Fractions{}, false},
		{"1.2,-0.1,-0.1", Fractions{}, false},
		{"a,b,c", Fractions{}, false},
		{"NaN,0,0", Fractions{}, false},
	}
	for _, tt := range tests {
		got, err := ParseFractions(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseFractions(%q) = %v, %v", tt.in, got, err)
		}
	}
}

// TestDrawSplitShares checks that the seeded hash gives each split its
// share and that seeds give independent draws.
func TestDrawSplitShares(t *testing.T) {
	fr := Fractions{Train: 0.7, Val: 0.2, Test: 0.1}
	const n = 20000
	counts := map[string]int{}
	same := 0
	for i := range n {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(i))
		sha := sha256.Sum256(b[:])
		s := drawSplit(1, sha, fr)
		counts[s]++
		if drawSplit(2, sha, fr) == s {
			same++
		}
	}
	for split, share := range map[string]float64{Train: 0.7, Val: 0.2, Test: 0.1} {
		if got := float64(counts[split]) / n; math.Abs(got-share) > 0.015 {
			t.Errorf("%s share %.3f, want %.2f", split, got, share)
		}
	}
	// Independent seeds agree with probability 0.7²+0.2²+0.1² = 0.54.
	if agree := float64(same) / n; math.Abs(agree-0.54) > 0.02 {
		t.Errorf("seeds 1 and 2 agree on %.3f of files, want about 0.54", agree)
	}
	if drawSplit(1, [32]byte{}, Fractions{Train: 1}) != Train {
		t.Error("train share 1 must put everything in train")
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{10: "10 bytes", 300 << 10: "300 KB", 3 << 20: "3.0 MB", 5 << 30: "5.0 GB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
