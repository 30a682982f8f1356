package cli

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/xcept/xcept/internal/fault"
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
		{fault.ErrInterrupted, 130},
		{fault.New(fault.Busy, "in use"), 6},
		{&Error{Kind: KindBusy, Err: errors.New("in use")}, 6},
		{fault.New(fault.PeerLost, "worker 1 is gone"), 7},
		{fmt.Errorf("wrapped: %w", Dataf("x")), 4},
	}
	for _, c := range cases {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

func TestWriteFailures(t *testing.T) {
	full := &os.PathError{Op: "write", Path: "/d/x", Err: syscall.ENOSPC}
	tf := errors.New("tensorflow ResourceExhausted: /d/ckpt_temp/part-0; No space left on device")
	denied := &os.PathError{Op: "open", Path: "/d/x", Err: syscall.EACCES}
	cases := []struct {
		name string
		err  error
		want int
		text string
	}{
		{"full disk, writing", fault.WriteFailed("/d", full), 4, "cannot write /d: no space left on the device: free some space"},
		{"read-only, writing", fault.WriteFailed("/d", &os.PathError{Op: "mkdir", Path: "/d", Err: syscall.EROFS}), 4, "read-only file system: choose a folder you can write to"},
		{"denied, writing", fault.WriteFailed("/d", denied), 4, "cannot write /d: permission denied"},
		{"other, writing", fault.WriteFailed("/d", errors.New("boom")), 1, "boom"},
		{"full disk in TensorFlow, net", AsWriteFailure(Modelf("saving: %v", tf)), 4, "No space left on device"},
		{"denied, net: may be a read", AsWriteFailure(Modelf("%v", denied)), 5, "permission denied"},
		{"usage stays usage", AsWriteFailure(Usagef("--out: %v", full)), 2, "--out"},
		{"a data error is not rewrapped", fault.WriteFailed("/d", Dataf("--out /e: %v", full)), 4, "--out /e: write /d/x"},
		{"a write failure is not rewrapped", fault.WriteFailed("/e", fault.WriteFailed("/d", full)), 4, "cannot write /d: no space"},
		{"a model error is", fault.WriteFailed("/d", Modelf("saving: %v", tf)), 4, "cannot write /d: no space left on the device"},
	}
	for _, c := range cases {
		if got := ExitCode(c.err); got != c.want || !strings.Contains(c.err.Error(), c.text) {
			t.Errorf("%s: exit %d, %q; want %d containing %q", c.name, got, c.err, c.want, c.text)
		}
	}
}

// A domain package's fault.Reason is mapped here, once.
func TestExitCodeOfReasons(t *testing.T) {
	cases := []struct {
		r    fault.Reason
		want int
	}{
		{fault.Unknown, 1}, {fault.BadValue, 2}, {fault.GateFailed, 3},
		{fault.NotARun, 4}, {fault.BadData, 4}, {fault.CannotWrite, 4},
		{fault.NoCheckpoint, 5}, {fault.NotAModel, 5}, {fault.ToolFailed, 5},
		{fault.Interrupted, 130},
	}
	for _, c := range cases {
		err := fmt.Errorf("context: %w", fault.New(c.r, "reason %d", c.r))
		if got := ExitCode(err); got != c.want {
			t.Errorf("ExitCode(reason %d) = %d, want %d", c.r, got, c.want)
		}
	}
	// The outermost kind decides.
	if got := ExitCode(Usagef("flag: %w", fault.New(fault.BadData, "x"))); got != ExitUsage {
		t.Errorf("a usage error wrapping a data fault: %d", got)
	}
}

func TestNameFlags(t *testing.T) {
	flags := func(values map[string]string) func(string) (string, bool) {
		return func(name string) (string, bool) { v, ok := values[name]; return v, ok }
	}
	about := func() error {
		return fmt.Errorf("opening: %w", fault.About(fault.NotARun, fault.RunFolder, "runs/x", "no such run folder"))
	}
	cases := []struct {
		name  string
		flags map[string]string
		want  string
	}{
		{"the flag gave the path", map[string]string{"run": "runs/x"}, "opening: --run runs/x: no such run folder"},
		{"the same path spelled otherwise", map[string]string{"run": "./runs/x/"}, "opening: --run runs/x: no such run folder"},
		{"another path", map[string]string{"run": "runs/y"}, "opening: run folder runs/x: no such run folder"},
		{"no such flag", map[string]string{"data": "runs/x"}, "opening: run folder runs/x: no such run folder"},
	}
	for _, c := range cases {
		err := NameFlags(about(), flags(c.flags), nil)
		if err.Error() != c.want || ExitCode(err) != ExitData {
			t.Errorf("%s: %q (exit %d), want %q (exit 4)", c.name, err, ExitCode(err), c.want)
		}
	}
}

func TestNameFlagsOfASetting(t *testing.T) {
	bad := func() error {
		return fmt.Errorf("building: %w", fault.BadSetting("model.precision", "%q: use one of float32, mixed_bfloat16", "int8"))
	}
	has := func(name string) (string, bool) { return "", name == "precision" }
	none := func(string) (string, bool) { return "", false }
	cases := []struct {
		name     string
		value    func(string) (string, bool)
		keyFlags map[string]string
		want     string
	}{
		{"a flag sets the key", has, map[string]string{"model.precision": "precision"}, `building: model.precision (--precision) "int8": use one of float32, mixed_bfloat16`},
		{"the verb has no such flag", none, map[string]string{"model.precision": "precision"}, `building: model.precision "int8": use one of float32, mixed_bfloat16`},
		{"no flag sets the key", has, nil, `building: model.precision "int8": use one of float32, mixed_bfloat16`},
	}
	for _, c := range cases {
		err := NameFlags(bad(), c.value, c.keyFlags)
		if err.Error() != c.want || ExitCode(err) != ExitUsage {
			t.Errorf("%s: %q (exit %d), want %q (exit 2)", c.name, err, ExitCode(err), c.want)
		}
	}
}

func TestNameFlagsOfAnOption(t *testing.T) {
	bad := func() error {
		inner := fault.New(fault.BadValue, "%s needs %s: it predicts the folder with the run's model", fault.Option("ood"), fault.Option("run"))
		return fmt.Errorf("evaluating: %w", inner)
	}
	flags := func(names ...string) func(string) (string, bool) {
		return func(name string) (string, bool) { return "", slices.Contains(names, name) }
	}
	cases := []struct {
		name  string
		value func(string) (string, bool)
		want  string
	}{
		{"the verb has both flags", flags("ood", "run"), "evaluating: --ood needs --run: it predicts the folder with the run's model"},
		{"the verb has one", flags("run"), "evaluating: option ood needs --run: it predicts the folder with the run's model"},
		{"the verb has neither", flags(), "evaluating: option ood needs option run: it predicts the folder with the run's model"},
	}
	for _, c := range cases {
		err := NameFlags(bad(), c.value, nil)
		if err.Error() != c.want || ExitCode(err) != ExitUsage {
			t.Errorf("%s: %q (exit %d), want %q (exit 2)", c.name, err, ExitCode(err), c.want)
		}
	}
	// An option in an error about a path: both are named.
	err := NameFlags(fault.About(fault.BadData, fault.DataFolder, "ds", "has no %s images: choose another %s", "test", fault.Option("split")),
		func(name string) (string, bool) {
			return map[string]string{"data": "ds", "split": "test"}[name], name == "data" || name == "split"
		}, nil)
	if want := "--data ds: has no test images: choose another --split"; err.Error() != want || ExitCode(err) != ExitData {
		t.Errorf("%q (exit %d), want %q (exit 4)", err, ExitCode(err), want)
	}
}

func TestNameFlagsOfAWriteFailure(t *testing.T) {
	full := &os.PathError{Op: "write", Path: "ds/x", Err: syscall.ENOSPC}
	err := NameFlags(fault.WriteFailedAbout(fault.OutFolder, "ds", full),
		func(name string) (string, bool) { return "ds", name == "out" }, nil)
	if want := "--out ds: cannot be written: no space left on the device: free some space or choose another folder"; err.Error() != want || ExitCode(err) != ExitData {
		t.Errorf("%q (exit %d), want %q (exit 4)", err, ExitCode(err), want)
	}
	if other := errors.New("boom"); fault.WriteFailedAbout(fault.OutFolder, "ds", other) != other {
		t.Error("an error that is no write failure is rewrapped")
	}
}
