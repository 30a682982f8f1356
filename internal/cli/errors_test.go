package cli

import (
	"errors"
	"fmt"
	"testing"
)

func TestExitCode(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("boom"), 1},
		{Usagef("--epochs: must be positive"), 2},
		{Gatef("accuracy 0.5 < 0.9"), 3},
		{Dataf("no such folder"), 4},
		{Modelf("no checkpoint"), 5},
		{Interrupted, 130},
		{&Error{Kind: KindBusy, Err: errors.New("in use")}, 6},
		{fmt.Errorf("wrapped: %w", Dataf("x")), 4},
	}
	for _, c := range cases {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}
