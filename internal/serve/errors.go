package serve

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"

	"github.com/xcept/xcept/internal/graph"
)

// Error is a failed request: a TensorFlow status code, which decides the
// HTTP status exactly as TF Serving maps it, and a one-line message for the
// {"error": ...} body.
type Error struct {
	Code    graph.Code
	Message string
	// Status overrides the HTTP status for failures TF Serving has no code
	// for (413 for a body over the limit).
	Status int
}

func (e *Error) Error() string { return e.Message }

func errorf(code graph.Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalidf(format string, args ...any) *Error {
	return errorf(graph.CodeInvalidArgument, format, args...)
}

func notFoundf(format string, args ...any) *Error {
	return errorf(graph.CodeNotFound, format, args...)
}

// tfNodeSuffix is the graph location TensorFlow appends to a failed op's
// message ("[[{{function_node ...}}{{node map/while/DecodePng}}]]"): noise
// to a client.
var tfNodeSuffix = regexp.MustCompile(`\s*\[\[\{\{.*?\}\}\]\]`)

// asError classifies any error: ours as is, TensorFlow's by its code (its
// message without the "tensorflow Code:" prefix), anything else as internal.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var ge *graph.Error
	if errors.As(err, &ge) {
		return &Error{Code: ge.Code, Message: tfNodeSuffix.ReplaceAllString(ge.Message, "")}
	}
	return &Error{Code: graph.CodeInternal, Message: err.Error()}
}

// HTTPStatus is TF Serving's mapping of status codes to HTTP statuses
// (tensorflow_serving/model_servers/http_server.cc, ToHTTPStatusCode).
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	switch e.Code {
	case graph.CodeOK:
		return http.StatusOK
	case graph.CodeCancelled:
		return 499 // client closed request
	case graph.CodeInvalidArgument, graph.CodeFailedPrecondition, graph.CodeOutOfRange:
		return http.StatusBadRequest
	case graph.CodeDeadlineExceeded:
		return http.StatusGatewayTimeout
	case graph.CodeNotFound:
		return http.StatusNotFound
	case graph.CodeAlreadyExists, graph.CodeAborted:
		return http.StatusConflict
	case graph.CodePermissionDenied:
		return http.StatusForbidden
	case graph.CodeResourceExhausted:
		return http.StatusTooManyRequests
	case graph.CodeUnimplemented:
		return http.StatusNotImplemented
	case graph.CodeUnavailable:
		return http.StatusServiceUnavailable
	case graph.CodeUnauthenticated:
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError // Unknown, Internal, DataLoss
}

// statusName is the code as TF Serving's JSON writes it (the error.Code enum
// of tensorflow/core/protobuf/error_codes.proto).
var statusNames = map[graph.Code]string{
	graph.CodeOK: "OK", graph.CodeCancelled: "CANCELLED", graph.CodeUnknown: "UNKNOWN",
	graph.CodeInvalidArgument: "INVALID_ARGUMENT", graph.CodeDeadlineExceeded: "DEADLINE_EXCEEDED",
	graph.CodeNotFound: "NOT_FOUND", graph.CodeAlreadyExists: "ALREADY_EXISTS",
	graph.CodePermissionDenied: "PERMISSION_DENIED", graph.CodeResourceExhausted: "RESOURCE_EXHAUSTED",
	graph.CodeFailedPrecondition: "FAILED_PRECONDITION", graph.CodeAborted: "ABORTED",
	graph.CodeOutOfRange: "OUT_OF_RANGE", graph.CodeUnimplemented: "UNIMPLEMENTED",
	graph.CodeInternal: "INTERNAL", graph.CodeUnavailable: "UNAVAILABLE", graph.CodeDataLoss: "DATA_LOSS",
	graph.CodeUnauthenticated: "UNAUTHENTICATED",
}

func statusName(c graph.Code) string {
	if n, ok := statusNames[c]; ok {
		return n
	}
	return "UNKNOWN"
}
