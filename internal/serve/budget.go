package serve

import (
	"context"
	"sync"
)

// Budget is a pool of pixels shared by the requests being decoded: an
// image holds its pixels while Go decodes it, so that the memory decoding
// takes is bounded by the pool's size, however many requests arrive.
type Budget struct {
	mu   sync.Mutex
	size int64
	used int64
	wake chan struct{} // closed and replaced at every release
}

// NewBudget is a pool of size pixels.
func NewBudget(size int64) *Budget {
	return &Budget{size: size, wake: make(chan struct{})}
}

// acquire takes n pixels, waiting for other images to release theirs until
// ctx is done. More than the pool holds is taken once the pool is empty
// (the limits keep one image within it). A nil Budget never waits.
func (b *Budget) acquire(ctx context.Context, n int64) error {
	if b == nil {
		return nil
	}
	for {
		b.mu.Lock()
		if b.used+n <= b.size || b.used == 0 {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *Budget) release(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}
