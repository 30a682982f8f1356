package fault

import (
	"errors"
	"testing"
)

func TestOptionInAMessage(t *testing.T) {
	err := New(BadValue, "%s %d: want 1 or more; %w", Option("top-k"), 0, errors.New("inner"))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatal("not an Error")
	}
	if got, want := err.Error(), "option top-k 0: want 1 or more; inner"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	flag := func(o Option) string { return "--" + string(o) }
	if got, want := e.Named("", flag), "--top-k 0: want 1 or more; inner"; got != want {
		t.Errorf("Named = %q, want %q", got, want)
	}
	if !e.HasOptions() || New(BadValue, "x %s", "y").(*Error).HasOptions() {
		t.Error("HasOptions is wrong")
	}
	a := About(BadData, RunFolder, "runs/x", "no %s", Option("ood")).(*Error)
	if got, want := a.Named("--run", flag), "--run runs/x: no --ood"; got != want {
		t.Errorf("About Named = %q, want %q", got, want)
	}
}
