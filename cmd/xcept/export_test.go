package main

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/demodata"
	"github.com/xcept/xcept/internal/export"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/metrics"
	runs "github.com/xcept/xcept/internal/run"
	"github.com/xcept/xcept/internal/testenv"
	"github.com/xcept/xcept/internal/trust"
)

var exportRun testenv.Once[string]

// trainedRun is a run of the tiny test model trained for ten epochs on the
// demo dataset, made once per test binary: the frozen phase on cached
// features takes a second, and a model that is barely trained has
// near-ties between classes whose top-1 flips at the slightest change. Tests export from it into folders
// of their own and never write into it.
func trainedRun(t *testing.T) string {
	t.Helper()
	ds := trainDataset(t)
	cfg := writeTrainConfig(t, "")
	return exportRun.Get(t, "training the run to export", func() (string, error) {
		dir, err := os.MkdirTemp("", "xcept-export-run-")
		if err != nil {
			return "", err
		}
		runDir := filepath.Join(dir, "shapes")
		code, _, stderr := runXcept(t, nil, "--config", cfg, "-q", "train", "--data", ds, "--run", runDir, "--epochs", "10")
		if code != 0 {
			return "", errors.New(stderr)
		}
		return runDir, nil
	})
}

// exportJSON runs `xcept --json export` and decodes the result.
func exportJSON(t *testing.T, args ...string) *export.Result {
	t.Helper()
	code, stdout, stderr := runXcept(t, nil, append([]string{"--json", "export"}, args...)...)
	if code != 0 {
		t.Fatalf("export %v: exit %d: %s", args, code, stderr)
	}
	var res export.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("export --json printed %q: %v", stdout, err)
	}
	return &res
}

// checkAgreement requires every candidate to agree with the trained model
// on at least min of the images.
func checkAgreement(t *testing.T, res *export.Result, min float64) {
	t.Helper()
	v := res.Verification
	if len(v.Candidates) == 0 || !v.Passed {
		t.Fatalf("verification %+v", v)
	}
	for _, c := range v.Candidates {
		a := c.Agreement
		t.Logf("%s: %d images, agreement %.4f, max |Δp| %.2g, accuracy %.3f (trained %.3f), %.1f ms/image, %d bytes",
			c.Name, v.Images, a.Agreement, a.MaxAbsDiff, c.Accuracy, v.Reference.Accuracy, c.LatencyMS, c.SizeBytes)
		if a.Agreement < min {
			t.Errorf("%s: top-1 agreement %.4f < %.2f", c.Name, a.Agreement, min)
		}
	}
}

// onlyVersions fails when base holds anything but the version folders
// given: a temporary or work folder left behind is a half-written export.
func onlyVersions(t *testing.T, base string, versions ...string) {
	t.Helper()
	entries, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, versions) {
		t.Errorf("%s holds %v, want exactly %v", base, got, versions)
	}
}

// TestExportSavedModel checks the SavedModel export itself: TF Serving's
// layout, versions, labels, a fingerprint true to the new variables, the
// float signature identical to the trained model, Python's
// tf.saved_model.load and saved_model_cli agreeing with xcept's own C API.
// The agreement of the encoded-bytes path is TestExportServingDecodesLikeTraining's.
func TestExportSavedModel(t *testing.T) {
	runDir := trainedRun(t)
	out := filepath.Join(t.TempDir(), "models")
	res := exportJSON(t, "--run", runDir, "--out", out, "--name", "shapes", "--min-agreement", "0")
	base := filepath.Join(out, "shapes")
	if res.Version != 1 || res.Path != filepath.Join(base, "1") || res.Artefact != res.Path {
		t.Fatalf("first export: version %d at %s (artefact %s)", res.Version, res.Path, res.Artefact)
	}
	for _, f := range []string{"saved_model.pb", "fingerprint.pb", "variables/variables.index", "assets/labels.txt", "assets.extra/xcept_export.json", trust.MarkFile} {
		if _, err := os.Stat(filepath.Join(res.Path, f)); err != nil {
			t.Errorf("the export lacks %s: %v", f, err)
		}
	}
	if err := trust.Check(res.Path); err != nil {
		t.Errorf("serve and predict would refuse xcept's own export: %v", err)
	}
	if d := res.Device; d == nil || d.Device != cpu0 || d.Precision != "float32" || res.Precision != "float32" ||
		export.ReadPrecision(res.Path) != "float32" {
		t.Errorf("device %+v, precision %q (manifest %q)", d, res.Precision, export.ReadPrecision(res.Path))
	}
	if labels, _ := os.ReadFile(res.Labels); string(labels) != "circle\nsquare\ntriangle\n" {
		t.Errorf("labels.txt = %q", labels)
	}
	if names := checkNames(res.Verification.Candidates); !slices.Equal(names, []string{"savedmodel serving_default", "savedmodel predict_images"}) {
		t.Fatalf("candidates %v: want both the encoded-bytes and the float signature", names)
	}
	// The same weights in the same graph on the same pixels: nothing may move.
	if a := res.Verification.Candidates[1].Agreement; a.Agreement != 1 || a.MaxAbsDiff > 1e-6 {
		t.Errorf("predict_images of the export differs from the trained model: %+v", a)
	}

	again := exportJSON(t, "--run", runDir, "--out", out, "--name", "shapes", "--images", "4", "--min-agreement", "0")
	if again.Version != 2 {
		t.Errorf("second export: version %d, want 2", again.Version)
	}
	onlyVersions(t, base, "1", "2")

	jpeg := demoJPEG(t)
	probs, classes := capiServe(t, res.Path, jpeg)
	py := pythonServe(t, res.Path, jpeg)
	if !slices.Equal(py.Classes, classes) || !slices.Equal(classes, []string{"circle", "square", "triangle"}) {
		t.Errorf("classes: Python %v, C API %v", py.Classes, classes)
	}
	for i := range probs {
		if math.Abs(float64(probs[i])-py.Probabilities[i]) > 1e-5 {
			t.Errorf("probability %d: C API %v, Python tf.saved_model.load %v", i, probs[i], py.Probabilities[i])
		}
	}
	if metrics.Argmax(probs) != metrics.Argmax(py.Probabilities) {
		t.Errorf("top-1: C API %d, Python %d", metrics.Argmax(probs), metrics.Argmax(py.Probabilities))
	}
	for k, v := range py.FreshFingerprint {
		if py.Fingerprint[k] != v {
			t.Errorf("fingerprint.pb %s = %s, TensorFlow computes %s for the exported files", k, py.Fingerprint[k], v)
		}
	}
	checkSavedModelCLI(t, res.Path)
	checkExportCalibration(t, runDir, res)
}

// checkExportCalibration: the export's result and its manifest carry the
// run's temperature and "unknown" threshold.
func checkExportCalibration(t *testing.T, runDir string, res *export.Result) {
	t.Helper()
	r, err := runs.Open(runDir)
	if err != nil {
		t.Fatal(err)
	}
	fit := r.Info.Calibration
	if fit == nil || fit.Reject == nil {
		t.Fatalf("run.json of %s has no calibration with a threshold", runDir)
	}
	manifest, err := export.ReadCalibration(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	for what, c := range map[string]*calibrate.Deployed{"result": res.Calibration, "manifest": manifest} {
		if c == nil || c.Temperature != fit.Temperature || c.Reject == nil || *c.Reject != *fit.Reject {
			t.Errorf("%s calibration %+v, want temperature %v and threshold %+v", what, c, fit.Temperature, fit.Reject)
		}
	}
}

// TestExportServingDecodesLikeTraining: serving_default, fed the dataset's
// own encoded images, must agree with the trained model, which saw the same
// images decoded by xcept's Go decoder, on 99% of them (the default gate).
// It fails when the graph decodes JPEG differently from training.
func TestExportServingDecodesLikeTraining(t *testing.T) {
	runDir := trainedRun(t)
	code, stdout, stderr := runXcept(t, nil, "--json", "export", "--run", runDir, "--out", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %s\nTraining decodes JPEG with Go's image/jpeg, which does no fancy upsampling. On the demo images, "+
			"tf.io.decode_image's defaults differ from it by up to 84 levels (mean 1.4); "+
			"tf.io.decode_jpeg(fancy_upscaling=False, dct_method=\"INTEGER_ACCURATE\") by at most 3 (mean 0.14)", code, stderr)
	}
	var res export.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err)
	}
	checkAgreement(t, &res, 0.99)
}

func checkNames(checks []export.Check) []string {
	var names []string
	for _, c := range checks {
		names = append(names, c.Name)
	}
	return names
}

// demoJPEG is a 160×120 JPEG of a demo shape: another size than the
// model's 96 px, so that the in-graph resize is exercised.
func demoJPEG(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	gen := demodata.Defaults()
	gen.Classes, gen.PerClass, gen.Width, gen.Height, gen.Format, gen.Seed = 3, 1, 160, 120, "jpeg", 11
	if err := demodata.Generate(dir, gen); err != nil {
		t.Fatal(err)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "square", "*.jpg"))
	if len(matches) == 0 {
		t.Fatal("demodata wrote no square JPEG")
	}
	data, err := os.ReadFile(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// capiServe runs serving_default of the exported SavedModel on one encoded
// image through xcept's own C API binding.
func capiServe(t *testing.T, dir string, image []byte) ([]float32, []string) {
	t.Helper()
	s, err := graph.LoadSavedModel(dir, graph.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in, err := graph.NewStrings([]int64{1}, [][]byte{image})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := s.Run("serving_default", map[string]*graph.Tensor{"image_bytes": in}, "probabilities", "classes")
	if err != nil {
		t.Fatal(err)
	}
	defer out[0].Close()
	defer out[1].Close()
	probs, err := out[0].Float32s()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := out[1].Strings()
	if err != nil {
		t.Fatal(err)
	}
	var classes []string
	for _, c := range raw {
		classes = append(classes, string(c))
	}
	return probs, classes
}

type pythonServing struct {
	Probabilities    []float64         `json:"probabilities"`
	Classes          []string          `json:"classes"`
	Fingerprint      map[string]string `json:"fingerprint"`
	FreshFingerprint map[string]string `json:"fresh_fingerprint"`
}

// pythonServe loads the export with Python's tf.saved_model.load, calls
// serving_default on the image, and reads the fingerprint file next to the
// one TensorFlow computes for the exported files.
func pythonServe(t *testing.T, dir string, image []byte) pythonServing {
	t.Helper()
	py := testenv.Python(t)
	path := filepath.Join(t.TempDir(), "image.jpg")
	if err := os.WriteFile(path, image, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `
import json, sys
import tensorflow as tf
from tensorflow.core.protobuf import fingerprint_pb2
from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting

d = sys.argv[1]
model = tf.saved_model.load(d)
out = model.signatures["serving_default"](image_bytes=tf.constant([open(sys.argv[2], "rb").read()]))
fields = ("saved_model_checksum", "graph_def_program_hash", "signature_def_hash", "saved_object_graph_hash", "checkpoint_hash")
ours = fingerprint_pb2.FingerprintDef.FromString(open(d + "/fingerprint.pb", "rb").read())
fresh = fingerprint_pb2.FingerprintDef.FromString(fingerprinting.CreateFingerprintDef(d))
print(json.dumps({
    "probabilities": out["probabilities"].numpy()[0].tolist(),
    "classes": [c.decode() for c in out["classes"].numpy()[0]],
    "fingerprint": {f: str(getattr(ours, f)) for f in fields},
    "fresh_fingerprint": {f: str(getattr(fresh, f)) for f in fields},
}))
`
	cmd := exec.Command(py, "-c", script, dir, path)
	cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=3", "TF_USE_LEGACY_KERAS=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tf.saved_model.load: %v", err)
	}
	var res pythonServing
	if err := json.Unmarshal(lastLineOf(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return res
}

// checkSavedModelCLI: TensorFlow's own saved_model_cli lists the export's
// signatures with their inputs and outputs.
func checkSavedModelCLI(t *testing.T, dir string) {
	t.Helper()
	cli := filepath.Join(filepath.Dir(testenv.Python(t)), "saved_model_cli")
	cmd := exec.Command(cli, "show", "--dir", dir, "--all")
	cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=3")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("saved_model_cli show --all: %v", err)
	}
	text := string(out)
	for _, want := range []string{
		"signature_def['serving_default']", "inputs['image_bytes']", "outputs['classes']",
		"signature_def['predict_images']", "signature_def['predict']", "outputs['probabilities']",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("saved_model_cli show --all does not list %s:\n%s", want, text)
		}
	}
}

func lastLineOf(b []byte) []byte {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return []byte(lines[len(lines)-1])
}

// TestExportTFLite converts in parallel: each conversion is one mostly
// single-threaded Python process.
func TestExportTFLite(t *testing.T) {
	runDir := trainedRun(t)
	cfg := filepath.Join(t.TempDir(), "export.yaml")
	if err := os.WriteFile(cfg, []byte("export:\n  representative_images: 16\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		quantize string
		images   string
		check    func(t *testing.T, res *export.Result)
	}{
		{"none", "200", func(t *testing.T, res *export.Result) {
			checkAgreement(t, res, 0.99)
			checkFloatSpec(t, res)
			checkMediaPipe(t, trainedRun(t), res)
		}},
		{"float16", "200", func(t *testing.T, res *export.Result) { checkAgreement(t, res, 0.99); checkFloatSpec(t, res) }},
		{"int8", "8", func(t *testing.T, res *export.Result) { checkInt8(t, res); checkMediaPipe(t, trainedRun(t), res) }},
	}
	for _, tt := range tests {
		t.Run(tt.quantize, func(t *testing.T) {
			t.Parallel()
			out := t.TempDir()
			res := exportJSON(t, "--config", cfg, "--run", runDir, "--out", out, "--format", "tflite", "--quantize", tt.quantize, "--images", tt.images)
			file := map[string]string{"none": "float32"}[tt.quantize]
			if file == "" {
				file = tt.quantize
			}
			if want := filepath.Join(out, "shapes-tflite", "1", "shapes_"+file+".tflite"); res.Artefact != want {
				t.Errorf("artefact %s, want %s", res.Artefact, want)
			}
			if labels, _ := os.ReadFile(res.Labels); string(labels) != "circle\nsquare\ntriangle\n" {
				t.Errorf("labels.txt beside it: %q", labels)
			}
			var manifest export.Result
			data, _ := os.ReadFile(filepath.Join(res.Path, export.ManifestFile))
			if err := json.Unmarshal(data, &manifest); err != nil || manifest.Quantize != tt.quantize || !manifest.Verification.Passed {
				t.Errorf("export.json: %v, %s", err, data)
			}
			onlyVersions(t, filepath.Join(out, "shapes-tflite"), "1")
			checkExportCalibration(t, runDir, res)
			tt.check(t, res)
		})
	}
}

func checkFloatSpec(t *testing.T, res *export.Result) {
	t.Helper()
	in, outs := res.Signatures[0].Inputs[0], res.Signatures[0].Outputs[0]
	if in.Name != "images" || in.DType != "float32" || !slices.Equal(in.Shape, []int64{-1, 96, 96, 3}) || in.Quantization != nil ||
		outs.Name != "probabilities" || outs.DType != "float32" || !slices.Equal(outs.Shape, []int64{-1, 3}) {
		t.Errorf("spec %+v -> %+v", in, outs)
	}
}

// checkInt8: uint8 in and out, the input quantized so that its bytes are
// the pixel values; the agreement is reported (printed) but not gated.
func checkInt8(t *testing.T, res *export.Result) {
	t.Helper()
	in, out := res.Signatures[0].Inputs[0], res.Signatures[0].Outputs[0]
	if in.DType != "uint8" || in.Quantization == nil || in.Quantization.Scale != 1 || in.Quantization.ZeroPoint != 0 {
		t.Errorf("int8 input %+v: want uint8 pixels with scale 1 and zero point 0", in)
	}
	if out.DType != "uint8" || out.Quantization == nil || out.Quantization.Scale != 1.0/256 {
		t.Errorf("int8 output %+v: want uint8 probabilities in 1/256 steps", out)
	}
	v := res.Verification
	if v.MinAgreement != 0 || v.Images != 8 {
		t.Errorf("int8 verification: min_agreement %v on %d images; want ungated, 8 images", v.MinAgreement, v.Images)
	}
	a := v.Candidates[0].Agreement
	t.Logf("tflite int8: %d images, agreement %.3f, max |Δp| %.3f", v.Images, a.Agreement, a.MaxAbsDiff)
}

func TestExportONNX(t *testing.T) {
	runDir := trainedRun(t)
	out := t.TempDir()
	res := exportJSON(t, "--run", runDir, "--out", out, "--format", "onnx", "--images", "8")
	if res.Artefact != filepath.Join(out, "shapes-onnx", "1", "shapes.onnx") {
		t.Errorf("artefact %s", res.Artefact)
	}
	checkAgreement(t, res, 0.99)
	if c := res.Verification.Candidates[0]; c.Agreement.MaxAbsDiff > 1e-4 || c.Runtime != "onnxruntime" {
		t.Errorf("onnx: %+v, max |Δp| %g: want float32 to match to 1e-4", c, c.Agreement.MaxAbsDiff)
	}
	checkFloatSpec(t, res)
	checkExportCalibration(t, runDir, res)
	// onnxruntime reads the calibration from the file's own metadata.
	script := `
import json, sys
import onnxruntime as ort
print(json.dumps(ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map))
`
	data, err := exec.Command(testenv.Python(t), "-c", script, res.Artefact).Output()
	if err != nil {
		t.Fatalf("onnxruntime metadata: %v", err)
	}
	var meta map[string]string
	if err := json.Unmarshal(data, &meta); err != nil {
		t.Fatalf("onnxruntime metadata %q: %v", data, err)
	}
	c := res.Calibration
	if meta[export.ONNXKeyTemperature] != strconv.FormatFloat(c.Temperature, 'g', -1, 64) ||
		meta[export.ONNXKeyRejectThreshold] != strconv.FormatFloat(c.Reject.Threshold, 'g', -1, 64) ||
		meta[export.ONNXKeyRejectScore] != c.Reject.Score || meta[export.ONNXKeyRejectAccept] != "0.95" {
		t.Errorf("ONNX metadata_props %v, want the calibration %+v, %+v", meta, c, c.Reject)
	}
}

// TestExportFailsCleanly: every refusal is one line with its documented
// exit code, and leaves nothing in the output folder.
func TestExportFailsCleanly(t *testing.T) {
	runDir := trainedRun(t)
	noCheckpoint := filepath.Join(t.TempDir(), "fresh")
	os.Mkdir(noCheckpoint, 0o755)
	runJSON, err := os.ReadFile(filepath.Join(runDir, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(noCheckpoint, "run.json"), runJSON, 0o644)
	aFile := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(aFile, []byte("not a folder"), 0o644)

	type tc struct {
		name string
		args []string
		env  map[string]string
		out  string // the output folder that must stay absent or empty
		code int
		want string
	}
	cases := []tc{
		{name: "unknown format", args: []string{"--format", "pt"}, code: cli.ExitUsage, want: `--format "pt": use one of savedmodel, tflite, onnx`},
		{name: "quantized savedmodel", args: []string{"--quantize", "int8"}, code: cli.ExitUsage, want: "applies to --format tflite only"},
		{name: "threshold as a percentage", args: []string{"--min-agreement", "99"}, code: cli.ExitUsage, want: "--min-agreement 99"},
		{name: "no checkpoint", args: []string{"--run", noCheckpoint}, code: cli.ExitModel, want: "has no best checkpoint yet"},
		{name: "not a run", args: []string{"--run", t.TempDir()}, code: cli.ExitData, want: "not an xcept run"},
		{name: "output under a file", out: filepath.Join(aFile, "exports"),
			code: cli.ExitData, want: "choose a folder you can write to"},
	}
	if py := "/usr/bin/python3"; exec.Command(py, "-c", "import onnx").Run() != nil && exec.Command(py, "-c", "pass").Run() == nil {
		// A Python without tf2onnx: the converter says so in one line, after
		// the SavedModel was written to the scratch folder, which must go.
		cases = append(cases, tc{name: "onnx without tf2onnx", args: []string{"--format", "onnx"}, env: map[string]string{"XCEPT_PYTHON": py},
			code: cli.ExitModel, want: "ONNX export needs tf2onnx"})
	}
	if os.Geteuid() != 0 { // root writes into a 0555 folder anyway
		readOnly := filepath.Join(t.TempDir(), "ro")
		os.Mkdir(readOnly, 0o555)
		cases = append(cases, tc{name: "read-only output", out: readOnly, code: cli.ExitData, want: "permission denied"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := c.out
			if out == "" {
				out = filepath.Join(t.TempDir(), "exports")
			}
			args := append([]string{"-q", "export", "--run", runDir, "--out", out}, c.args...)
			code, stdout, stderr := runXcept(t, c.env, args...)
			if code != c.code || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 || stdout != "" {
				t.Errorf("exit %d, stderr %q, stdout %q; want exit %d and one line containing %q", code, stderr, stdout, c.code, c.want)
			}
			entries, err := os.ReadDir(out)
			if err == nil && len(entries) > 0 || err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				t.Errorf("%s after the failure: %v, %v", out, entries, err)
			}
		})
	}
}

// TestExportThresholdSelection: float32 and float16 are gated at
// export.min_agreement, dynamic and int8 at export.min_agreement_quantized
// (0: reported only), and --min-agreement overrides either.
func TestExportThresholdSelection(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want float64
	}{
		{"savedmodel", nil, nil, 0.99},
		{"tflite float16", []string{"--format", "tflite", "--quantize", "float16"}, nil, 0.99},
		{"tflite int8", []string{"--format", "tflite", "--quantize", "int8"}, nil, 0},
		{"tflite dynamic", []string{"--format", "tflite", "--quantize", "dynamic"}, nil, 0},
		{"int8 with the flag", []string{"--format", "tflite", "--quantize", "int8", "--min-agreement", "0.9"}, nil, 0.9},
		{"int8 from the environment", []string{"--format", "tflite", "--quantize", "int8"}, map[string]string{"XCEPT_EXPORT_MIN_AGREEMENT_QUANTIZED": "0.8"}, 0.8},
		{"float from the environment", []string{"--format", "onnx"}, map[string]string{"XCEPT_EXPORT_MIN_AGREEMENT": "0.95"}, 0.95},
		{"the flag switches the float gate off", []string{"--min-agreement", "0"}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			g := &Globals{Output: cli.Output{Stdout: io.Discard, Stderr: io.Discard}}
			cmd := NewExportCmd(g)
			if err := cmd.ParseFlags(append([]string{"--run", "runs/x"}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			var o ExportOptions
			o.Export.RunDir = "runs/x"
			minAgreement, _ := cmd.Flags().GetFloat64("min-agreement")
			if err := o.fromConfig(g, cmd, minAgreement); err != nil {
				t.Fatal(err)
			}
			if o.Export.MinAgreement != tt.want {
				t.Errorf("min agreement %v, want %v", o.Export.MinAgreement, tt.want)
			}
		})
	}
}

// TestExportInterrupted: Ctrl-C while the converter runs stops it, exits
// with 130 and leaves nothing in the output folder.
func TestExportInterrupted(t *testing.T) {
	runDir := trainedRun(t)
	out := filepath.Join(t.TempDir(), "exports")
	cmd, lines := startXcept(t, "export", "--run", runDir, "--out", out, "--format", "tflite")
	waitFor(t, lines, "converting with", 10*time.Minute)
	time.Sleep(time.Second) // inside the converter, which takes far longer
	cmd.Process.Signal(os.Interrupt)
	rest, err := finish(cmd, lines)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != cli.ExitInterrupted {
		t.Fatalf("after SIGINT: %v, stderr %q", err, rest)
	}
	if !strings.Contains(rest, "xcept: interrupted") {
		t.Errorf("stderr %q", rest)
	}
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		entries, _ := os.ReadDir(filepath.Join(out, "shapes-tflite"))
		t.Errorf("the interrupted export left %s (%v)", out, entries)
	}
}
