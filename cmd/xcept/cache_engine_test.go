package main

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/demodata"
	"github.com/xcept/xcept/internal/ort"
	"github.com/xcept/xcept/internal/testenv"
	"github.com/xcept/xcept/internal/testmodel"
)

// TestFeatureCacheEngines builds the frozen phase's feature cache of one
// dataset on TensorFlow and on onnxruntime (the trainer's features
// signature converted once, cached by the model): the same features to a
// tight bound, and the head trained on them the same history.
func TestFeatureCacheEngines(t *testing.T) {
	if err := ort.Load(); err != nil {
		testenv.Unavailable(t, err.Error())
	}
	modelDir := testmodel.Tiny(t)
	cfg := writeTrainConfig(t, "")
	caches := map[string]string{}
	histories := map[string][][]string{}
	for _, engine := range []string{"tensorflow", "onnxruntime"} {
		// Two copies of one dataset (the same bytes: the same cache key),
		// so the second build does not find the first's cache.
		gen := demodata.Defaults()
		gen.Classes, gen.PerClass, gen.Width, gen.Height, gen.Seed = 3, 20, 96, 96, 3
		ds, err := demoDataset(t.Context(), t.TempDir(), gen, 96, modelDir)
		if err != nil {
			t.Fatal(err)
		}
		runDir := filepath.Join(t.TempDir(), "run")
		code, _, stderr := runXcept(t, nil, "--config", cfg, "train", "--data", ds, "--run", runDir, "--epochs", "2", "--engine", engine)
		if code != 0 {
			t.Fatalf("train --engine %s: exit %d: %s", engine, code, stderr)
		}
		said := strings.Contains(stderr, "feature cache engine: onnxruntime")
		if said != (engine == "onnxruntime") {
			t.Errorf("train --engine %s: stderr says the onnxruntime engine line %v:\n%s", engine, said, stderr)
		}
		dirs, _ := filepath.Glob(filepath.Join(ds, ".cache", "features", "*", "meta.json"))
		if len(dirs) != 1 {
			t.Fatalf("train --engine %s: %d feature caches in %s, want 1", engine, len(dirs), ds)
		}
		caches[engine] = filepath.Dir(dirs[0])
		histories[engine] = readCSV(t, filepath.Join(runDir, "history.csv"))
	}
	if filepath.Base(caches["tensorflow"]) != filepath.Base(caches["onnxruntime"]) {
		t.Errorf("the caches' keys differ: %s, %s (the engine is not part of the key)", caches["tensorflow"], caches["onnxruntime"])
	}
	files, _ := filepath.Glob(filepath.Join(caches["tensorflow"], "*.f32"))
	if len(files) != 3 { // two views of the training images, and the validation images
		t.Fatalf("%d feature files in %s, want 3", len(files), caches["tensorflow"])
	}
	worst, scale := 0.0, 0.0
	for _, f := range files {
		a, b := readF32(t, f), readF32(t, filepath.Join(caches["onnxruntime"], filepath.Base(f)))
		if len(a) != len(b) || len(a) == 0 {
			t.Fatalf("%s: %d values on TensorFlow, %d on onnxruntime", filepath.Base(f), len(a), len(b))
		}
		for i := range a {
			worst = max(worst, math.Abs(float64(a[i]-b[i])))
			scale = max(scale, math.Abs(float64(a[i])))
		}
	}
	t.Logf("features: max |Δ| %.2g onnxruntime vs TensorFlow (largest feature %.3g)", worst, scale)
	if worst > 1e-5*max(1, scale) {
		t.Errorf("features differ by %.3g (largest %.3g): want ≤ 1e-5 × max(1, largest)", worst, scale)
	}
	tf, on := histories["tensorflow"], histories["onnxruntime"]
	if len(tf) != len(on) || len(tf) != 3 {
		t.Fatalf("history.csv: %d rows on TensorFlow, %d on onnxruntime, want header + 2", len(tf), len(on))
	}
	for i := 1; i < len(tf); i++ {
		for j, name := range tf[0] {
			if name == "epoch" || name == "phase" || name == "seconds" || name == "images_per_second" {
				continue
			}
			x, err1 := strconv.ParseFloat(tf[i][j], 64)
			y, err2 := strconv.ParseFloat(on[i][j], 64)
			if err1 != nil || err2 != nil {
				continue
			}
			if math.Abs(x-y) > 1e-4*max(1, math.Abs(x)) {
				t.Errorf("history epoch %s %s: %g on TensorFlow's cache, %g on onnxruntime's", tf[i][0], name, x, y)
			}
		}
	}
}

// readF32 reads a feature file's little-endian float32s.
func readF32(t *testing.T, path string) []float32 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return out
}
