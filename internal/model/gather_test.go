package model

import (
	"math"
	"slices"
	"sync"
	"testing"
)

// maxGroup simulates dp_check's all-reduce for size goroutines: every
// call of a round returns the elementwise maximum of all size calls' words.
type maxGroup struct {
	size   int
	mu     sync.Mutex
	cond   *sync.Cond
	round  int
	words  [][]float64
	result map[int][]float64
}

func newMaxGroup(size int) *maxGroup {
	g := &maxGroup{size: size, result: map[int][]float64{}}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *maxGroup) max(words []float64) ([]float64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	round := g.round
	g.words = append(g.words, slices.Clone(words))
	if len(g.words) == g.size {
		hi := slices.Clone(g.words[0])
		for _, w := range g.words[1:] {
			for i := range hi {
				hi[i] = math.Max(hi[i], w[i])
			}
		}
		g.result[round], g.words = hi, nil
		g.round++
		g.cond.Broadcast()
	}
	for g.result[round] == nil {
		g.cond.Wait()
	}
	return g.result[round], nil
}

// TestAllGather: every task gets every task's values bit for bit, in task
// order (NaN, infinities and -0 included), for groups that need one round
// and groups that need several.
func TestAllGather(t *testing.T) {
	special := []float64{math.NaN(), math.Inf(-1), math.Copysign(0, -1), -1e300, 5e-324, 0.1}
	for _, c := range []struct{ size, values int }{{1, 8}, {2, 3}, {5, 3}, {3, 8}, {4, 1}} {
		want := make([][]float64, c.size)
		for task := range want {
			for i := range c.values {
				want[task] = append(want[task], special[(task+i)%len(special)]*float64(task+1))
			}
		}
		g := newMaxGroup(c.size)
		got := make([][][]float64, c.size)
		var wg sync.WaitGroup
		for task := range c.size {
			wg.Go(func() {
				var err error
				if got[task], err = allGather(c.size, task, want[task], g.max); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for task := range c.size {
			for from := range c.size {
				for i := range c.values {
					if math.Float64bits(got[task][from][i]) != math.Float64bits(want[from][i]) {
						t.Errorf("%d tasks of %d values: task %d got task %d's value %d as %v, want %v", c.size, c.values, task, from, i, got[task][from][i], want[from][i])
					}
				}
			}
		}
	}
	if _, err := allGather(2, 0, make([]float64, 9), nil); err == nil {
		t.Error("9 values: no error")
	}
}
