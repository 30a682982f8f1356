package dataset

import "sync"

// budget is a weighted semaphore over decoded pixels: workers take an
// image's pixel count before decoding it, so a few giant images wait for
// each other instead of all being in memory at once, however many cores
// there are.
type budget struct {
	mu    sync.Mutex
	cond  *sync.Cond
	free  int64
	total int64
}

func newBudget(total int64) *budget {
	b := &budget{free: total, total: total}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// acquire blocks until n units are free. Requests above the total are
// capped to it, so a single image at the limit still runs (alone).
func (b *budget) acquire(n int64) int64 {
	n = min(n, b.total)
	b.mu.Lock()
	for b.free < n {
		b.cond.Wait()
	}
	b.free -= n
	b.mu.Unlock()
	return n
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.free += n
	b.mu.Unlock()
	b.cond.Broadcast()
}
