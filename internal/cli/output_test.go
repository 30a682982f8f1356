package cli

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
)

func TestOutputModes(t *testing.T) {
	type result struct {
		N int `json:"n"`
	}
	text := func(w io.Writer) error { _, err := io.WriteString(w, "n is 1\n"); return err }
	for _, tt := range []struct {
		name           string
		o              Output
		stdout, stderr string
		progressNil    bool
	}{
		{"text", Output{}, "n is 1\n", "working\nnote\nwarning: careful\n", false},
		{"quiet", Output{Quiet: true}, "n is 1\n", "warning: careful\n", true},
		{"json", Output{JSON: true}, "{\"n\":1}\n", "note\nwarning: careful\n", true},
	} {
		var stdout, stderr bytes.Buffer
		tt.o.Stdout, tt.o.Stderr = &stdout, &stderr
		tt.o.Progressf("working")
		tt.o.Notef("note")
		tt.o.Warnf("careful")
		if err := tt.o.Result(result{1}, text); err != nil {
			t.Fatal(err)
		}
		if stdout.String() != tt.stdout || stderr.String() != tt.stderr || (tt.o.Progress() == nil) != tt.progressNil {
			t.Errorf("%s: stdout %q, stderr %q, progress %v", tt.name, stdout.String(), stderr.String(), tt.o.Progress())
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestJSONErrorsAreReported(t *testing.T) {
	if err := WriteJSONLine(failingWriter{}, map[string]int{"n": 1}); err == nil || !strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("write error: %v", err)
	}
	if err := WriteJSONLine(io.Discard, math.NaN()); err == nil {
		t.Error("NaN encoded without an error")
	}
}
