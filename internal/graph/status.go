package graph

// #include "tfapi.h"
import "C"

import (
	"fmt"
	"strings"
)

// Code is a TensorFlow status code (TF_Code).
type Code int

// The TF_Code values.
const (
	CodeOK                 Code = 0
	CodeCancelled          Code = 1
	CodeUnknown            Code = 2
	CodeInvalidArgument    Code = 3
	CodeDeadlineExceeded   Code = 4
	CodeNotFound           Code = 5
	CodeAlreadyExists      Code = 6
	CodePermissionDenied   Code = 7
	CodeResourceExhausted  Code = 8
	CodeFailedPrecondition Code = 9
	CodeAborted            Code = 10
	CodeOutOfRange         Code = 11
	CodeUnimplemented      Code = 12
	CodeInternal           Code = 13
	CodeUnavailable        Code = 14
	CodeDataLoss           Code = 15
	CodeUnauthenticated    Code = 16
)

var codeNames = [...]string{"OK", "Cancelled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
	"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
	"Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"}

func (c Code) String() string {
	if c >= 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("Code(%d)", int(c))
}

// Error is a failed TensorFlow status, or a misuse the binding caught before
// calling TensorFlow (reported with the code TensorFlow would have used).
// Match it with errors.As.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("tensorflow %s: %s", e.Code, e.Message) }

func errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// stripHints removes the advice TensorFlow appends for its Python and C++
// users, which no xcept user can act on (RunOptions are not theirs to set).
func stripHints(msg string) string {
	if i := strings.Index(msg, "Hint: If you want to see a list of allocated tensors"); i >= 0 {
		msg = strings.TrimSpace(msg[:i])
	}
	return msg
}

// ErrClosed is returned by every use of a closed Session.
var ErrClosed = &Error{Code: CodeFailedPrecondition, Message: "session is closed"}

// status wraps a TF_Status. Every C call that can fail is the same three
// lines: s := newStatus(); C.x_TF_Call(..., s.c); if err := s.done(); ...
type status struct{ c *C.TF_Status }

func newStatus() status { return status{C.x_TF_NewStatus()} }

// done frees the status and returns its error, if any.
func (s status) done() error {
	defer C.x_TF_DeleteStatus(s.c)
	if code := Code(C.x_TF_GetCode(s.c)); code != CodeOK {
		return &Error{Code: code, Message: stripHints(C.GoString(C.x_TF_Message(s.c)))}
	}
	return nil
}
