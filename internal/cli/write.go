package cli

import (
	"errors"
	"fmt"
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

// writeFailure says why err is a failure to write, if it is one. Unless
// writing is known (the caller was writing), only the errors that a read
// cannot cause count.
func writeFailure(err error, writing bool) (reason, advice string, ok bool) {
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

// CannotWrite turns err, from writing path, into a KindData error (exit 4)
// naming path when it is a full disk, exceeded quota, read-only file system
// or denied permission; other errors are returned as they are.
func CannotWrite(path string, err error) error {
	reason, advice, ok := writeFailure(err, true)
	if !ok || KindOf(err) == KindData {
		return err
	}
	return &Error{Kind: KindData, Err: fmt.Errorf("cannot write %s: %s: %s", path, reason, advice)}
}

// AsWriteFailure is the command layer's safety net: an error not classified
// as a data error that is a full disk, exceeded quota or read-only file
// system (which only a write can cause) becomes a KindData error, its
// message (which names the path) kept. Other errors are returned as they are.
func AsWriteFailure(err error) error {
	if k := KindOf(err); k == KindData || k == KindUsage || k == KindInterrupted || k == KindBusy {
		return err
	}
	reason, advice, ok := writeFailure(err, false)
	if !ok {
		return err
	}
	return &Error{Kind: KindData, Err: fmt.Errorf("cannot write (%s: %s): %w", reason, advice, err)}
}
