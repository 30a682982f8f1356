package export

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/testenv"
)

func validOptions() Options {
	return Options{RunDir: "runs/x", Format: SavedModel, Quantize: QuantNone, Images: 200, Splits: []string{"test", "val"},
		BatchSize: 1, MinAgreement: 0.99, RepresentativeImages: 100, ONNXOpset: 17}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Options)
		want   string // "" valid; else a substring of the usage error
	}{
		{"defaults", func(*Options) {}, ""},
		{"tflite int8", func(o *Options) { o.Format, o.Quantize = TFLite, QuantInt8 }, ""},
		{"onnx", func(o *Options) { o.Format = ONNX }, ""},
		{"no run", func(o *Options) { o.RunDir = "" }, "--run"},
		{"unknown format", func(o *Options) { o.Format = "coreml" }, `--format "coreml"`},
		{"unknown quantization", func(o *Options) { o.Format, o.Quantize = TFLite, "int4" }, `--quantize "int4"`},
		{"quantized savedmodel", func(o *Options) { o.Quantize = QuantFloat16 }, "applies to --format tflite only"},
		{"quantized onnx", func(o *Options) { o.Format, o.Quantize = ONNX, QuantInt8 }, "applies to --format tflite only"},
		{"no images", func(o *Options) { o.Images = 0 }, "--images 0"},
		{"no batch", func(o *Options) { o.BatchSize = 0 }, "--batch-size 0"},
		{"percent threshold", func(o *Options) { o.MinAgreement = 99 }, "--min-agreement 99"},
		{"negative threshold", func(o *Options) { o.MinAgreement = -0.1 }, "--min-agreement"},
		{"int8 without calibration", func(o *Options) { o.Format, o.Quantize, o.RepresentativeImages = TFLite, QuantInt8, 0 }, "representative_images"},
		{"opset too new", func(o *Options) { o.Format, o.ONNXOpset = ONNX, 19 }, "onnx_opset 19"},
		{"training split", func(o *Options) { o.Splits = []string{"train"} }, `verify_splits "train"`},
		{"no splits", func(o *Options) { o.Splits = nil }, "verify_splits is empty"},
		{"path as name", func(o *Options) { o.Name = "../x" }, `--name "../x"`},
		{"hidden name", func(o *Options) { o.Name = ".x" }, `--name ".x"`},
		{"good name", func(o *Options) { o.Name = "flowers-v2.1_b" }, ""},
	}
	for _, tt := range tests {
		o := validOptions()
		tt.change(&o)
		err := o.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || cli.KindOf(err) != cli.KindUsage || !strings.Contains(testenv.UserMessage(err), tt.want)):
			t.Errorf("%s: error %v, want a usage error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestLayoutNames(t *testing.T) {
	o := validOptions()
	o.RunDir = filepath.Join("runs", "flowers")
	name, err := o.exportName()
	if err != nil || name != "flowers" {
		t.Fatalf("exportName = %q, %v", name, err)
	}
	abs, _ := filepath.Abs(filepath.Join("runs", "flowers", "export"))
	tests := []struct {
		format, quantize, base, file string
	}{
		{SavedModel, QuantNone, filepath.Join(abs, "flowers"), ""},
		{TFLite, QuantNone, filepath.Join(abs, "flowers-tflite"), "flowers_float32.tflite"},
		{TFLite, QuantInt8, filepath.Join(abs, "flowers-tflite"), "flowers_int8.tflite"},
		{ONNX, QuantNone, filepath.Join(abs, "flowers-onnx"), "flowers.onnx"},
	}
	for _, tt := range tests {
		o.Format, o.Quantize = tt.format, tt.quantize
		base, err := o.base(name)
		if err != nil || base != tt.base {
			t.Errorf("%s %s: base %s, %v; want %s", tt.format, tt.quantize, base, err, tt.base)
		}
		if tt.file != "" && o.artefactFile(name) != tt.file {
			t.Errorf("%s %s: file %s, want %s", tt.format, tt.quantize, o.artefactFile(name), tt.file)
		}
	}
	o.RunDir = filepath.Join(t.TempDir(), "my run")
	if _, err := o.exportName(); err == nil || !strings.Contains(testenv.UserMessage(err), "give --name") {
		t.Errorf("a run folder name with a space: %v", err)
	}
}

func TestGatedByDefault(t *testing.T) {
	for q, want := range map[string]bool{QuantNone: true, QuantFloat16: true, QuantDynamic: false, QuantInt8: false} {
		if GatedByDefault(q) != want {
			t.Errorf("GatedByDefault(%s) = %v", q, !want)
		}
	}
}

func TestGate(t *testing.T) {
	check := func(name string, agreement float64, differ int) Check {
		return Check{Name: name, Agreement: &Agreement{Agreement: agreement, Disagreements: differ}}
	}
	tests := []struct {
		name       string
		min        float64
		candidates []Check
		want       string // "" passes; else a substring of the gate error
	}{
		{"not gated", 0, []Check{check("tflite int8", 0.5, 100)}, ""},
		{"exactly at the threshold", 0.99, []Check{check("onnx", 0.99, 2)}, ""},
		{"below", 0.99, []Check{check("tflite float16", 0.975, 5)},
			"tflite float16 agrees with the trained model on 97.50% of 200 images (5 differ), 1.50 points below --min-agreement 99.00%"},
		{"the worst candidate decides", 0.99, []Check{check("savedmodel predict_images", 1, 0), check("savedmodel serving_default", 0.98, 4)},
			"savedmodel serving_default agrees"},
	}
	for _, tt := range tests {
		j := &job{res: &Result{Verification: Verification{Images: 200, MinAgreement: tt.min, Candidates: tt.candidates}}}
		err := j.gate()
		switch {
		case tt.want == "" && (err != nil || !j.res.Verification.Passed):
			t.Errorf("%s: %v (passed %v)", tt.name, err, j.res.Verification.Passed)
		case tt.want != "" && (err == nil || cli.KindOf(err) != cli.KindGate || !strings.Contains(testenv.UserMessage(err), tt.want) || j.res.Verification.Passed):
			t.Errorf("%s: error %v, want a gate error containing %q", tt.name, err, tt.want)
		}
	}
}
