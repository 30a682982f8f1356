package pyenv

import (
	"bytes"
	"io"
	"regexp"
)

// Verbose passes scripts' stderr through untouched, TensorFlow's logs included.
var Verbose bool

// noise matches the lines TensorFlow and absl print on import and on first
// use (oneDNN notices, CPU feature and CUDA probes), and the scripts' own
// "error: " line, which xcept prints itself as its one-line error.
var noise = regexp.MustCompile(`^([IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\]|WARNING: All log messages before absl|To enable the following instructions|INFO: Created TensorFlow Lite|error: )`)

// lineFilter writes whole lines to w, dropping the noise.
type lineFilter struct {
	w       io.Writer
	partial []byte
}

// quiet wraps w so that only the scripts' own progress reaches the user.
func quiet(w io.Writer) io.Writer {
	if Verbose {
		return w
	}
	return &lineFilter{w: w}
}

func (f *lineFilter) Write(p []byte) (int, error) {
	f.partial = append(f.partial, p...)
	for {
		i := bytes.IndexByte(f.partial, '\n')
		if i < 0 {
			break
		}
		line := f.partial[:i+1]
		if !noise.Match(line) {
			if _, err := f.w.Write(line); err != nil {
				return len(p), err
			}
		}
		f.partial = f.partial[i+1:]
	}
	return len(p), nil
}
