package cluster

import (
	"net"
	"sync"
	"time"
)

// Watchdog notices a peer that is gone while this task waits in a
// collective. TensorFlow's collective runtime only fails a step whose peer
// died when the operation timeout passes (or, sometimes, at once with
// Unavailable), and a run cannot be cancelled from the C API; the watchdog
// dials every peer's server instead, so a killed worker is noticed in
// seconds however long the timeout that tolerates slow steps.
type Watchdog struct {
	stop chan struct{}
	once sync.Once
	done sync.WaitGroup
}

// Watch dials every other task's address every interval; the first peer
// that cannot be reached misses times in a row is passed to lost (once, from
// the watchdog's goroutine), and watching ends. Start it once every peer has
// answered (after the first collective); Stop it before the last one.
func (s *Spec) Watch(interval time.Duration, misses int, lost func(task int, err error)) *Watchdog {
	w := &Watchdog{stop: make(chan struct{})}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		missed := make([]int, s.Size())
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			for i, addr := range s.Workers {
				if i == s.Task {
					continue
				}
				c, err := net.DialTimeout("tcp", addr, interval)
				if err == nil {
					c.Close()
					missed[i] = 0
					continue
				}
				if missed[i]++; missed[i] >= misses {
					select {
					case <-w.stop:
					default:
						lost(i, err)
					}
					return
				}
			}
		}
	}()
	return w
}

// Stop ends watching and waits for the watchdog's goroutine; idempotent.
func (w *Watchdog) Stop() {
	if w == nil {
		return
	}
	w.once.Do(func() { close(w.stop) })
	w.done.Wait()
}
