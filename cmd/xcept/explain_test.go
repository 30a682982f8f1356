package main

import (
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/demodata"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/infer"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/testmodel"
)

// quadrantSize is the side of the quadrant model's input. At 128 px
// Xception's last block (block14_sepconv2_act, where Grad-CAM looks) is
// 4×4, so each quadrant of an image is exactly 2×2 heatmap cells; at 96 px
// it is 3×3, whose middle row and column belong to no quadrant.
const quadrantSize = 128

// quadrantSpec is the tiny test model at quadrantSize.
func quadrantSpec() model.Spec {
	s := testmodel.TinySpec()
	s.ImageSize = quadrantSize
	return s
}

// quadrantRun is a run of the tiny model trained on demo images whose
// shape sits in one quadrant (named in the file name): the frozen phase on
// cached features, no augmentation (a flip would move the evidence), a
// bolder learning rate than the recipe's for an untrained base. The
// evaluate, predict and explain tests share it; it lives in t's temporary
// folder, so the tests using it are subtests of TestTrainedQuadrantRun.
func quadrantRun(t *testing.T) (runDir string) {
	t.Helper()
	modelDir := testmodel.Build(t, quadrantSpec())
	dir := t.TempDir()
	gen := demodata.Defaults()
	gen.Classes, gen.PerClass, gen.Width, gen.Height, gen.Seed, gen.Quadrant = 3, 150, quadrantSize, quadrantSize, 3, true
	if err := demodata.Generate(filepath.Join(dir, "images"), gen); err != nil {
		t.Fatal(err)
	}
	ds := filepath.Join(dir, "ds")
	if code, _, stderr := runXcept(t, nil, "-q", "prepare", "--data", filepath.Join(dir, "images"), "--out", ds,
		"--image-size", fmt.Sprint(quadrantSize), "--no-model"); code != 0 {
		t.Fatalf("prepare: %s", stderr)
	}
	if err := os.Symlink(modelDir, filepath.Join(ds, "model")); err != nil {
		t.Fatal(err)
	}
	cfg := writeTrainConfig(t, "augment:\n  enabled: false\ncallbacks:\n  early_stopping:\n    patience: 15\n")
	runDir = filepath.Join(dir, "runs", "quadrants")
	code, _, stderr := runXcept(t, nil, "--config", cfg, "-q", "train", "--data", ds, "--run", runDir,
		"--epochs", "60", "--lr", "5e-4", "--seed", "11")
	if code != 0 {
		t.Fatalf("train: exit %d: %s", code, stderr)
	}
	return runDir
}

// quadrantImages writes perClass held-out quadrant images per class (PNG:
// no JPEG ringing around the shape) and returns their paths.
func quadrantImages(t *testing.T, perClass int, seed uint64) []string {
	t.Helper()
	dir := t.TempDir()
	gen := demodata.Defaults()
	gen.Classes, gen.PerClass, gen.Width, gen.Height, gen.Seed, gen.Quadrant, gen.Format = 3, perClass, quadrantSize, quadrantSize, seed, true, "png"
	if err := demodata.Generate(dir, gen); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, c := range demodata.ClassNames(3) {
		entries, _ := os.ReadDir(filepath.Join(dir, c))
		for _, e := range entries {
			paths = append(paths, filepath.Join(dir, c, e.Name()))
		}
	}
	return paths
}

// TestTrainedQuadrantRun trains one run and checks evaluate --run,
// predict and explain against it.
func TestTrainedQuadrantRun(t *testing.T) {
	runDir := quadrantRun(t)
	t.Run("GradCAMLocalisesTheEvidence", func(t *testing.T) { testGradCAMLocalises(t, runDir) })
	t.Run("ExplainVerb", func(t *testing.T) { testExplainVerb(t, runDir) })
	t.Run("EvaluateRun", func(t *testing.T) { testEvaluateRun(t, runDir) })
	t.Run("EvaluateRunExitCodes", func(t *testing.T) { testEvaluateRunExitCodes(t, runDir) })
	t.Run("PredictSameAsExportedModelAndPython", func(t *testing.T) { testPredictMatchesExport(t, runDir) })
	t.Run("PredictEXIFUpright", func(t *testing.T) { testPredictEXIF(t, runDir) })
	t.Run("PredictReportsBadFiles", func(t *testing.T) { testPredictBadFiles(t, runDir) })
}

// quadrantMass is the share of a heatmap's mass (upsampled to the image,
// as the overlay shows it) in each quadrant: 0 top-left, 1 top-right,
// 2 bottom-left, 3 bottom-right.
func quadrantMass(e infer.Explanation, size int) [4]float64 {
	p := infer.Place(size, size, size, imageio.Squash)
	var mass [4]float64
	for y := range size {
		for x := range size {
			v, _ := e.HeatAt(p, float64(x)+0.5, float64(y)+0.5)
			mass[(y*2/size)*2+x*2/size] += v
		}
	}
	total := mass[0] + mass[1] + mass[2] + mass[3]
	for i := range mass {
		if total > 0 {
			mass[i] /= total
		}
	}
	return mass
}

// testGradCAMLocalises: on held-out images whose evidence is in one
// quadrant, the heatmap of the predicted class must put its mass there
// far more often than chance (a quarter). The mirrored quadrants are
// measured too: a heatmap flipped or transposed on its way to the image
// would favour one of them.
//
// The tiny model's base is untrained (weights none, offline), and its
// random features have a fixed spatial pattern (the middle cells are warm
// for every image) that no head training removes: the evidence quadrant
// gets about 0.30 of the mass and is the heaviest in about half of the
// images (two thirds of those predicted correctly), not most of the mass.
// The thresholds sit at three standard deviations above chance: met by a
// working Grad-CAM, missed by a broken or misplaced one.
func testGradCAMLocalises(t *testing.T, runDir string) {
	r, err := infer.OpenRun(runDir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := infer.OpenTrainer(r, graph.SessionOptions{IntraOpThreads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	paths := quadrantImages(t, 20, 99)
	var share, mirroredX, mirroredY, diagonal, top, correct, correctTop, zero float64
	for start := 0; start < len(paths); start += 10 {
		batch := paths[start:min(start+10, len(paths))]
		var pixels []uint8
		for _, p := range batch {
			img, ferr := infer.Decode(infer.Input{Path: p}, infer.Limits{})
			if ferr != nil {
				t.Fatal(ferr)
			}
			pixels = append(pixels, infer.Square(img, quadrantSize, imageio.Squash)...)
		}
		classes := make([]int32, len(batch))
		for i := range classes {
			classes[i] = infer.PredictedClass
		}
		exps, err := infer.Explain(m, pixels, classes)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range batch {
			e := exps[i]
			if e.H != 4 || e.W != 4 {
				t.Fatalf("heatmap %d×%d at %d px, want 4×4", e.H, e.W, quadrantSize)
			}
			q, _ := demodata.QuadrantOf(p)
			mass := quadrantMass(e, quadrantSize)
			if mass == [4]float64{} {
				zero++ // ReLU left nothing: no evidence for the class anywhere
			}
			share += mass[q]
			mirroredX += mass[q^1]
			mirroredY += mass[q^2]
			diagonal += mass[q^3]
			best := 0
			for j := range mass {
				if mass[j] > mass[best] {
					best = j
				}
			}
			hit := best == q && mass[q] > 0
			if hit {
				top++
			}
			if m.Info.Classes[e.Class] == filepath.Base(filepath.Dir(p)) {
				correct++
				if hit {
					correctTop++
				}
			}
		}
	}
	n := float64(len(paths))
	t.Logf("Grad-CAM on %d held-out quadrant images (accuracy %.3f): mean share of the heatmap mass in the evidence quadrant %.3f "+
		"(mirrored left-right %.3f, top-bottom %.3f, diagonally %.3f; chance 0.25); evidence quadrant has the most mass in %.3f of images "+
		"(%.3f of the %d predicted correctly); %d heatmaps all zero",
		len(paths), correct/n, share/n, mirroredX/n, mirroredY/n, diagonal/n, top/n, correctTop/max(1, correct), int(correct), int(zero))
	if top/n < 0.45 {
		t.Errorf("the evidence quadrant has the most heatmap mass in %.3f of images, want at least 0.45 (chance 0.25)", top/n)
	}
	if share/n < 0.28 || share <= mirroredX || share <= mirroredY || share <= diagonal {
		t.Errorf("mean share in the evidence quadrant %.3f (mirrored %.3f, %.3f, %.3f): want at least 0.28 and more than any mirror",
			share/n, mirroredX/n, mirroredY/n, diagonal/n)
	}
}

// testExplainVerb runs `xcept explain` as users do.
func testExplainVerb(t *testing.T, runDir string) {
	paths := quadrantImages(t, 1, 7)
	out := t.TempDir()
	code, stdout, stderr := runXcept(t, nil, "--json", "explain", "--run", runDir, "--out", out, paths[0], paths[1], paths[2])
	if code != 0 {
		t.Fatalf("explain: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d JSON lines for 3 images:\n%s", len(lines), stdout)
	}
	for i, line := range lines {
		var l explainLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatal(err)
		}
		want := filepath.Join(out, strings.TrimSuffix(filepath.Base(paths[i]), ".png")+".gradcam.png")
		if l.File != paths[i] || l.GradCAM != want || l.Class != l.Predicted || l.Probability != l.PredictedProbability ||
			l.ClassIndex == nil || l.Probability <= 0 || l.Probability > 1 {
			t.Errorf("line %d: %+v", i, l)
		}
		f, err := os.Open(want)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil || cfg.Width != quadrantSize || cfg.Height != quadrantSize {
			t.Errorf("%s: %v, %dx%d; want a PNG the size of the image", want, err, cfg.Width, cfg.Height)
		}
	}
	// --class by name and by index explains that class, whatever is predicted.
	for _, class := range []string{"square", "1"} {
		code, stdout, stderr = runXcept(t, nil, "--json", "explain", "--run", runDir, "--out", out, "--class", class, paths[0])
		var l explainLine
		if code != 0 || json.Unmarshal([]byte(stdout), &l) != nil || l.Class != "square" || *l.ClassIndex != 1 {
			t.Errorf("--class %s: exit %d, %s %s", class, code, stdout, stderr)
		}
	}
	// The same base name twice does not overwrite the first overlay.
	code, stdout, _ = runXcept(t, nil, "explain", "--run", runDir, "--out", out, paths[0], paths[0])
	if code != 0 || !strings.Contains(stdout, "-2.gradcam.png") {
		t.Errorf("the same image twice: exit %d:\n%s", code, stdout)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown class", []string{"--class", "zebra", paths[0]}, cli.ExitUsage, "--class zebra: not a class of the model"},
		{"class index out of range", []string{"--class", "3", paths[0]}, cli.ExitUsage, "want a name or an index 0-2"},
		{"no images", nil, cli.ExitUsage, "no images"},
		{"missing image", []string{paths[0], filepath.Join(out, "nope.png")}, cli.ExitData, "1 of 2 images could not be read"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runXcept(t, nil, append([]string{"explain", "--run", runDir, "--out", out}, tt.args...)...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", tt.name, code, stderr, tt.code, tt.want)
		}
		if tt.name == "missing image" && !strings.Contains(stdout, "nope.png: error: not-found") {
			t.Errorf("missing image not reported on its own line:\n%s", stdout)
		}
	}
	code, stdout, _ = runXcept(t, nil, "--json", "explain", "--run", runDir, "--out", out, filepath.Join(out, "nope.png"))
	if want := `{"file":"` + filepath.Join(out, "nope.png") + `","error":{"reason":"not-found","detail":"no such file or folder"}}`; code != cli.ExitData || strings.TrimSpace(stdout) != want {
		t.Errorf("--json missing image: exit %d, %s; want %s", code, stdout, want)
	}
	if code, _, stderr := runXcept(t, nil, "explain", "--run", filepath.Join(out, "no-run"), paths[0]); code != cli.ExitData {
		t.Errorf("missing run: exit %d (%s), want %d", code, stderr, cli.ExitData)
	}
}
