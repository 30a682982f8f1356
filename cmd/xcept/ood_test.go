package main

import (
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xcept/xcept/internal/demodata"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/report"
	"github.com/xcept/xcept/internal/testmodel"
)

// fashionMNIST is Debian's dataset-fashion-mnist (apt-get install
// dataset-fashion-mnist); the OOD test uses its test images when present.
const fashionMNIST = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"

// fashionPNGs writes the first n Fashion-MNIST test images (28×28 grey) as
// PNG files in dir; false when the dataset is not installed.
func fashionPNGs(t *testing.T, dir string, n int) ([]string, bool) {
	t.Helper()
	f, err := os.Open(fashionMNIST)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var head [4]uint32
	if err := binary.Read(z, binary.BigEndian, &head); err != nil || head[0] != 2051 {
		t.Fatalf("%s: header %v, %v", fashionMNIST, head, err)
	}
	rows, cols := int(head[2]), int(head[3])
	var paths []string
	for i := range min(n, int(head[1])) {
		img := image.NewRGBA(image.Rect(0, 0, cols, rows))
		px := make([]byte, rows*cols)
		if _, err := io.ReadFull(z, px); err != nil {
			t.Fatal(err)
		}
		for j, v := range px {
			img.Pix[4*j], img.Pix[4*j+1], img.Pix[4*j+2], img.Pix[4*j+3] = v, v, v, 255
		}
		data, err := imageio.Encode(img, imageio.PNG, 0)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("fashion_%03d.png", i))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths, true
}

// oodFolders are folders of images of none of the kitchen classes, laid
// into a quadrant of the same grey canvas as the known images (so that
// only the object differs): Fashion-MNIST clothes when installed, and the
// demo generator's shapes.
func oodFolders(t *testing.T, perSet int) map[string]string {
	t.Helper()
	out := map[string]string{}
	src := t.TempDir()
	if fashion, ok := fashionPNGs(t, src, 200); ok {
		dir := t.TempDir()
		if err := demodata.Composite(dir, map[string][]string{"fashion": fashion}, perSet, testmodel.RealSize, 71); err != nil {
			t.Fatal(err)
		}
		out["fashion-mnist"] = dir
	} else {
		t.Logf("%s is not installed (apt-get install dataset-fashion-mnist): only the demo shapes are used", fashionMNIST)
	}
	gen := demodata.Defaults()
	gen.Classes, gen.PerClass, gen.Width, gen.Height, gen.Seed = 3, 20, 128, 128, 17
	shapes := filepath.Join(src, "shapes")
	if err := demodata.Generate(shapes, gen); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(shapes, "*", "*"))
	dir := t.TempDir()
	if err := demodata.Composite(dir, map[string][]string{"shapes": files}, perSet, testmodel.RealSize, 72); err != nil {
		t.Fatal(err)
	}
	out["demo-shapes"] = dir
	return out
}

// evaluateOOD is evaluate --json's result with the figures this test reads.
type evaluateOOD struct {
	Accuracy float64 `json:"accuracy"`
	Samples  int     `json:"samples"`
	OOD      *struct {
		Threshold     float64 `json:"threshold"`
		Accept        float64 `json:"accept"`
		Known         int     `json:"known_images"`
		Images        int     `json:"ood_images"`
		AUROC         float64 `json:"auroc"`
		KnownAccepted float64 `json:"known_accepted"`
		OODAccepted   float64 `json:"ood_accepted"`
	} `json:"ood"`
	TTA *struct {
		Views         []string
		Without, With struct{ Accuracy, ECE, NLL float64 }
	} `json:"tta"`
	Calibration *struct {
		Evaluated struct{ ECE, NLL float64 } `json:"evaluated"`
	} `json:"calibration"`
}

// TestRealWeightsGradCAMAndOOD trains one real-weights run (the frozen
// phase on cached features, a head for the 5 kitchen classes) and checks
// Grad-CAM's localisation on it (testGradCAMLocalises), then that
// evaluate --ood tells held-out kitchen images from images of none of the
// classes by the calibrated top probability: AUROC well above 0.5, and the threshold
// chosen on the validation split accepts the held-out test images within
// 3 points of the 95% asked. The known images are the real kitchen photos
// (9, in 5 classes) as seeded crops and flips in a quadrant of a grey
// canvas; the OOD images are Fashion-MNIST clothes and demo shapes laid
// into the same canvas. --tta's figures are reported too.
func TestRealWeightsGradCAMAndOOD(t *testing.T) {
	started := time.Now()
	modelDir := testmodel.Real(t)
	dir := t.TempDir()
	images := filepath.Dir(filepath.Dir(realQuadrantImages(t, 120, 5)[0]))
	ds := preparedFolder(t, images, testmodel.RealSize, "0.4,0.3,0.3", modelDir)
	cfg := writeTrainConfig(t, "augment:\n  enabled: false\n")
	runDir := filepath.Join(dir, "runs", "real")
	code, _, stderr := runXcept(t, nil, "--config", cfg, "-q", "train", "--data", ds, "--run", runDir, "--epochs", "30", "--seed", "11")
	if code != 0 {
		t.Fatalf("train: exit %d: %s", code, stderr)
	}
	trained := time.Since(started)
	var runInfo struct {
		FeatureBlocks []string `json:"feature_blocks"`
		Calibration   struct {
			Temperature float64
			Images      int
			Reject      struct {
				Score                           string
				Threshold, Accepted, Confidence float64
			}
		}
	}
	if err := json.Unmarshal(mustRead(t, filepath.Join(runDir, "run.json")), &runInfo); err != nil {
		t.Fatal(err)
	}
	c := runInfo.Calibration
	t.Logf("calibrated on %d validation images: T %.4f, threshold %s %.6g (top probability %.9g) accepts %.4f of them (prepare + frozen phase %.0f s)",
		c.Images, c.Temperature, c.Reject.Score, c.Reject.Threshold, c.Reject.Confidence, c.Reject.Accepted, trained.Seconds())
	// model.feature_blocks auto on real photos: the validation split must
	// pick block14 alone (the middle blocks cost these composites their
	// held-out accuracy, 1.000 → 0.517: README, The model).
	t.Logf("feature blocks chosen on the validation split: %v", runInfo.FeatureBlocks)
	if !slices.Equal(runInfo.FeatureBlocks, []string{"block14"}) {
		t.Errorf("run.json feature_blocks %v: want block14 chosen on these photos", runInfo.FeatureBlocks)
	}
	t.Run("GradCAMLocalises", func(t *testing.T) { testGradCAMLocalises(t, runDir) })
	for name, oodDir := range oodFolders(t, 60) {
		t.Run(name, func(t *testing.T) {
			began, cpu := time.Now(), cpuTime()
			out := t.TempDir()
			args := []string{"--config", cfg, "--json", "evaluate", "--run", runDir, "--out", out, "--ood", oodDir}
			if name == "demo-shapes" { // once: it predicts every test image twice
				args = append(args, "--tta")
			}
			code, stdout, stderr := runXcept(t, nil, args...)
			var res evaluateOOD
			if code != 0 || json.Unmarshal(lastLine([]byte(stdout)), &res) != nil || res.OOD == nil {
				t.Fatalf("evaluate --ood: exit %d: %s %s", code, stdout, stderr)
			}
			o := res.OOD
			t.Logf("%s: %d test images (accuracy %.4f) against %d OOD images: AUROC %.4f; at the threshold %.6g: test images accepted %.4f (asked %.2f), OOD accepted %.4f (evaluate: %.0f s wall, %.0f s CPU)",
				name, o.Known, res.Accuracy, o.Images, o.AUROC, o.Threshold, o.KnownAccepted, o.Accept, o.OODAccepted, time.Since(began).Seconds(), (cpuTime() - cpu).Seconds())
			if tta := res.TTA; tta != nil {
				t.Logf("TTA %v: accuracy %.4f -> %.4f, ECE %.4f -> %.4f, NLL %.4f -> %.4f", tta.Views,
					tta.Without.Accuracy, tta.With.Accuracy, tta.Without.ECE, tta.With.ECE, tta.Without.NLL, tta.With.NLL)
			}
			if o.AUROC < 0.8 {
				t.Errorf("AUROC %.4f: want well above chance (0.5), at least 0.8", o.AUROC)
			}
			// The threshold is a quantile of c.Images validation scores and is
			// judged on o.Known test images: both are samples, so the allowed
			// gap is 3 points or two standard errors of the difference of the
			// two acceptance rates, whichever is larger (0.047 for 178 and 173
			// images; a fixed 3 points failed on a seeded change of the head's
			// initial weights alone, 0.983 accepted).
			tol := math.Max(0.03, 2*math.Sqrt(o.Accept*(1-o.Accept)*(1/float64(c.Images)+1/float64(o.Known))))
			if math.Abs(o.KnownAccepted-o.Accept) > tol {
				t.Errorf("the threshold accepts %.4f of the held-out test images, more than %.3f from the %.2f asked", o.KnownAccepted, tol, o.Accept)
			}
			if o.OODAccepted >= o.KnownAccepted {
				t.Errorf("the threshold accepts %.4f of the OOD images, no fewer than of the known (%.4f)", o.OODAccepted, o.KnownAccepted)
			}
			page, _ := os.ReadFile(filepath.Join(out, report.FileReportHTML))
			if !strings.Contains(string(page), `<section id="ood">`) || !strings.Contains(string(page), fmt.Sprintf("AUROC %.4f", o.AUROC)) {
				t.Errorf("report.html lacks the OOD section")
			}
		})
	}
}

// cpuTime is the user and system time this process has used (evaluate
// runs in it, TensorFlow's threads included).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
