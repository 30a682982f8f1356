package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/export"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/model"
	runs "github.com/xcept/xcept/internal/run"
	"github.com/xcept/xcept/internal/testenv"
	"github.com/xcept/xcept/internal/testmodel"
)

// restoredServing writes the run's serving SavedModel with its best
// checkpoint's weights to dst, the way an export does: the graph copied,
// the variables saved through the SaverDef from a restored session.
func restoredServing(t *testing.T, runDir, dst string) {
	t.Helper()
	r, err := runs.Open(runDir)
	if err != nil {
		t.Fatal(err)
	}
	copyFolder(t, filepath.Join(r.Info.Model, model.ServingDir), dst)
	s, err := graph.LoadSavedModel(dst, graph.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := r.Restore(s, runs.Best); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(filepath.Join(dst, "variables", "variables")); err != nil {
		t.Fatal(err)
	}
}

func copyFolder(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// predictJSON runs `xcept --json predict` and decodes its lines.
func predictJSON(t *testing.T, args ...string) (int, []predictLine, string) {
	t.Helper()
	code, stdout, stderr := runXcept(t, nil, append([]string{"--json", "predict", "--top-k", "3"}, args...)...)
	var lines []predictLine
	dec := json.NewDecoder(strings.NewReader(stdout))
	for dec.More() {
		var l predictLine
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("--json output: %v\n%s", err, stdout)
		}
		lines = append(lines, l)
	}
	return code, lines, stderr
}

// probsOf returns a line's probabilities in class order.
func probsOf(l predictLine) []float64 {
	p := make([]float64, len(l.Top))
	for _, c := range l.Top {
		p[c.Index] = c.Probability
	}
	return p
}

func maxDiff(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

// quadrantJPEG writes one held-out quadrant image as a JPEG file.
func quadrantJPEG(t *testing.T) string {
	t.Helper()
	img, _, err := imageio.Decode(mustRead(t, quadrantImages(t, 1, 21)[1]), imageio.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	jpg, _ := imageio.Encode(img, imageio.JPEG, 90)
	path := filepath.Join(t.TempDir(), "photo.jpg")
	if err := os.WriteFile(path, jpg, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// testPredictMatchesExport: a JPEG gives the same probabilities through
// --run, through --model on the restored serving SavedModel in a TF
// Serving layout (newest version picked), and through Python's
// tf.saved_model.load of that model, which is what TF Serving runs.
func testPredictMatchesExport(t *testing.T, runDir string) {
	photo := quadrantJPEG(t)
	base := t.TempDir()
	r, _ := runs.Open(runDir)
	copyFolder(t, filepath.Join(r.Info.Model, model.ServingDir), filepath.Join(base, "1")) // untrained: must not be picked
	restoredServing(t, runDir, filepath.Join(base, "2"))

	code, viaRun, stderr := predictJSON(t, "--run", runDir, photo)
	if code != 0 || len(viaRun) != 1 || viaRun[0].Converted != "" {
		t.Fatalf("--run: exit %d %+v %s", code, viaRun, stderr)
	}
	code, viaModel, stderr := predictJSON(t, "--model", base, photo)
	if code != 0 || len(viaModel) != 1 {
		t.Fatalf("--model: exit %d %+v %s", code, viaModel, stderr)
	}
	want := probsOf(viaRun[0])
	if d := maxDiff(want, probsOf(viaModel[0])); d > 1e-6 {
		t.Errorf("--run %v, --model %v: differ by %g", want, probsOf(viaModel[0]), d)
	}
	code, untrained, _ := predictJSON(t, "--model", filepath.Join(base, "1"), photo)
	if code != 0 || maxDiff(want, probsOf(untrained[0])) < 1e-3 {
		t.Errorf("the untrained version 1 predicts like the trained one (%v): the test cannot tell versions apart", probsOf(untrained[0]))
	}

	py := testenv.Python(t)
	script := `
import json, sys
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
data = open(sys.argv[2], "rb").read()
out = model.signatures["serving_default"](image_bytes=tf.constant([data]))
print(json.dumps(out["probabilities"].numpy()[0].tolist()))
`
	cmd := exec.Command(py, "-c", script, filepath.Join(base, "2"), photo)
	cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=3")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var python []float64
	if err := json.Unmarshal(lastLine(out), &python); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	if d := maxDiff(want, python); d > 1e-5 {
		t.Errorf("xcept %v, Python's serving_default %v: differ by %g", want, python, d)
	}
	t.Logf("probabilities via --run %v, Python max |Δ| %.2g", want, maxDiff(want, python))
}

// tiffOrientation is a big-endian TIFF header whose one IFD entry is the
// EXIF orientation tag.
func tiffOrientation(o int) []byte {
	return []byte{'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, byte(o), 0, 0, 0, 0, 0, 0}
}

// withJPEGOrientation inserts an EXIF APP1 segment after the SOI marker.
func withJPEGOrientation(jpg []byte, o int) []byte {
	payload := append([]byte("Exif\x00\x00"), tiffOrientation(o)...)
	seg := append([]byte{0xFF, 0xE1, byte((len(payload) + 2) >> 8), byte(len(payload) + 2)}, payload...)
	return append(append(append([]byte{}, jpg[:2]...), seg...), jpg[2:]...)
}

// withPNGOrientation inserts an eXIf chunk after IHDR (8-byte signature,
// then IHDR's 25 bytes).
func withPNGOrientation(data []byte, o int) []byte {
	body := append([]byte("eXIf"), tiffOrientation(o)...)
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(body)-4))
	chunk = append(chunk, body...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(body))
	return append(append(append([]byte{}, data[:33]...), chunk...), data[33:]...)
}

// storedFor6 is how a camera stores an upright picture it tags with
// orientation 6 (shown after turning 90° clockwise): turned anticlockwise.
func storedFor6(up *image.RGBA) *image.RGBA {
	w, h := up.Rect.Dx(), up.Rect.Dy()
	out := image.NewRGBA(image.Rect(0, 0, h, w))
	for y := range h {
		for x := range w {
			out.SetRGBA(y, w-1-x, up.RGBAAt(x, y))
		}
	}
	return out
}

// testPredictEXIF: a file stored turned, with an EXIF tag saying so, is
// predicted upright: the same probabilities as the upright file when the
// pixels are the same (PNG), the same top-1 through a JPEG.
func testPredictEXIF(t *testing.T, runDir string) {
	src := quadrantImages(t, 1, 33)[0] // evidence in one quadrant: turning it moves the evidence
	up, _, err := imageio.Decode(mustRead(t, src), imageio.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stored := storedFor6(up)
	upPNG, _ := imageio.Encode(up, imageio.PNG, 0)
	storedPNG, _ := imageio.Encode(stored, imageio.PNG, 0)
	upJPG, _ := imageio.Encode(up, imageio.JPEG, 95)
	storedJPG, _ := imageio.Encode(stored, imageio.JPEG, 95)
	files := map[string][]byte{
		"up.png": upPNG, "tagged.png": withPNGOrientation(storedPNG, 6), "untagged.png": storedPNG,
		"up.jpg": upJPG, "tagged.jpg": withJPEGOrientation(storedJPG, 6),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The fixture itself: the tagged PNG decodes to exactly the upright pixels.
	if got, _, err := imageio.Decode(files["tagged.png"], imageio.Limits{}); err != nil || !bytes.Equal(got.Pix, up.Pix) {
		t.Fatalf("tagged PNG does not decode upright: %v", err)
	}
	names := []string{"up.png", "tagged.png", "untagged.png", "up.jpg", "tagged.jpg"}
	var args []string
	for _, n := range names {
		args = append(args, filepath.Join(dir, n))
	}
	code, lines, stderr := predictJSON(t, append([]string{"--run", runDir}, args...)...)
	if code != 0 || len(lines) != len(names) {
		t.Fatalf("exit %d, %d lines: %s", code, len(lines), stderr)
	}
	byName := map[string]predictLine{}
	for _, l := range lines {
		byName[filepath.Base(l.File)] = l
	}
	if c := byName["tagged.png"].Converted; c != imageio.ConvOrientation {
		t.Errorf("tagged.png converted %q, want %q", c, imageio.ConvOrientation)
	}
	upProbs, tagged, untagged := probsOf(byName["up.png"]), probsOf(byName["tagged.png"]), probsOf(byName["untagged.png"])
	if d := maxDiff(upProbs, tagged); d > 1e-6 {
		t.Errorf("EXIF-tagged PNG %v, upright %v: differ by %g", tagged, upProbs, d)
	}
	// In log space: the run's calibration can make the probabilities so sure
	// (temperature < 1) that they differ only far below 1e-4.
	if d := maxLogDiff(upProbs, untagged); d < 1e-3 {
		t.Errorf("the turned image without its tag predicts like the upright one (Δ %g): the test cannot fail", d)
	}
	if a, b := byName["up.jpg"].Top[0].Name, byName["tagged.jpg"].Top[0].Name; a != b {
		t.Errorf("upright JPEG predicted %s, EXIF-tagged JPEG %s", a, b)
	}
	t.Logf("upright %v, tagged %v, turned without the tag %v", upProbs, tagged, untagged)
}

// testPredictBadFiles: a folder with broken files reports each and
// predicts the rest; exit 4.
func testPredictBadFiles(t *testing.T, runDir string) {
	dir := t.TempDir()
	good := quadrantImages(t, 1, 44)
	for i, p := range good[:2] {
		if err := os.WriteFile(filepath.Join(dir, []string{"a.png", "c.png"}[i]), mustRead(t, p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	jpg := mustRead(t, quadrantJPEG(t))
	for name, data := range map[string][]byte{
		"b-truncated.jpg": jpg[:len(jpg)/2],
		"d-garbage.jpg":   []byte("this is not a JPEG"),
		"README.txt":      []byte("photos from the field trip"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := runXcept(t, nil, "predict", "--run", runDir, "--top-k", "2", "--batch", "3", dir)
	if code != cli.ExitData || !strings.Contains(stderr, "2 of 4 images could not be read") {
		t.Errorf("exit %d, stderr %q; want %d and a count of the failures", code, stderr, cli.ExitData)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	want := []string{"a.png: ", "b-truncated.jpg: error: truncated", "c.png: ", "d-garbage.jpg: error: not-an-image"}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), stdout)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], filepath.Join(dir, w)) {
			t.Errorf("line %d %q, want it to start with %s", i, lines[i], w)
		}
		if !strings.Contains(w, "error") && strings.Count(lines[i], ",") != 1 {
			t.Errorf("line %d %q: want two classes", i, lines[i])
		}
	}
	code, jsonLines, _ := predictJSON(t, "--run", runDir, dir)
	if code != cli.ExitData || len(jsonLines) != 4 || jsonLines[1].Error == nil || jsonLines[1].Error.Reason != imageio.ReasonTruncated ||
		jsonLines[0].Error != nil || len(jsonLines[0].Top) != 3 {
		t.Errorf("--json: exit %d, %+v", code, jsonLines)
	}

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"run and model", []string{"--run", runDir, "--model", dir, good[0]}, cli.ExitUsage, "give one of --run"},
		{"neither", []string{good[0]}, cli.ExitUsage, "give one of --run"},
		{"no images", []string{"--run", runDir}, cli.ExitUsage, "no images"},
		{"bad top-k", []string{"--run", runDir, "--top-k", "0", good[0]}, cli.ExitUsage, "--top-k 0"},
		{"missing run", []string{"--run", filepath.Join(dir, "nope"), good[0]}, cli.ExitData, "no such run folder"},
		{"missing model", []string{"--model", filepath.Join(dir, "nope"), good[0]}, cli.ExitData, "no such folder"},
		{"model folder", []string{"--model", mustRunModel(t, runDir), good[0]}, cli.ExitData, "is a model folder: pass"},
		{"not a model", []string{"--model", dir, good[0]}, cli.ExitData, "no SavedModel here"},
		{"missing image", []string{"--run", runDir, filepath.Join(dir, "nope.jpg")}, cli.ExitData, "1 of 1 images could not be read"},
		{"empty folder", []string{"--run", runDir, t.TempDir()}, cli.ExitData, "no images in"},
	}
	for _, tt := range tests {
		code, _, stderr := runXcept(t, nil, append([]string{"predict"}, tt.args...)...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", tt.name, code, stderr, tt.code, tt.want)
		}
	}
}

func mustRunModel(t *testing.T, runDir string) string {
	r, err := runs.Open(runDir)
	if err != nil {
		t.Fatal(err)
	}
	return r.Info.Model
}

// lastLine is the last non-empty line of a program's output (libraries
// may print before it).
func lastLine(out []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	return lines[len(lines)-1]
}

// predict --model refuses a SavedModel whose serving_default writes a file
// (before loading it: the file is not written), and runs it with
// --allow-untrusted-model.
func TestPredictRefusesFileWritingModel(t *testing.T) {
	dir, target := testmodel.FileWritingExport(t, "predict")
	photo := quadrantJPEG(t)
	code, _, stderr := predictJSON(t, "--model", dir, photo)
	if code != cli.ExitModel || !strings.Contains(stderr, "op WriteFile") || !strings.Contains(stderr, filepath.Join(dir, "1", "saved_model.pb")) ||
		!strings.Contains(stderr, "--allow-untrusted-model") {
		t.Fatalf("exit %d, stderr %q: want 5 and a line naming op WriteFile, the file and --allow-untrusted-model", code, stderr)
	}
	if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s exists (%v): the refused model ran", target, err)
	}
	code, lines, stderr := predictJSON(t, "--model", dir, "--allow-untrusted-model", photo)
	if code != 0 || len(lines) != 1 {
		t.Fatalf("with --allow-untrusted-model: exit %d %+v %s", code, lines, stderr)
	}
	if _, err := os.Stat(target); err != nil {
		t.Errorf("the model ran, but %s is not there: %v", target, err)
	}
}

// maxLogDiff is the largest difference of the log-probabilities.
func maxLogDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(math.Log(math.Max(a[i], 1e-300))-math.Log(math.Max(b[i], 1e-300))))
	}
	return d
}

// TestPredictReject: --reject answers "unknown" exactly for the images
// whose score is below the threshold: run.json's with --run, the export
// manifest's with --model (set here to the median score, so that both
// answers occur), in JSON and text; a model without a threshold is exit 5.
func TestPredictReject(t *testing.T) {
	runDir := trainedRun(t)
	images, _ := filepath.Glob(filepath.Join(filepath.Dir(trainDataset(t)), "images", "*", "*"))
	images = images[:min(len(images), 24)]
	r, err := runs.Open(runDir)
	if err != nil {
		t.Fatal(err)
	}
	reject := *r.Info.Calibration.Reject
	if reject.Score != calibrate.ScoreLogOdds {
		t.Fatalf("the run's rejection score is %q, want %q", reject.Score, calibrate.ScoreLogOdds)
	}
	code, lines, stderr := predictJSON(t, append([]string{"--run", runDir, "--reject"}, images...)...)
	if code != 0 || len(lines) != len(images) {
		t.Fatalf("--run --reject: exit %d, %d lines for %d images: %s", code, len(lines), len(images), stderr)
	}
	if !strings.Contains(stderr, `answering "unknown" below `+reject.Describe()) {
		t.Errorf("stderr does not name the threshold %+v: %s", reject, stderr)
	}
	var scores []float64
	for _, l := range lines {
		row := rowOf(l) // top-k 3 of 3 classes: every probability
		if l.Unknown == nil || *l.Unknown != (calibrate.LogOdds(row) < reject.Threshold) {
			t.Errorf("%s: probabilities %v, log-odds %v, threshold %v: unknown %v", l.File, row, calibrate.LogOdds(row), reject.Threshold, l.Unknown)
		}
		scores = append(scores, calibrate.LogOdds(row))
	}
	slices.Sort(scores)
	median := scores[len(scores)/2]
	below := slices.IndexFunc(scores, func(c float64) bool { return c >= median })

	res := exportJSON(t, "--run", runDir, "--out", t.TempDir(), "--images", "4", "--min-agreement", "0")
	manifest := filepath.Join(res.Path, export.SavedModelManifest)
	var m map[string]any
	if err := json.Unmarshal(mustRead(t, manifest), &m); err != nil {
		t.Fatal(err)
	}
	m["calibration"].(map[string]any)["reject"].(map[string]any)["threshold"] = median
	data, _ := json.Marshal(m)
	if err := os.WriteFile(manifest, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, lines, stderr = predictJSON(t, append([]string{"--model", filepath.Dir(res.Path), "--reject"}, images...)...)
	unknown := 0
	for _, l := range lines {
		if l.Unknown != nil && *l.Unknown {
			unknown++
		}
	}
	if code != 0 || unknown != below || below == 0 || below == len(images) {
		t.Errorf("--model --reject at the median %.4g: exit %d, %d unknown, want %d of %d: %s", median, code, unknown, below, len(images), stderr)
	}
	code, stdout, _ := runXcept(t, nil, append([]string{"predict", "--model", res.Path, "--reject"}, images...)...)
	if got := strings.Count(stdout, ": unknown (log-odds "); code != 0 || got != below ||
		!strings.Contains(stdout, fmt.Sprintf(" < threshold %.4g): ", median)) {
		t.Errorf("text: exit %d, %d unknown lines, want %d:\n%s", code, got, below, stdout)
	}

	bare := filepath.Join(t.TempDir(), "bare")
	restoredServing(t, runDir, bare)
	code, _, stderr = runXcept(t, nil, "predict", "--model", bare, "--reject", "--allow-untrusted-model", images[0])
	if code != cli.ExitModel || !strings.Contains(stderr, `has no "unknown" threshold`) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
		t.Errorf("a model without a threshold: exit %d, %q; want %d and one line", code, stderr, cli.ExitModel)
	}
}

// rowOf is a predict line's probabilities in class order, as the float32s
// the model answered.
func rowOf(l predictLine) []float32 {
	row := make([]float32, len(l.Top))
	for _, c := range l.Top {
		row[c.Index] = float32(c.Probability)
	}
	return row
}
