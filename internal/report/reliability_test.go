package report

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/metrics"
)

// TestWriteCalibration: rows from a model at temperature 2 are scored as
// answered and, undone, at T = 1; the reliability diagram is written and on
// the page; an ECE gate is judged on the answered probabilities.
func TestWriteCalibration(t *testing.T) {
	const k, temp = 3, 2.0
	logits := []float32{4, 0, 0, 0, 5, 1, 1, 0, 6, 3, 2, 0, 0, 0, 4, 2, 3, 0}
	labels := []int32{0, 1, 2, 1, 2, 1}
	answered := calibrate.Scale(logits, k, temp)
	rows := make([]metrics.Row, len(labels))
	for i := range rows {
		p := make([]float64, k)
		for j := range p {
			p[j] = float64(answered[i*k+j])
		}
		rows[i] = metrics.Row{File: "x.jpg", True: int(labels[i]), Pred: metrics.Argmax(p), Probs: p}
	}
	out := outDir(t, "calibration")
	gate, _ := metrics.MaxECE(0.0001)
	sum, err := Write(Input{Classes: []string{"a", "b", "c"}, Rows: rows, OutDir: out, Temperature: temp, Gates: []metrics.Gate{gate}})
	if err == nil || !strings.Contains(err.Error(), "expected calibration error") || !strings.Contains(err.Error(), "(--max-ece 0.0001)") {
		t.Fatalf("ECE gate: %v", err)
	}
	c := sum.Calibration
	if c == nil || c.Uncalibrated == nil || c.Temperature != temp {
		t.Fatalf("calibration %+v", c)
	}
	want, _ := calibrate.ECE(answered, labels, k, calibrate.Bins)
	raw, _ := calibrate.ECE(calibrate.Scale(logits, k, 1), labels, k, calibrate.Bins)
	if math.Abs(c.Evaluated.ECE-want) > 1e-6 || math.Abs(c.Uncalibrated.ECE-raw) > 1e-5 {
		t.Errorf("ECE %v (want %v), uncalibrated %v (want %v)", c.Evaluated.ECE, want, c.Uncalibrated.ECE, raw)
	}
	if len(sum.Gates) != 1 || sum.Gates[0].Passed || sum.Gates[0].Value != c.Evaluated.ECE {
		t.Errorf("gates %+v", sum.Gates)
	}
	if _, err := os.Stat(filepath.Join(out, FileReliabilityPNG)); err != nil {
		t.Error(err)
	}
	page, _ := os.ReadFile(filepath.Join(out, FileReportHTML))
	if !strings.Contains(string(page), `id="calibration"`) || !strings.Contains(string(page), "reliability diagram") {
		t.Error("report.html has no calibration section with the reliability diagram")
	}
}
