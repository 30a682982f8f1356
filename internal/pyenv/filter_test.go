package pyenv

import (
	"bytes"
	"testing"
)

func TestQuietDropsTensorFlowNoise(t *testing.T) {
	var out bytes.Buffer
	w := quiet(&out)
	in := "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n" +
		"I0000 00:00:1795716904.800570   22327 port.cc:153] oneDNN custom operations are on.\n" +
		"building Xception 96 px\n" +
		"E0000 00:00:1795716906.909101   22327 cuda_platform.cc:52] failed call to cuInit\n" +
		"To enable the following instructions: AVX2, in other operations, rebuild\n" +
		"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n" +
		"error: cannot download\n" +
		"built in 7.6 s\n"
	// Written in odd pieces: lines must be reassembled before filtering.
	for i := 0; i < len(in); i += 7 {
		end := min(i+7, len(in))
		w.Write([]byte(in[i:end]))
	}
	if got, want := out.String(), "building Xception 96 px\nbuilt in 7.6 s\n"; got != want {
		t.Errorf("filtered to %q, want %q", got, want)
	}
}
