// Package cli is the command layer's shared part: the one mapping from
// errors to the process exit code, documented in README.md's "Exit codes"
// (errors.go: a domain package's fault.Reason, or a Kind of the command
// layer's own errors, Usagef and the like), and NameFlags, which makes a
// domain error name the verb's flags: the flag that gave its path, that
// sets its configuration key, or that is an option it names
// (fault.Option); the safety net that turns a failed write into a data
// error (write.go); and Output, the one printer of every verb: progress for
// people on stderr, results on stdout as text or as JSON Lines (output.go). Domain packages never decide an exit
// code: they return fault errors, and print through Output.
package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/xcept/xcept/internal/fault"
)

// Kind classifies an error so that main can map it to one exit code. The
// command layer makes its own errors with a Kind (Usagef, ...); a domain
// package's fault.Reason maps to one (reasonKinds).
type Kind int

// Error kinds, in the order of their exit codes (see ExitCode and README).
const (
	KindInternal    Kind = iota // unexpected failure: a bug or the environment
	KindUsage                   // bad flag, argument or configuration value
	KindGate                    // a quality gate failed (evaluate, export, prepare --strict)
	KindData                    // the dataset or an input file is missing or unusable
	KindModel                   // the model, checkpoint, builder or TensorFlow failed
	KindInterrupted             // the user interrupted the command (Ctrl-C, SIGTERM)
	KindBusy                    // another process is writing the same run folder
	KindPeer                    // another worker of a training cluster died or cannot be reached
)

// Exit codes, documented in README.md. Keep them stable: CI scripts match on them.
const (
	ExitOK          = 0
	ExitInternal    = 1
	ExitUsage       = 2
	ExitGate        = 3
	ExitData        = 4
	ExitModel       = 5
	ExitBusy        = 6
	ExitPeer        = 7
	ExitInterrupted = 130
)

// Error is an error with a Kind. Its message is shown to the user as is, on one line.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// IsDataError tells fault.WriteFailed that a KindData error already blames the data.
func (e *Error) IsDataError() bool { return e.Kind == KindData }

func newf(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Err: fmt.Errorf(format, args...)}
}

// Usagef reports a bad flag, argument or configuration value, from the
// command layer (a domain package returns fault.New(fault.BadValue, ...)).
// Name the flag or key.
func Usagef(format string, args ...any) error { return newf(KindUsage, format, args...) }

// Dataf reports unusable input data. Name the file or folder.
func Dataf(format string, args ...any) error { return newf(KindData, format, args...) }

// Modelf reports a model, checkpoint or TensorFlow failure. Name the run or model folder.
func Modelf(format string, args ...any) error { return newf(KindModel, format, args...) }

// Gatef reports a failed quality gate: say which gate and by how much.
func Gatef(format string, args ...any) error { return newf(KindGate, format, args...) }

// reasonKinds maps what a domain package says went wrong (a fault.Reason)
// to the kind of exit it means: the one place that decides it.
var reasonKinds = map[fault.Reason]Kind{
	fault.BadValue:     KindUsage,
	fault.GateFailed:   KindGate,
	fault.NotARun:      KindData, // README: a missing or unusable input folder is 4
	fault.BadData:      KindData,
	fault.CannotWrite:  KindData, // README: an output folder that cannot be written is 4
	fault.NoCheckpoint: KindModel,
	fault.NotAModel:    KindModel,
	fault.ToolFailed:   KindModel,
	fault.Interrupted:  KindInterrupted,
	fault.PeerLost:     KindPeer,
	fault.Busy:         KindBusy,
}

// KindOf returns the Kind of err: its own, or its fault.Reason's,
// KindInternal when it carries neither. The outermost one decides.
func KindOf(err error) Kind {
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch t := e.(type) {
		case *Error:
			return t.Kind
		case *fault.Error:
			if k, ok := reasonKinds[t.Reason]; ok {
				return k
			}
			return KindInternal
		}
	}
	return KindInternal
}

// ExitCode maps an error to the process exit code; nil maps to 0.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	switch KindOf(err) {
	case KindUsage:
		return ExitUsage
	case KindGate:
		return ExitGate
	case KindData:
		return ExitData
	case KindModel:
		return ExitModel
	case KindInterrupted:
		return ExitInterrupted
	case KindBusy:
		return ExitBusy
	case KindPeer:
		return ExitPeer
	}
	return ExitInternal
}

// subjectFlags is the flag that gives each subject of a domain error, on
// the verbs that have it.
var subjectFlags = map[fault.Subject]string{
	fault.RunFolder:   "run",
	fault.DataFolder:  "data",
	fault.ModelFolder: "model",
	fault.OutFolder:   "out",
}

// NameFlags is err with its messages about a subject naming the flag that
// gave their path ("--run runs/x: ..." for "run folder runs/x: ...") or
// that sets their configuration key ("model.precision (--precision) ..."),
// and each fault.Option they name as the verb's flag of that name ("--split"
// for "option split"; one the verb lacks keeps its words), its chain (and so its exit code) kept. value returns the verb's value of
// a flag, ok false when the verb has no such flag; keyFlags maps the verb's
// configuration keys to their flags. A path no flag gave (a run's recorded
// dataset, say) keeps its subject.
func NameFlags(err error, value func(flag string) (v string, ok bool), keyFlags map[string]string) error {
	msg := err.Error()
	option := func(o fault.Option) string {
		if _, ok := value(string(o)); ok {
			return "--" + string(o)
		}
		return ""
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		f, ok := e.(*fault.Error)
		if !ok || f.Subject == fault.NoSubject && !f.HasOptions() {
			continue
		}
		flag, ok := flagOf(f, value, keyFlags)
		if ok {
			flag = "--" + flag
		} else {
			flag = ""
		}
		msg = strings.ReplaceAll(msg, f.Error(), f.Named(flag, option))
	}
	if msg == err.Error() {
		return err
	}
	return &named{msg: msg, err: err}
}

// flagOf is the verb's flag that gave f's path or sets f's key.
func flagOf(f *fault.Error, value func(string) (string, bool), keyFlags map[string]string) (string, bool) {
	if f.Subject == fault.Setting {
		flag, ok := keyFlags[f.Path]
		if ok {
			_, ok = value(flag)
		}
		return flag, ok
	}
	flag := subjectFlags[f.Subject]
	v, ok := value(flag)
	return flag, ok && v != "" && samePath(v, f.Path)
}

// named is an error with its message rewritten by NameFlags.
type named struct {
	msg string
	err error
}

func (n *named) Error() string { return n.msg }
func (n *named) Unwrap() error { return n.err }

func samePath(a, b string) bool {
	a, errA := filepath.Abs(a)
	b, errB := filepath.Abs(b)
	return errA == nil && errB == nil && a == b
}
