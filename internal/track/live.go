package track

import (
	"context"
	"sync"
	"time"
)

// Live mirrors a run folder while a verb writes it: Kick starts a Sync in
// the background (or marks one due if one is running) and never waits;
// Finish waits a bounded time for the last one. The first failure is
// reported once, on one line, and ends live tracking for the process: the
// run folder keeps everything, and `xcept track` sends it later. So a
// tracking server that is down or slow never stops or slows the work.
type Live struct {
	dir  string
	s    Settings
	warn func(format string, args ...any)

	mu      sync.Mutex
	running bool
	due     bool // a Kick came while a Sync was running
	failed  bool
	idle    chan struct{} // closed when no Sync runs
	last    *Summary
}

// NewLive returns nil when s names no server: every method of a nil Live
// does nothing.
func NewLive(dir string, s Settings, warn func(format string, args ...any)) *Live {
	if s.URI == "" {
		return nil
	}
	idle := make(chan struct{})
	close(idle)
	return &Live{dir: dir, s: s, warn: warn, idle: idle}
}

// Kick asks for a Sync soon.
func (l *Live) Kick() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed {
		return
	}
	if l.running {
		l.due = true
		return
	}
	l.running = true
	l.idle = make(chan struct{})
	go l.loop(l.idle)
}

func (l *Live) loop(idle chan struct{}) {
	for {
		sum, err := Sync(context.Background(), l.dir, l.s)
		l.mu.Lock()
		if err != nil {
			l.failed = true
			l.warn("mlflow: cannot track %s at %s (%v); the work goes on and the run folder keeps everything: `xcept track --run %s` sends it later", l.dir, l.s.URI, err, l.dir)
		} else {
			l.last = sum
		}
		if !l.due || l.failed {
			l.running = false
			close(idle)
			l.mu.Unlock()
			return
		}
		l.due = false
		l.mu.Unlock()
	}
}

// Finish sends what is left, waiting at most timeout, and returns the last
// successful Sync's summary (nil if none).
func (l *Live) Finish(timeout time.Duration) *Summary {
	if l == nil {
		return nil
	}
	l.Kick()
	l.mu.Lock()
	idle := l.idle
	l.mu.Unlock()
	select {
	case <-idle:
	case <-time.After(timeout):
		l.mu.Lock()
		if !l.failed {
			l.failed = true
			l.warn("mlflow: %s did not answer within %s; `xcept track --run %s` sends the rest", l.s.URI, timeout, l.dir)
		}
		l.mu.Unlock()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}
