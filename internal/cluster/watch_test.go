package cluster

import (
	"net"
	"testing"
	"time"
)

// The watchdog says nothing while the peer listens and names it soon after
// it stops listening (as a killed worker's server does).
func TestWatchdogNoticesAGonePeer(t *testing.T) {
	peer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := peer.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	s := &Spec{Workers: []string{"127.0.0.1:1", peer.Addr().String()}, Task: 0}
	lost := make(chan int, 1)
	w := s.Watch(20*time.Millisecond, 3, func(task int, err error) { lost <- task })
	defer w.Stop()
	select {
	case task := <-lost:
		t.Fatalf("task %d reported lost while it listens", task)
	case <-time.After(300 * time.Millisecond):
	}
	peer.Close()
	select {
	case task := <-lost:
		if task != 1 {
			t.Errorf("lost task %d, want 1", task)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the closed peer was not noticed within 2 s")
	}
}

func TestWatchdogStops(t *testing.T) {
	s := &Spec{Workers: []string{"127.0.0.1:1", "127.0.0.1:2"}, Task: 0}
	w := s.Watch(time.Hour, 3, func(int, error) { t.Error("lost after Stop") })
	w.Stop()
	w.Stop()
	var none *Watchdog
	none.Stop()
}
