package evaluate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/metrics"
	"github.com/xcept/xcept/internal/report"
	"github.com/xcept/xcept/internal/testenv"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	preds := filepath.Join(dir, "preds.csv")
	if err := os.WriteFile(preds, []byte("true,pred\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// An --out whose predictions.csv is the input itself.
	if err := os.Link(preds, filepath.Join(dir, report.FilePredictions)); err != nil {
		t.Fatal(err)
	}
	auroc, err := metrics.MinOODAUROC(0.9)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.MinOODAUROC(1.5); err == nil || !strings.Contains(testenv.UserMessage(err), "--min-ood-auroc 1.5") {
		t.Errorf("--min-ood-auroc 1.5: %v", err)
	}
	tests := []struct {
		name string
		o    Options
		want string // "" valid
	}{
		{"predictions", Options{Predictions: preds, Labels: "l.txt", TopK: 5}, ""},
		{"neither", Options{TopK: 5}, "--run runs/NAME or --predictions FILE is required"},
		{"no labels", Options{Predictions: preds, TopK: 5}, "--labels labels.txt is required"},
		{"top-k", Options{Predictions: preds, Labels: "l.txt"}, "--top-k 0"},
		{"overwrites input", Options{Predictions: preds, Labels: "l.txt", TopK: 5, Out: dir}, "would overwrite the input"},
		{"run", Options{Run: "r", Split: "test", Batch: 1, TopK: 5}, ""},
		{"run and predictions", Options{Run: "r", Predictions: preds, Split: "test", Batch: 1, TopK: 5}, "exclude each other"},
		{"run with labels", Options{Run: "r", Labels: "l.txt", Split: "test", Batch: 1, TopK: 5}, "--labels is for --predictions"},
		{"run batch", Options{Run: "r", Split: "test", TopK: 5}, "--batch 0"},
		{"run split", Options{Run: "r", Batch: 1, TopK: 5}, "--split is empty"},
		{"run ood tta", Options{Run: "r", Split: "test", Batch: 1, TopK: 5, OOD: dir, TTA: true, Gates: []metrics.Gate{auroc}}, ""},
		{"ood without run", Options{Predictions: preds, Labels: "l.txt", TopK: 5, OOD: dir}, "--ood needs --run"},
		{"tta without run", Options{Predictions: preds, Labels: "l.txt", TopK: 5, TTA: true}, "--tta needs --run"},
		{"auroc gate without ood", Options{Run: "r", Split: "test", Batch: 1, TopK: 5, Gates: []metrics.Gate{auroc}}, "--min-ood-auroc 0.9 needs --ood DIR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(testenv.UserMessage(err), tt.want)):
				t.Fatalf("Validate: %v, want %q", err, tt.want)
			case err != nil && cli.KindOf(err) != cli.KindUsage:
				t.Fatalf("Validate: %v is not a usage error", err)
			}
		})
	}
	missing := Options{Run: "r", Split: "test", Batch: 1, TopK: 5, OOD: filepath.Join(dir, "nope")}
	if err := missing.Validate(); cli.KindOf(err) != cli.KindData || !strings.Contains(testenv.UserMessage(err), "--ood "+missing.OOD+": no such folder") {
		t.Errorf("a missing --ood folder: %v, want a data error naming it", err)
	}
	o := Options{Predictions: preds, Labels: "l.txt", TopK: 5}
	if err := o.Validate(); err != nil || o.Out != filepath.Join(dir, "preds-report") {
		t.Errorf("default --out %q (%v), want %s", o.Out, err, filepath.Join(dir, "preds-report"))
	}
}

// TestTextOODAndTTA: the summary for people gives --ood's and --tta's figures.
func TestTextOODAndTTA(t *testing.T) {
	rows := []metrics.Row{{True: 0, Pred: 0, Probs: []float64{0.9, 0.1}}, {True: 1, Pred: 1, Probs: []float64{0.2, 0.8}}}
	sum, err := report.Write(report.Input{Classes: []string{"cat", "dog"}, Rows: rows, OutDir: t.TempDir(),
		OOD: &calibrate.OOD{Score: calibrate.ScoreLogOdds, Threshold: 21.1484, Accept: 0.95, Known: 173, Images: 60, AUROC: 0.9904, KnownAccepted: 0.9538, OODAccepted: 0.05},
		TTA: &calibrate.TTA{Views: []string{"identity", "hflip"}, With: calibrate.Scores{Accuracy: 1, ECE: 0.0027, NLL: 0.0036}, Without: calibrate.Scores{Accuracy: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	text := (&Result{Summary: sum}).Text()
	for _, want := range []string{
		"test-time augmentation (identity + hflip): accuracy 1.0000, ECE 0.0027, NLL 0.0036 (without: accuracy 1.0000, ECE 0.0000, NLL 0.0000)",
		`out of distribution (60 --ood images against the 173 evaluated): AUROC 0.9904; at the "unknown" threshold 21.15, 5.0% of the --ood images and 95.4% of the evaluated ones accepted (asked: 95%)`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
}
