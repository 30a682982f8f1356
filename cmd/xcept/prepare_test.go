package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/demodata"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/testenv/demoset"
)

// prepareData writes a small demo folder plus one truncated file.
func prepareData(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	gen := demodata.Defaults()
	gen.Classes, gen.PerClass, gen.Width, gen.Height = 2, 8, 40, 32
	if err := demodata.Generate(dir, gen); err != nil {
		t.Fatal(err)
	}
	_, img, _ := demodata.Image(gen, 0, 99)
	if err := os.WriteFile(filepath.Join(dir, "circle", "cut.jpg"), img[:len(img)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

type modelCall struct {
	dir  string
	spec model.Spec
	// complete: the dataset's manifest.json was beside dir at the call.
	complete bool
}

// withBuildModel replaces the model builder for one test.
func withBuildModel(t *testing.T, err error) *[]modelCall {
	t.Helper()
	saved := buildModel
	t.Cleanup(func() { buildModel = saved })
	var calls []modelCall
	buildModel = func(_ context.Context, dir string, spec model.Spec, _ io.Writer) error {
		_, merr := os.Stat(filepath.Join(filepath.Dir(dir), dataset.ManifestFile))
		calls = append(calls, modelCall{dir, spec, merr == nil})
		return err
	}
	return &calls
}

func runXcept(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// demoDataset generates gen's demo images in dir/images and prepares them
// at size px into dir/ds as `xcept prepare --no-model` does with the
// default configuration, with model (unless "") as the dataset's model.
func demoDataset(ctx context.Context, dir string, gen demodata.Options, size int, model string) (string, error) {
	o, err := defaultPrepareOptions(size)
	if err != nil {
		return "", err
	}
	p, err := demoset.Make(ctx, dir, demoset.Options{Images: gen, Prepare: o, Model: model})
	return p.Dataset, err
}

// defaultPrepareOptions are `xcept prepare --no-model --image-size size`'s
// with the default configuration.
func defaultPrepareOptions(size int) (dataset.Options, error) {
	o, err := prepareOptionsFor(&Globals{Output: cli.Output{Stdout: io.Discard, Stderr: io.Discard}}, "", "")
	o.Dataset.ImageSize = size
	return o.Dataset, err
}

// preparedFolder prepares the image folder images (one sub-folder per
// class) at size px into a temporary folder of t as `xcept prepare
// --no-model` does with the default configuration, but for the split
// (train,val,test shares; "" for the default), with model as the
// dataset's model.
func preparedFolder(t *testing.T, images string, size int, split, model string) string {
	t.Helper()
	o, err := defaultPrepareOptions(size)
	if err == nil && split != "" {
		o.Fractions, err = dataset.ParseFractions(split)
	}
	if err != nil {
		t.Fatal(err)
	}
	p, err := demoset.Folder(t.Context(), images, filepath.Join(t.TempDir(), "ds"), demoset.Options{Prepare: o, Model: model})
	if err != nil {
		t.Fatalf("preparing %s: %v", images, err)
	}
	return p.Dataset
}

// tempDemoDataset is demoDataset in a temporary folder of t.
func tempDemoDataset(t *testing.T, gen demodata.Options, size int, model string) string {
	t.Helper()
	ds, err := demoDataset(t.Context(), t.TempDir(), gen, size, model)
	if err != nil {
		t.Fatalf("preparing the demo dataset: %v", err)
	}
	return ds
}

func TestPrepareVerb(t *testing.T) {
	data := prepareData(t)
	config := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(config, []byte("prepare:\n  jpeg_quality: 70\n  resize: center-crop\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stderr string // substring
		check  func(t *testing.T, out, stdout string)
	}{
		{name: "dataset only", args: []string{"--no-model", "--image-size", "48"}, code: cli.ExitOK, stderr: "kept 16 of 17 files",
			check: func(t *testing.T, out, stdout string) {
				m := manifest(t, out)
				if m.Image.Size != 48 || m.Image.Quality != 95 || m.Image.Resize != "squash" || m.Seed != 42 {
					t.Errorf("image %+v seed %d: want the defaults and --image-size", m.Image, m.Seed)
				}
				if stdout != "" {
					t.Errorf("stdout %q, want nothing without --json", stdout)
				}
			}},
		{name: "json", args: []string{"--no-model", "--json", "--seed", "3"}, code: cli.ExitOK,
			check: func(t *testing.T, out, stdout string) {
				var s prepareSummary
				if err := json.Unmarshal([]byte(stdout), &s); err != nil {
					t.Fatalf("%v: %s", err, stdout)
				}
				if !s.OK || s.Kept != 16 || s.ProblemCount != 1 || s.ProblemsBy["truncated"] != 1 || s.Model != "" {
					t.Errorf("summary %+v", s)
				}
				if manifest(t, out).Seed != 3 {
					t.Error("--seed not used")
				}
			}},
		{name: "config file and environment", args: []string{"--no-model", "--quiet"},
			env: map[string]string{"XCEPT_PREPARE_SPLIT": "0.5,0.5,0"}, code: cli.ExitOK,
			check: func(t *testing.T, out, _ string) {
				m := manifest(t, out)
				if m.Image.Quality != 70 || m.Image.Resize != "center-crop" || m.Fractions.Train != 0.5 {
					t.Errorf("config layers not applied: %+v %+v", m.Image, m.Fractions)
				}
			}},
		{name: "strict", args: []string{"--no-model", "--strict"}, code: cli.ExitGate, stderr: "--strict: 2 problems found",
			check: func(t *testing.T, out, _ string) { manifest(t, out) }},
		{name: "no data flag", args: []string{"--no-model", "--data", ""}, code: cli.ExitUsage, stderr: "--data is required"},
		{name: "bad split", args: []string{"--no-model", "--split", "0.9,0.2,0"}, code: cli.ExitUsage, stderr: "--split"},
		{name: "bad resize", args: []string{"--no-model", "--resize", "stretch"}, code: cli.ExitUsage, stderr: "--resize"},
		{name: "bad weights", args: []string{"--weights", "missing.h5"}, code: cli.ExitUsage, stderr: "model.weights (--weights) missing.h5: no such file"},
		{name: "bad precision", args: []string{"--precision", "float8"}, code: cli.ExitUsage, stderr: "--precision"},
		{name: "bad image format", args: []string{"--no-model", "--image-format", "gif"}, code: cli.ExitUsage, stderr: "prepare.format"},
		{name: "missing data", args: []string{"--no-model", "--data", "/nonexistent/xcept"}, code: cli.ExitData, stderr: "--data /nonexistent/xcept"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withBuildModel(t, nil)
			out := filepath.Join(t.TempDir(), "ds")
			args := append([]string{"prepare", "--data", data, "--out", out}, tt.args...)
			if tt.name == "config file and environment" {
				args = append(args, "--config", config)
			}
			code, stdout, stderr := runXcept(t, tt.env, args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d containing %q", code, stderr, tt.code, tt.stderr)
			}
			if tt.check != nil {
				tt.check(t, out, stdout)
			}
		})
	}
}

func manifest(t *testing.T, out string) *dataset.Manifest {
	t.Helper()
	m, err := dataset.ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPrepareBuildsTheModel(t *testing.T) {
	data := prepareData(t)
	out := filepath.Join(t.TempDir(), "ds")
	calls := withBuildModel(t, nil)
	code, stdout, stderr := runXcept(t, nil, "prepare", "--data", data, "--out", out, "--image-size", "96",
		"--weights", "none", "--precision", "mixed_bfloat16", "--json")
	if code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := modelCall{"", model.Spec{Classes: []string{"circle", "square"}, ImageSize: 96, Weights: "none",
		Arch: "xception", Precision: "mixed_bfloat16", DenseUnits: 1024, UnfreezeFrom: "block11", FeatureBlocks: []string{"auto"}, Seed: 42,
		HeadOptimizer: "adam", FinetuneOptimizer: "adam"}, true}
	if len(*calls) != 1 {
		t.Fatalf("buildModel calls %+v", *calls)
	}
	got := (*calls)[0]
	// Built in the unpublished work folder beside --out, once the dataset is complete.
	work := filepath.Dir(got.dir)
	if filepath.Base(got.dir) != "model" || filepath.Dir(work) != filepath.Dir(out) || !strings.HasPrefix(filepath.Base(work), ".ds.xcept-tmp-") {
		t.Errorf("model built in %s, want the work folder beside %s", got.dir, out)
	}
	got.dir = ""
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("buildModel call %+v, want %+v", got, want)
	}
	var s prepareSummary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil || s.Model != filepath.Join(out, "model") {
		t.Errorf("summary model %q (%v)", s.Model, err)
	}
	if _, err := dataset.ReadManifest(out); err != nil {
		t.Errorf("the dataset was not published: %v", err)
	}
}

func TestPrepareModelFailures(t *testing.T) {
	data := prepareData(t)
	t.Run("builder fails", func(t *testing.T) {
		withBuildModel(t, errors.New("keras exploded"))
		parent := t.TempDir()
		code, _, stderr := runXcept(t, nil, "prepare", "--data", data, "--out", filepath.Join(parent, "ds"))
		if code != cli.ExitModel || !strings.Contains(stderr, "keras exploded") {
			t.Errorf("exit %d, %q", code, stderr)
		}
		if entries, _ := os.ReadDir(parent); len(entries) != 0 {
			t.Errorf("a failed model build left %v: the dataset is published with its model or not at all", entries)
		}
	})
	t.Run("no builder", func(t *testing.T) {
		saved := buildModel
		buildModel = nil
		defer func() { buildModel = saved }()
		out := filepath.Join(t.TempDir(), "ds")
		code, _, stderr := runXcept(t, nil, "prepare", "--data", data, "--out", out)
		if code != cli.ExitModel || !strings.Contains(stderr, "--no-model") {
			t.Errorf("exit %d, %q", code, stderr)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Error("prepare wrote a dataset although it could not build the model")
		}
	})
}

func TestProgressOnlyOnATerminal(t *testing.T) {
	var b bytes.Buffer
	if (cli.Output{Stderr: &b}).Bar() {
		t.Error("a buffer is not a terminal")
	}
	p := &barProgress{w: &b}
	p.Start("auditing", 3)
	p.Add(3)
	p.Finish()
	if !strings.Contains(b.String(), "auditing") {
		t.Errorf("progress bar drew %q", b.String())
	}
}

// TestPreparedFolderIsPrepare: the datasets tests prepare with
// preparedFolder (and demoDataset) are byte for byte what `xcept prepare
// --no-model` writes, so that the tests of the other verbs read what users'
// datasets hold.
func TestPreparedFolderIsPrepare(t *testing.T) {
	images := prepareData(t)
	viaCLI := filepath.Join(t.TempDir(), "ds")
	if code, _, stderr := runXcept(t, nil, "-q", "prepare", "--data", images, "--out", viaCLI, "--image-size", "48",
		"--split", "0.5,0.25,0.25", "--no-model"); code != 0 {
		t.Fatalf("prepare: exit %d: %s", code, stderr)
	}
	helper := preparedFolder(t, images, 48, "0.5,0.25,0.25", "")
	want, got := readTree(t, viaCLI), readTree(t, helper)
	if len(want) == 0 || !maps.EqualFunc(want, got, bytes.Equal) {
		t.Errorf("preparedFolder wrote %v, prepare %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
}

// readTree reads every file below dir, by path relative to dir.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files[rel], err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
