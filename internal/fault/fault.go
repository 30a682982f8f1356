// Package fault is how domain packages say what went wrong, in their own
// words (not a run, not a model, bad data, cannot write, ...), without
// deciding what the process does about it: the command layer maps each
// Reason to an exit code, once, in cli.ExitCode. The message of an Error is
// shown to the user as is, on one line: name the file and what to do. An
// error about a path the user gave (a run, dataset, model or output folder)
// is made by About with its Subject, and the command layer names the flag
// that gave the path (cli.NameFlags), where the flag is known. An option of a
// domain operation named in a message (evaluate's split, export's format) is
// an Option argument of New or About, which the command layer renders as the
// verb's flag ("--split"), where the verb has one.
//
// Domain packages make every error they classify here; the command layer
// (cmd/xcept, internal/cli) alone makes cli errors.
package fault

import (
	"errors"
	"fmt"
	"io/fs"
)

// Reason is what went wrong.
type Reason int

// Reasons. Unknown is an error that carries none: a bug, or the environment.
const (
	Unknown      Reason = iota
	BadValue            // a flag, argument or configuration value is wrong
	NotARun             // a --run folder is missing or is not an xcept run
	BadData             // an input file or folder is missing or unusable; data that does not fit the model
	CannotWrite         // an output file or folder cannot be written
	NoCheckpoint        // a run lacks the checkpoint the command needs
	NotAModel           // a model folder is missing, from another xcept, or inconsistent
	ToolFailed          // TensorFlow, the model builder or a converter failed
	GateFailed          // a quality gate was not met
	Interrupted         // a signal stopped the command
	PeerLost            // another worker of a training cluster died, left or cannot be reached
	Busy                // another process is writing the same run folder
)

// Subject is what an error is about, in the domain's words. A domain
// package never names the command-line flag that gave a path: the command
// layer does (cli.NameFlags), where the flag is known.
type Subject int

// Subjects.
const (
	NoSubject   Subject = iota
	RunFolder           // a run folder
	DataFolder          // a dataset or a folder of images
	ModelFolder         // a model or export folder
	OutFolder           // an output folder
	Setting             // a configuration key (Path is the key: model.precision), which a flag may set
)

var subjects = [...]string{"", "run folder", "dataset", "model", "output folder", "setting"}

func (s Subject) String() string { return subjects[s] }

// Option is an option of a domain operation, by the name of the flag that
// sets it on the verbs that have it, without the dashes ("split"). Given as
// an argument of New or About (formatted with %s or %v), it reads "option
// split" in the message; the command layer renders it as the verb's flag
// ("--split") where the verb has it (cli.NameFlags). Domain packages name an
// option this way, never as a flag.
type Option string

func (o Option) String() string { return "option " + string(o) }

// Error is an error with a Reason, and with the Subject and Path it is about
// when made by About.
type Error struct {
	Reason  Reason
	Err     error
	Subject Subject
	Path    string

	format string // New's or About's format and arguments, to render Options
	args   []any
}

// Error is the message; an error about a subject starts with it and the
// path ("run folder runs/x: ..."), an error about a setting with its key
// ("model.precision \"int8\": ..."). The command layer names the flag that
// gave the path or sets the key instead (NamedBy).
func (e *Error) Error() string { return e.NamedBy("") }

// NamedBy is the message naming flag ("--run", "" for none): "--run
// runs/x: ..." for a path, "model.precision (--precision) ..." for a
// setting.
func (e *Error) NamedBy(flag string) string { return e.Named(flag, nil) }

// Named is the message with its subject named by flag, as NamedBy, and each
// Option in it by option's answer (the verb's flag: "--split"; "" keeps
// the Option's own words).
func (e *Error) Named(flag string, option func(Option) string) string {
	msg := e.Err.Error()
	if option != nil && e.HasOptions() {
		args := make([]any, len(e.args))
		for i, a := range e.args {
			if o, ok := a.(Option); ok {
				if f := option(o); f != "" {
					a = f
				}
			}
			args[i] = a
		}
		msg = fmt.Errorf(e.format, args...).Error()
	}
	switch {
	case e.Subject == NoSubject:
		return msg
	case e.Subject == Setting && flag != "":
		return e.Path + " (" + flag + ") " + msg
	case e.Subject == Setting:
		return e.Path + " " + msg
	case flag != "":
		return flag + " " + e.Path + ": " + msg
	}
	return e.Subject.String() + " " + e.Path + ": " + msg
}

// HasOptions: the message names an Option.
func (e *Error) HasOptions() bool {
	for _, a := range e.args {
		if _, ok := a.(Option); ok {
			return true
		}
	}
	return false
}

func (e *Error) Unwrap() error { return e.Err }

// ErrInterrupted is returned by work that stopped early because its
// context was cancelled (Ctrl-C, SIGTERM).
var ErrInterrupted error = &Error{Reason: Interrupted, Err: errors.New("interrupted")}

// New is an Error of reason r; %w in format wraps as fmt.Errorf does.
func New(r Reason, format string, args ...any) error {
	return &Error{Reason: r, Err: fmt.Errorf(format, args...), format: format, args: args}
}

// About is an Error of reason r about path, a subject s; format says what
// is wrong with it and what to do, without repeating the path.
func About(r Reason, s Subject, path, format string, args ...any) error {
	return &Error{Reason: r, Err: fmt.Errorf(format, args...), Subject: s, Path: path, format: format, args: args}
}

// BadSetting is a BadValue error about configuration key key; format says
// what is wrong with its value and what to do, starting with the value
// ("%q: use one of ...").
func BadSetting(key, format string, args ...any) error {
	return &Error{Reason: BadValue, Err: fmt.Errorf(format, args...), Subject: Setting, Path: key, format: format, args: args}
}

// ReasonOf is the Reason err carries, Unknown when none.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return Unknown
}

// Bare is err without an *fs.PathError's operation and path, for a message
// that names the path itself ("--out DIR: permission denied").
func Bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
