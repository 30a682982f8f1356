package dataset

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// seededHash maps a file's content to 64 bits under the seed, for one
// purpose ("split" or "order"), so the two uses are independent.
func seededHash(seed int64, purpose string, sha [32]byte) uint64 {
	h := sha256.New()
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], uint64(seed))
	h.Write(s[:])
	h.Write([]byte(purpose))
	h.Write(sha[:])
	return binary.BigEndian.Uint64(h.Sum(nil))
}

// drawSplit assigns a split from the content alone: the seeded hash, read
// as a number in [0, 1), is compared with the cumulative fractions. A file
// never moves when others are added or removed, and every class gets each
// split's share in expectation (the split is stratified because every class
// is drawn by the same rule). Exact per-class counts would need ranks, and
// ranks shift when new files arrive.
func drawSplit(seed int64, sha [32]byte, fr Fractions) string {
	x := float64(seededHash(seed, "split", sha)>>11) / (1 << 53)
	switch {
	case x < fr.Train:
		return Train
	case x < fr.Train+fr.Val:
		return Val
	}
	return Test
}

func splitRank(s string) int { return slices.Index(Splits, s) }

// dedupe groups usable files by content. Copies inside one class are kept
// once (the first by split, then path); copies under different classes are
// a label conflict and all of them are left out. Either way no picture can
// be in two splits.
func dedupe(items []*item) []Problem {
	groups := map[[32]byte][]*item{}
	var order [][32]byte
	for _, it := range items {
		if it.fail != nil {
			continue
		}
		if _, seen := groups[it.sha]; !seen {
			order = append(order, it.sha)
		}
		groups[it.sha] = append(groups[it.sha], it)
	}
	var ps []Problem
	for _, sha := range order {
		g := groups[sha]
		if len(g) < 2 {
			continue
		}
		slices.SortFunc(g, func(a, b *item) int {
			return cmp.Or(cmp.Compare(splitRank(a.split), splitRank(b.split)), cmp.Compare(a.rel, b.rel))
		})
		if conflict(g) {
			for _, it := range g {
				it.drop = true
				ps = append(ps, Problem{Path: it.rel, Reason: ReasonDupAcrossClasses, Action: ActionExcluded,
					Detail: fmt.Sprintf("same content as %s: one picture under two labels; left out of every class", others(g, it))})
			}
			continue
		}
		first := g[0]
		for _, it := range g[1:] {
			it.drop = true
			if it.split != first.split {
				ps = append(ps, Problem{Path: it.rel, Reason: ReasonDupAcrossSplits, Action: ActionSkipped,
					Detail: fmt.Sprintf("same content as %s, kept in %s only so that no picture is in two splits", first.rel, first.split)})
				continue
			}
			ps = append(ps, Problem{Path: it.rel, Reason: ReasonDupInClass, Action: ActionSkipped,
				Detail: fmt.Sprintf("same content as %s, which is kept", first.rel)})
		}
	}
	return ps
}

func conflict(g []*item) bool {
	for _, it := range g[1:] {
		if it.class != g[0].class {
			return true
		}
	}
	return false
}

// others lists the other copies of a group, at most three, with classes.
func others(g []*item, self *item) string {
	var names []string
	for _, it := range g {
		if it != self {
			names = append(names, fmt.Sprintf("%s (class %s)", it.rel, it.class))
		}
	}
	if len(names) > 3 {
		names = append(names[:3], fmt.Sprintf("%d more", len(names)-3))
	}
	return strings.Join(names, ", ")
}

// classCounts counts the kept files of each class in each split.
type classCounts map[string]map[string]int

func countSplits(items []*item) classCounts {
	c := classCounts{}
	for _, it := range items {
		if it.fail != nil || it.drop {
			continue
		}
		if c[it.class] == nil {
			c[it.class] = map[string]int{}
		}
		c[it.class][it.split]++
	}
	return c
}

func (c classCounts) total(class string) int {
	n := 0
	for _, v := range c[class] {
		n += v
	}
	return n
}
