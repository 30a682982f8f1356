package export

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/xcept/xcept/internal/calibrate"
)

// TestAppendONNXMetadata: the entries appended to a serialised message
// read back as metadata_props, and the fields before them are untouched.
// (TestExportONNX reads them with onnxruntime.)
func TestAppendONNXMetadata(t *testing.T) {
	var msg []byte
	msg = protowire.AppendTag(msg, 1, protowire.VarintType) // ir_version
	msg = protowire.AppendVarint(msg, 8)
	msg = protowire.AppendTag(msg, 2, protowire.BytesType) // producer_name
	msg = protowire.AppendString(msg, "tf2onnx")
	path := filepath.Join(t.TempDir(), "m.onnx")
	if err := os.WriteFile(path, msg, 0o644); err != nil {
		t.Fatal(err)
	}
	c := &calibrate.Deployed{Temperature: 1.25, Reject: &calibrate.Rejection{Score: calibrate.ScoreConfidence, Accept: 0.95, Threshold: 0.8125}}
	if err := appendONNXMetadata(path, calibrationProps(c)); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if string(data[:len(msg)]) != string(msg) {
		t.Fatal("the original fields changed")
	}
	got, err := readONNXMetadata(data)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ONNXKeyTemperature: "1.25", ONNXKeyRejectScore: "confidence", ONNXKeyRejectThreshold: "0.8125", ONNXKeyRejectAccept: "0.95"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("metadata %v, want %v", got, want)
	}
	if err := appendONNXMetadata(path, calibrationProps(nil)); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(path); len(again) != len(data) {
		t.Error("no calibration must add nothing")
	}
}

func TestCalibrationNote(t *testing.T) {
	c := &calibrate.Deployed{Temperature: 1.5, Reject: &calibrate.Rejection{Score: calibrate.ScoreLogOdds, Accept: 0.95, Threshold: 2.5}}
	if got, want := calibrationNote(c), `, calibrated (temperature 1.5); answer "unknown" below a log-odds of 2.5 (a top probability of 0.924142) `+
		`(log-odds: log(top probability / the sum of the other probabilities); accepts 95% of the validation images)`; got != want {
		t.Errorf("note %q, want %q", got, want)
	}
	c.Reject = &calibrate.Rejection{Score: calibrate.ScoreConfidence, Accept: 0.95, Threshold: 0.71234567}
	if got, want := calibrationNote(c), `, calibrated (temperature 1.5); answer "unknown" below a top probability of 0.7123 (the top probability; accepts 95% of the validation images)`; got != want {
		t.Errorf("note %q, want %q", got, want)
	}
	if calibrationNote(nil) != "" || strings.Contains(calibrationNote(&calibrate.Deployed{Temperature: 2}), "unknown") {
		t.Error("no calibration (or no threshold) must say nothing of it")
	}
}

func TestReadCalibration(t *testing.T) {
	dir := t.TempDir()
	if c, err := ReadCalibration(dir); c != nil || err != nil {
		t.Errorf("no manifest: %v, %v", c, err)
	}
	os.WriteFile(filepath.Join(dir, ManifestFile), []byte(`{"calibration": {"temperature": 2, "reject": {"score": "confidence", "accept": 0.95, "threshold": 0.5, "accepted": 0.96}}}`), 0o644)
	c, err := ReadCalibration(dir)
	if err != nil || c.Temperature != 2 || c.Reject.Threshold != 0.5 {
		t.Errorf("export.json: %+v, %v", c, err)
	}
	os.WriteFile(filepath.Join(dir, ManifestFile), []byte(`{`), 0o644)
	if _, err := ReadCalibration(dir); err == nil || !strings.Contains(err.Error(), ManifestFile) {
		t.Errorf("a broken manifest: %v", err)
	}
}
