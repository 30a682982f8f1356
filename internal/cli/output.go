package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// Output is where a command prints, and how: progress for people on
// Stderr (none with Quiet or JSON), results on Stdout, as text or, with
// JSON, as JSON Lines: every value is one object on one line, streams (one
// object per epoch, image or event) first, the command's result, a bare
// object, last. Every verb prints through it, so every --json has the same
// shape.
type Output struct {
	Stdout, Stderr io.Writer
	JSON, Quiet    bool
}

// Chatty says whether progress for people is printed.
func (o Output) Chatty() bool { return !o.Quiet && !o.JSON }

// Progress is the writer for progress lines: Stderr, or nil when they are
// not printed (the convention of the domain packages' progress writers).
func (o Output) Progress() io.Writer {
	if !o.Chatty() {
		return nil
	}
	return o.Stderr
}

// Bar says whether a live progress bar belongs on Stderr: progress is
// printed and Stderr is a terminal (no TTY: one line per step instead).
func (o Output) Bar() bool {
	f, ok := o.Stderr.(*os.File)
	return o.Chatty() && ok && term.IsTerminal(int(f.Fd()))
}

// Progressf prints one progress line on Stderr unless Quiet or JSON.
func (o Output) Progressf(format string, args ...any) {
	if o.Chatty() {
		fmt.Fprintf(o.Stderr, format+"\n", args...)
	}
}

// Notef prints a note people need even beside JSON results (a warning,
// where a server listens) on Stderr, unless Quiet.
func (o Output) Notef(format string, args ...any) {
	if !o.Quiet {
		fmt.Fprintf(o.Stderr, format+"\n", args...)
	}
}

// Warnf prints a warning on Stderr, even with Quiet or JSON.
func (o Output) Warnf(format string, args ...any) {
	fmt.Fprintf(o.Stderr, "warning: "+format+"\n", args...)
}

// Line prints v as one JSON line on Stdout: one item of a stream.
func (o Output) Line(v any) error {
	return WriteJSONLine(o.Stdout, v)
}

// Result prints the command's result: v as one JSON line with JSON, else
// what text writes on Stdout (nothing when text is nil).
func (o Output) Result(v any, text func(w io.Writer) error) error {
	if o.JSON {
		return o.Line(v)
	}
	if text == nil {
		return nil
	}
	return text(o.Stdout)
}

// WriteJSONLine writes v to w as one line of JSON, reporting an encoding or
// write error (a closed pipe, a value JSON cannot hold).
func WriteJSONLine(w io.Writer, v any) error {
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return fmt.Errorf("writing the JSON result: %w", err)
	}
	return nil
}
