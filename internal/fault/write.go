package fault

import (
	"errors"
	"strings"
	"syscall"
)

// writeFailures are the errors that mean "this output cannot be written",
// with the text TensorFlow and Python put in their messages for each.
var writeFailures = []struct {
	errno  syscall.Errno
	text   string
	reason string
	advice string
	always bool // only a write can fail this way (EACCES may be a read too)
}{
	{syscall.ENOSPC, "No space left on device", "no space left on the device", "free some space or choose another folder", true},
	{syscall.EDQUOT, "Disk quota exceeded", "disk quota exceeded", "free some space or choose another folder", true},
	{syscall.EROFS, "Read-only file system", "read-only file system", "choose a folder you can write to", true},
	{syscall.EACCES, "Permission denied", "permission denied", "choose a folder you can write to", false},
}

// WriteReason says why err is a failure to write, if it is one: a full
// disk, exceeded quota, read-only file system or (when writing, since a
// read can be denied too) denied permission, as an errno or in the words
// TensorFlow and Python use.
func WriteReason(err error, writing bool) (reason, advice string, ok bool) {
	if err == nil {
		return "", "", false
	}
	msg := err.Error()
	for _, w := range writeFailures {
		if (w.always || writing) && (errors.Is(err, w.errno) || strings.Contains(msg, w.text)) {
			return w.reason, w.advice, true
		}
	}
	return "", "", false
}

// DataError is an error of another package that says whether it already
// blames the input or output data (the command layer's errors do).
type DataError interface{ IsDataError() bool }

// WriteFailed turns err, from writing path, into a CannotWrite error naming
// path and what to do when it is a write failure (WriteReason); other
// errors, and errors that already blame the data, are returned as they are.
func WriteFailed(path string, err error) error {
	reason, advice, ok := writeFailure(err)
	if !ok {
		return err
	}
	return New(CannotWrite, "cannot write %s: %s: %s", path, reason, advice)
}

// WriteFailedAbout is WriteFailed for a path the user gave, subject s (an
// output folder), which the command layer names by its flag: "--out ds:
// cannot be written: no space left on the device: free some space or
// choose another folder".
func WriteFailedAbout(s Subject, path string, err error) error {
	reason, advice, ok := writeFailure(err)
	if !ok {
		return err
	}
	return About(CannotWrite, s, path, "cannot be written: %s: %s", reason, advice)
}

// writeFailure is WriteReason of a write, unless err already blames the data.
func writeFailure(err error) (reason, advice string, ok bool) {
	reason, advice, ok = WriteReason(err, true)
	return reason, advice, ok && !BlamesData(err)
}

// BlamesData: the outermost classified error in err's chain blames the
// input or output data (NotARun, BadData, CannotWrite: exit 4).
func BlamesData(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch t := e.(type) {
		case *Error:
			return t.Reason == NotARun || t.Reason == BadData || t.Reason == CannotWrite
		case DataError:
			return t.IsDataError()
		}
	}
	return false
}
