package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/demodata"
	"github.com/xcept/xcept/internal/model"
)

// TestSameMistakeSameExitCode drives every verb with the same mistakes and
// checks that each gives the code README's exit-code table says, whatever
// the verb: a missing --run is 4 everywhere, a stray argument, a bad flag
// value or an unreadable --config 2. All of them fail before a model loads.
func TestSameMistakeSameExitCode(t *testing.T) {
	tmp := t.TempDir()
	missing := filepath.Join(tmp, "missing")
	noConfig := filepath.Join(tmp, "missing.yaml")
	out := func(name string) string { return filepath.Join(tmp, name) }
	type mistake struct {
		name string
		args []string
		code int
		says string
	}
	// Arguments that make each verb otherwise well-formed.
	verbs := map[string][]string{
		"prepare":     {"--data", missing, "--out", out("ds")},
		"build-model": {"--out", out("model"), "--classes", "a,b"},
		"train":       {"--data", missing, "--run", out("run")},
		"finetune":    {"--run", missing},
		"evaluate":    {"--run", missing},
		"export":      {"--run", missing},
		"predict":     {"--run", missing, "image.jpg"},
		"explain":     {"--run", missing, "image.jpg"},
		"serve":       {"--model", missing},
		"demo-data":   {"--out", out("demo")},
		"version":     {},
		"track":       {"--run", missing, "--mlflow-uri", "http://127.0.0.1:1"},
	}
	var cases []mistake
	for verb, args := range verbs {
		with := func(extra ...string) []string { return append(append([]string{verb}, args...), extra...) }
		cases = append(cases,
			mistake{verb + " bad flag value", with("--json=maybe"), cli.ExitUsage, "--json"},
			mistake{verb + " unknown flag", with("--no-such-flag"), cli.ExitUsage, "no-such-flag"},
			mistake{verb + " unreadable config", with("--config", noConfig), cli.ExitUsage, "--config " + noConfig},
		)
		if verb != "predict" && verb != "explain" { // they take IMAGE...
			cases = append(cases, mistake{verb + " stray argument", with("stray-arg"), cli.ExitUsage, "takes no arguments, only flags, but got \"stray-arg\""})
		}
	}
	for _, verb := range []string{"finetune", "evaluate", "export", "predict", "explain", "track"} {
		cases = append(cases, mistake{verb + " missing run", append([]string{verb}, verbs[verb]...), cli.ExitData, "--run " + missing})
	}
	cases = append(cases,
		mistake{"train --resume missing run", []string{"train", "--resume", "--data", missing, "--run", missing}, cli.ExitData, missing},
		mistake{"prepare missing data", append([]string{"prepare"}, verbs["prepare"]...), cli.ExitData, "--data " + missing},
		mistake{"train missing data", []string{"train", "--data", missing, "--run", out("run")}, cli.ExitData, "--data " + missing},
		mistake{"build-model missing labels", []string{"build-model", "--out", out("model"), "--labels", missing}, cli.ExitData, missing},
		mistake{"evaluate missing predictions", []string{"evaluate", "--predictions", missing, "--labels", missing}, cli.ExitData, missing},
		mistake{"predict missing model", []string{"predict", "--model", missing, "image.jpg"}, cli.ExitData, "--model " + missing},
		mistake{"serve missing model", []string{"serve", "--model", missing}, cli.ExitData, "--model " + missing},
		mistake{"demo-data unwritable out", []string{"demo-data", "--out", "/proc/xcept-test"}, cli.ExitData, "--out /proc/xcept-test"},
		mistake{"stray command", []string{"stray-arg"}, cli.ExitUsage, `unknown command "stray-arg": the commands are`},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), c.args, &stdout, &stderr)
			msg := stderr.String()
			if code != c.code || !strings.Contains(msg, c.says) || strings.Count(strings.TrimSpace(msg), "\n") != 0 {
				t.Errorf("xcept %s: exit %d, stderr %q; want exit %d and one line containing %q", strings.Join(c.args, " "), code, msg, c.code, c.says)
			}
		})
	}
}

// TestOptionErrorsNameTheVerbsFlag: a domain package names an option of
// its operation (fault.Option), never a flag; what the user reads names the
// verb's flag, with the exit code of the mistake.
func TestOptionErrorsNameTheVerbsFlag(t *testing.T) {
	tmp := t.TempDir()
	missing := filepath.Join(tmp, "missing")
	images := filepath.Join(tmp, "images")
	if err := os.MkdirAll(filepath.Join(images, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	modelDir := filepath.Join(tmp, "model")
	if err := os.MkdirAll(modelDir, 0o755); err != nil || os.WriteFile(filepath.Join(modelDir, model.InfoFile), []byte("{}"), 0o644) != nil {
		t.Fatal("cannot write a model folder")
	}
	preds := []string{"evaluate", "--predictions", "preds.csv", "--labels", "labels.txt"}
	cases := []struct {
		args []string
		code int
		says string // the whole line after "xcept: "
	}{
		{append(preds, "--ood", tmp), cli.ExitUsage, "--ood needs --run: it predicts the folder with the run's model"},
		{append(preds, "--min-accuracy", "90"), cli.ExitUsage, "--min-accuracy 90: want a fraction from 0 to 1 (0.9 for 90%)"},
		{[]string{"evaluate", "--run", missing, "--split", ""}, cli.ExitUsage, "--split is empty: give test, val, train or a folder"},
		{[]string{"export", "--run", missing, "--format", "coreml"}, cli.ExitUsage, `--format "coreml": use one of savedmodel, tflite, onnx`},
		{[]string{"explain", "--run", missing, "--batch", "0", "a.jpg"}, cli.ExitUsage, "--batch 0: want 1 or more"},
		{[]string{"train", "--data", missing, "--run", missing, "--cluster", "a:1,b:1"}, cli.ExitUsage, "--cluster needs --task I, this process's index in it"},
		{[]string{"train", "--resume", "--data", missing, "--run", missing}, cli.ExitData, "--resume: " + missing + " holds no run to resume; drop --resume to start it"},
		{[]string{"prepare", "--no-model", "--data", images, "--out", filepath.Join(images, "ds")}, cli.ExitUsage,
			"--out " + filepath.Join(images, "ds") + " is inside --data " + images + ": prepare never writes into the input folder; choose an --out outside it"},
		{[]string{"demo-data", "--out", filepath.Join(tmp, "demo"), "--classes", "99"}, cli.ExitUsage, fmt.Sprintf("--classes 99: choose 2 to %d", len(demodata.Shapes))},
		{[]string{"audit", "--run", missing, "--max-label-issues", "many"}, cli.ExitUsage,
			`--max-label-issues "many": want a number of images (25) or a fraction of the audited images (0.02 or 2%)`},
		{[]string{"predict", "--model", modelDir, "a.jpg"}, cli.ExitData,
			"--model " + modelDir + " is a model folder: pass " + filepath.Join(modelDir, model.ServingDir) + ", or --run for trained weights"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), c.args, &stdout, &stderr)
		if got := strings.TrimSpace(stderr.String()); code != c.code || got != "xcept: "+c.says {
			t.Errorf("xcept %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), code, got, c.code, "xcept: "+c.says)
		}
	}
}
