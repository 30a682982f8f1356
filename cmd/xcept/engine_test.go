package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/export"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/infer"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/ort"
	runs "github.com/xcept/xcept/internal/run"
	"github.com/xcept/xcept/internal/testenv"
	"github.com/xcept/xcept/internal/testmodel"
)

// The other tests of this package run the model on TensorFlow: auto would
// convert every run they make to ONNX, tens of seconds each. The engine
// tests below choose their engine with --engine, which beats this.
func init() {
	if os.Getenv("XCEPT_RUNTIME_ENGINE") == "" {
		os.Setenv("XCEPT_RUNTIME_ENGINE", infer.EngineTensorFlow)
	}
}

// kitchenRun is a run of the shared real-weights model (testmodel.Real,
// 192 px, the ImageNet base) whose best checkpoint is the model's own
// (seeded) weights.
func kitchenRun(t *testing.T) *runs.Run {
	t.Helper()
	dir := testmodel.Real(t)
	kitchenClasses := testmodel.KitchenClasses(t)
	m, err := model.OpenServing(dir, graph.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	r, err := runs.Create(filepath.Join(t.TempDir(), "kitchen"), runs.Info{Model: dir, Classes: kitchenClasses, ImageSize: testmodel.RealSize})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SaveCheckpoint(m.Session, runs.Best, map[string]int{"best_epoch": 1}); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestEnginesAgree runs one real-weights model on TensorFlow and on
// onnxruntime (its checkpoint converted once, then cached) over real photos.
func TestEnginesAgree(t *testing.T) {
	photos := testenv.KitchenPhotos(t)
	if err := ort.Load(); err != nil {
		testenv.Unavailable(t, err.Error())
	}
	r := kitchenRun(t)
	kitchenClasses := r.Info.Classes

	// tf2onnx takes about a minute of CPU on this model: a conversion an
	// earlier run of this test made of the same checkpoint, graph and
	// converter (the cache key) is what a stand-in converter writes, so
	// that the first open still takes the converting path.
	key, err := infer.ONNXKey(r, export.DefaultONNXOpset)
	if err != nil {
		t.Fatal(err)
	}
	kept := testmodel.CacheFile(t, "kitchen-"+key+".onnx")
	_, err = os.Stat(kept)
	standIn := err == nil
	var progress bytes.Buffer
	onnx, err := withEnv(t, "XCEPT_PYTHON", copyingConverter(t, kept), standIn, func() (*infer.Pixels, error) {
		return infer.OpenPixels(t.Context(), r, infer.EngineOptions{Engine: infer.EngineONNXRuntime, Progress: &progress})
	})
	if err != nil {
		t.Fatalf("onnxruntime: %v\n%s", err, progress.String())
	}
	defer onnx.Close()
	if !strings.Contains(progress.String(), "engine: onnxruntime") || !strings.Contains(progress.String(), "converted now") {
		t.Errorf("first open on onnxruntime said %q, want the engine line and the conversion", progress.String())
	}
	if !standIn {
		keepCopy(t, onnx.Dir, kept)
	}
	tf, err := infer.OpenPixels(t.Context(), r, infer.EngineOptions{Engine: infer.EngineTensorFlow})
	if err != nil {
		t.Fatal(err)
	}
	defer tf.Close()

	t.Run("Probabilities", func(t *testing.T) {
		files, err := infer.ScanLabelled(photos, kitchenClasses, "photos")
		if err != nil {
			t.Fatal(err)
		}
		var images []uint8
		for _, f := range files {
			img, ferr := infer.Decode(f.Input, infer.Limits{})
			if ferr != nil {
				t.Fatal(ferr)
			}
			images = append(images, infer.Square(img, testmodel.RealSize, imageio.Squash)...)
		}
		n := len(files)
		want, err := tf.Predict(images, n)
		if err != nil {
			t.Fatal(err)
		}
		got, err := onnx.Predict(images, n)
		if err != nil {
			t.Fatal(err)
		}
		one, err := onnx.Predict(images[:testmodel.RealSize*testmodel.RealSize*3], 1) // batch 1 too
		if err != nil {
			t.Fatal(err)
		}
		worst := maxAbs(want, got)
		if d := maxAbs(want[:len(kitchenClasses)], one); d > worst {
			worst = d
		}
		t.Logf("%d real photos, %d px, real ImageNet base: max |Δp| onnxruntime vs TensorFlow = %.2g", n, testmodel.RealSize, worst)
		if worst > 1e-5 {
			t.Errorf("max |Δp| = %g, want ≤ 1e-5", worst)
		}
	})

	t.Run("Serve", func(t *testing.T) { serveEngines(t, r) })

	t.Run("EvaluateReportIdentical", func(t *testing.T) {
		out := t.TempDir()
		for _, engine := range []string{infer.EngineTensorFlow, infer.EngineONNXRuntime} {
			code, _, stderr := runXcept(t, nil, "evaluate", "--run", r.Dir, "--split", photos, "--engine", engine, "--out", filepath.Join(out, engine))
			// Only a choice that needs explaining is said: onnxruntime (or auto's).
			if code != 0 || (engine == infer.EngineONNXRuntime) != strings.Contains(stderr, "engine: ") {
				t.Fatalf("evaluate --engine %s: exit %d: %s", engine, code, stderr)
			}
		}
		for _, f := range []string{"report.txt", "report.json"} {
			a := mustRead(t, filepath.Join(out, infer.EngineTensorFlow, f))
			b := mustRead(t, filepath.Join(out, infer.EngineONNXRuntime, f))
			if !bytes.Equal(a, b) {
				t.Errorf("%s differs between the engines:\n%s\n---\n%s", f, a, b)
			}
		}
	})

	t.Run("PredictAuto", func(t *testing.T) {
		code, stdout, stderr := runXcept(t, nil, "--json", "predict", "--run", r.Dir, "--engine", "auto", photos)
		if code != 0 || !strings.Contains(stderr, "engine: onnxruntime") || !strings.Contains(stderr, "cached conversion") {
			t.Fatalf("predict --engine auto: exit %d, stderr %q", code, stderr)
		}
		files, _ := infer.ScanLabelled(photos, kitchenClasses, "photos")
		if n := strings.Count(stdout, "\n"); n != len(files) {
			t.Errorf("%d lines for %d photos", n, len(files))
		}
		var line predictLine
		if err := json.Unmarshal([]byte(strings.SplitN(stdout, "\n", 2)[0]), &line); err != nil || len(line.Top) != 5 {
			t.Errorf("first line %q: %v", stdout, err)
		}
	})

	t.Run("StaleConversionNeverUsed", func(t *testing.T) {
		old, ok, err := infer.CachedONNXPath(r)
		if err != nil || !ok {
			t.Fatalf("no cached conversion after opening on onnxruntime: %v", err)
		}
		keep := filepath.Join(t.TempDir(), "old.onnx")
		copyFile(t, old, keep)
		// A new best checkpoint with other weights: one training step.
		trainer, err := model.Open(r.Info.Model, graph.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer trainer.Close()
		b := model.Batch{Images: make([]uint8, 2*testmodel.RealSize*testmodel.RealSize*3), Labels: []int32{0, 1}}
		if _, err := trainer.Step(contract.SigTrainStep, b, model.StepParams{LearningRate: 0.1, Seed: [2]int64{1, 2}}); err != nil {
			t.Fatal(err)
		}
		if err := r.SaveCheckpoint(trainer.Session, runs.Best, map[string]int{"best_epoch": 2}); err != nil {
			t.Fatal(err)
		}
		// The old conversion put back beside the new checkpoint, under its
		// old name, as a copy or a restore from backup would.
		copyFile(t, keep, old)
		path, ok, err := infer.CachedONNXPath(r)
		if err != nil {
			t.Fatal(err)
		}
		if ok || path == old {
			t.Errorf("after the checkpoint changed, the cache still offers %s (ok=%v): a stale conversion would be used", path, ok)
		}
	})
}

// TestEngineLibraryMissing: onnxruntime asked for and missing is a model
// error (exit 5) in one line naming what is missing; auto falls back to
// TensorFlow and says so. Each runs as its own process: the library loads
// once per process.
func TestEngineLibraryMissing(t *testing.T) {
	dir := testmodel.Tiny(t)
	m, err := model.OpenServing(dir, graph.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := runs.Create(filepath.Join(t.TempDir(), "tiny"), runs.Info{Model: dir, Classes: m.Info.Classes, ImageSize: 96})
	if err == nil {
		err = r.SaveCheckpoint(m.Session, runs.Best, map[string]int{"best_epoch": 1})
	}
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	img := quadrantJPEG(t)
	missing := filepath.Join(t.TempDir(), "libonnxruntime.so")
	xcept := func(engine string, args ...string) (int, string, string) {
		if args == nil {
			args = []string{"predict", "--run", r.Dir, "--engine", engine, img}
		}
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "XCEPT_TEST_AS_MAIN=1", ort.LibraryEnv+"="+missing)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}
	code, _, stderr := xcept(infer.EngineONNXRuntime)
	if code != cli.ExitModel || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, missing) {
		t.Errorf("--engine onnxruntime without the library: exit %d, stderr %q; want 5 and one line naming %s", code, stderr, missing)
	}
	code, stdout, stderr := xcept(infer.EngineAuto)
	if code != 0 || !strings.Contains(stderr, "engine: tensorflow (runtime.engine auto, onnxruntime not used: ") || !strings.Contains(stderr, missing) || stdout == "" {
		t.Errorf("--engine auto without the library: exit %d, stdout %q, stderr %q; want TensorFlow and the reason", code, stdout, stderr)
	}
	// serve too, before it loads any version or listens.
	code, _, stderr = xcept("", "serve", "--model", t.TempDir(), "--engine", infer.EngineONNXRuntime)
	if code != cli.ExitModel || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, missing) {
		t.Errorf("serve --engine onnxruntime without the library: exit %d, stderr %q; want 5 and one line naming %s", code, stderr, missing)
	}
}

// copyingConverter writes a stand-in for the Python that runs
// export_onnx.py: it copies file to the path after --out.
func copyingConverter(t *testing.T, file string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "python")
	script := "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --out ] && cp '" + file + "' \"$2\"; shift; done\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// withEnv runs f with the environment variable key set to value when set
// is true, and puts it back after.
func withEnv[T any](t *testing.T, key, value string, set bool, f func() (T, error)) (T, error) {
	t.Helper()
	if set {
		old, had := os.LookupEnv(key)
		os.Setenv(key, value)
		defer func() {
			if had {
				os.Setenv(key, old)
			} else {
				os.Unsetenv(key)
			}
		}()
	}
	return f()
}

// keepCopy copies src to dst through a temporary file in dst's folder.
func keepCopy(t *testing.T, src, dst string) {
	t.Helper()
	tmp := fmt.Sprintf("%s.%d.tmp", dst, os.Getpid())
	copyFile(t, src, tmp)
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		t.Fatal(err)
	}
}

func maxAbs(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.WriteFile(dst, mustRead(t, src), 0o644); err != nil {
		t.Fatal(err)
	}
}
