package testenv

import (
	"errors"
	"testing"
)

func TestOnceMakesOnce(t *testing.T) {
	var o Once[int]
	if _, ok := o.Made(); ok {
		t.Error("Made before Get")
	}
	calls := 0
	for range 3 {
		if v := o.Get(t, "the answer", func() (int, error) { calls++; return 42, nil }); v != 42 {
			t.Fatalf("Get = %d", v)
		}
	}
	if v, ok := o.Made(); calls != 1 || !ok || v != 42 {
		t.Errorf("made %d times, Made = %d, %v", calls, v, ok)
	}
	var bad Once[string]
	bad.once.Do(func() { bad.err = errors.New("no disk") })
	if _, ok := bad.Made(); ok {
		t.Error("a failed fixture reported as made")
	}
}
