package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/metrics"
)

// writeImages makes a small picture for every wrong row's File under dir
// (the gallery shows only mistakes): a colour per class, landscape or
// portrait, so thumbnails show their shape.
func writeImages(t *testing.T, dir string, rows []metrics.Row) {
	t.Helper()
	encoded := map[[2]int][]byte{}
	for i, r := range rows {
		if r.True == r.Pred {
			continue
		}
		key := [2]int{r.True, i % 2}
		if encoded[key] == nil {
			encoded[key] = pictureJPEG(t, r.True, i%2 == 1)
		}
		path := filepath.Join(dir, r.File)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, encoded[key], 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func pictureJPEG(t *testing.T, class int, portrait bool) []byte {
	w, h := 160, 100
	if portrait {
		w, h = 90, 150
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, color.RGBA{uint8(40 * class), uint8(255 * x / w), uint8(255 * y / h), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeHistory(t *testing.T, path string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("epoch,phase,loss,accuracy,val_loss,val_accuracy,learning_rate\n")
	for e := 1; e <= 12; e++ {
		phase, lr := "train", 1e-3
		if e > 8 {
			phase, lr = "finetune", 1e-5
		}
		x := float64(e)
		fmt.Fprintf(&b, "%d,%s,%g,%g,%g,%g,%g\n", e, phase, 2/x+0.1, 1-0.9/x, 2.2/x+0.2, 0.95-0.9/x, lr)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// outDir is a temporary folder, or a kept one under -png to look at.
func outDir(t *testing.T, name string) string {
	if *pngDir != "" {
		dir := filepath.Join(*pngDir, name)
		os.RemoveAll(dir)
		return dir
	}
	return filepath.Join(t.TempDir(), name)
}

func TestWriteFullReport(t *testing.T) {
	for _, k := range []int{2, 10, 100} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			names := syntheticNames(k)
			rows := syntheticRows(k, uint64(k))
			base := t.TempDir()
			writeImages(t, base, rows)
			history := filepath.Join(base, "history.csv")
			writeHistory(t, history)
			out := outDir(t, fmt.Sprintf("report-%d", k))
			sum, err := Write(Input{
				Classes: names, Rows: rows, HistoryPath: history, OutDir: out, TopK: 5,
				Gates:  []metrics.Gate{{Metric: metrics.GateAccuracy, Min: 0.5}},
				Source: fmt.Sprintf("synthetic test data, %d classes", k), FileBase: base,
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{FilePredictions, FileReportText, FileReportJSON, FileConfusionCSV, FileConfusionPNG, FileCurvesPNG, FileReportHTML} {
				if sum.Files[f] != filepath.Join(out, f) {
					t.Errorf("summary lists %q for %s", sum.Files[f], f)
				}
				if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
					t.Errorf("%s not written: %v", f, err)
				}
			}
			if (sum.TopK != nil) != (k > 5) || sum.Top1 == nil {
				t.Errorf("top-5 reported %v for %d classes; want it only above 5 classes", sum.TopK != nil, k)
			}
			if *sum.Top1 != sum.Accuracy {
				t.Errorf("top-1 %v differs from accuracy %v although pred is the argmax", *sum.Top1, sum.Accuracy)
			}
			checkReportFiles(t, out, names, rows, sum)
			checkSelfContained(t, filepath.Join(out, FileReportHTML), true)
		})
	}
}

// checkReportFiles reads the files back: they must say what the summary says.
func checkReportFiles(t *testing.T, out string, names []string, rows []metrics.Row, sum *Summary) {
	t.Helper()
	text, _ := os.ReadFile(filepath.Join(out, FileReportText))
	if string(text) != sum.Report.Text(2) {
		t.Errorf("report.txt is not the report's text")
	}
	var back metrics.Report
	data, _ := os.ReadFile(filepath.Join(out, FileReportJSON))
	if err := json.Unmarshal(data, &back); err != nil || back.Accuracy != sum.Accuracy || len(back.Classes) != len(names) {
		t.Errorf("report.json: %v, accuracy %v vs %v", err, back.Accuracy, sum.Accuracy)
	}
	again, err := metrics.ReadPredictions(filepath.Join(out, FilePredictions), &metrics.Labels{Path: "labels.txt", Names: names})
	if err != nil || len(again) != len(rows) {
		t.Fatalf("predictions.csv reads back %d rows, %v", len(again), err)
	}
	if r := metrics.NewReport(metrics.NewConfusion(names, again)); r.Text(2) != sum.Report.Text(2) {
		t.Errorf("predictions.csv gives another report when read back")
	}
}

// checkSelfContained fails on anything a browser would fetch: scripts,
// stylesheets, or images that are not data: URIs.
func checkSelfContained(t *testing.T, path string, wantGallery bool) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := string(data)
	for _, bad := range []string{"<script", "<link", "http://", "https://", "url(", "@import"} {
		if strings.Contains(page, bad) {
			t.Errorf("report.html contains %q", bad)
		}
	}
	for _, m := range regexp.MustCompile(`src="([^"]{0,30})`).FindAllStringSubmatch(page, -1) {
		if !strings.HasPrefix(m[1], "data:image/") {
			t.Errorf("image source %q is not a data: URI", m[1])
		}
	}
	if got := strings.Contains(page, `id="gallery"`); got != wantGallery {
		t.Errorf("gallery shown: %v, want %v", got, wantGallery)
	}
}

func TestWriteGatesAfterEverything(t *testing.T) {
	names := []string{"cat", "dog", "owl"}
	rows := []metrics.Row{{True: 0, Pred: 0}, {True: 0, Pred: 1}, {True: 1, Pred: 1}, {True: 2, Pred: 2}}
	out := t.TempDir()
	sum, err := Write(Input{Classes: names, Rows: rows, OutDir: out, Gates: []metrics.Gate{
		{Metric: metrics.GateAccuracy, Min: 0.8},
		{Metric: metrics.GateRecall, Min: 0.9},
		{Metric: metrics.GateRecall, Class: "owl", Min: 0.9},
	}})
	if cli.ExitCode(err) != cli.ExitGate {
		t.Fatalf("error %v (exit %d), want a gate failure", err, cli.ExitCode(err))
	}
	want := `gate failed: accuracy 0.7500 < 0.8000 by 0.0500 (--min-accuracy 0.8); recall of "cat" 0.5000 < 0.9000 by 0.4000 (--min-recall 0.9)`
	if err.Error() != want {
		t.Errorf("gate error\n got %q\nwant %q", err, want)
	}
	if sum == nil || sum.GatesPassed || len(sum.Gates) != 5 {
		t.Fatalf("summary %+v", sum)
	}
	for _, f := range []string{FilePredictions, FileReportText, FileReportJSON, FileConfusionCSV, FileConfusionPNG, FileReportHTML} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("%s not written before the gate failed: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, FileCurvesPNG)); err == nil {
		t.Error("curves.png written without a history")
	}
	// No probabilities, no file paths: no top-k, no gallery, still a page.
	checkSelfContained(t, filepath.Join(out, FileReportHTML), false)
	if sum.Top1 != nil || sum.TopK != nil {
		t.Errorf("top-k reported without probabilities")
	}
}

func TestWriteRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		in   Input
		kind cli.Kind
		want string
	}{
		{"no rows", Input{Classes: []string{"a"}}, cli.KindData, "no predictions"},
		{"index out of range", Input{Classes: []string{"a", "b"}, Rows: []metrics.Row{{True: 0, Pred: 2}}}, cli.KindData, "out of range for 2 classes"},
		{"probabilities for another model", Input{Classes: []string{"a", "b"}, Rows: []metrics.Row{{True: 0, Pred: 1, Probs: []float64{0.2, 0.3, 0.5}}}},
			cli.KindData, "3 probabilities for 2 classes"},
		{"gate on an unknown class", Input{Classes: []string{"a", "b"}, Rows: []metrics.Row{{True: 0, Pred: 1}},
			Gates: []metrics.Gate{{Metric: metrics.GateRecall, Class: "zebra", Min: 0.5}}}, cli.KindUsage, `no class "zebra"`},
		{"missing history", Input{Classes: []string{"a"}, Rows: []metrics.Row{{True: 0, Pred: 0}}, HistoryPath: "/nonexistent/history.csv"},
			cli.KindData, "history file /nonexistent/history.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.OutDir = t.TempDir()
			_, err := Write(tt.in)
			if err == nil || cli.KindOf(err) != tt.kind || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v (kind %v), want kind %v containing %q", err, cli.KindOf(err), tt.kind, tt.want)
			}
		})
	}
}

func TestWorstMistakesMostConfidentFirst(t *testing.T) {
	rows := []metrics.Row{
		{File: "a.jpg", True: 0, Pred: 1, Probs: []float64{0.4, 0.6}},
		{File: "b.jpg", True: 1, Pred: 1, Probs: []float64{0.01, 0.99}},
		{File: "c.jpg", True: 1, Pred: 0, Probs: []float64{0.9, 0.1}},
		{File: "d.jpg", True: 0, Pred: 1, Probs: []float64{0.3, 0.7}},
	}
	got := WorstMistakes([]string{"x", "y"}, rows, 2, "")
	if len(got) != 2 || got[0].Path != "c.jpg" || got[1].Path != "d.jpg" || got[0].True != "y" || got[0].Confidence != 0.9 {
		t.Errorf("worst mistakes %+v, want c.jpg (0.9) then d.jpg (0.7)", got)
	}
	cs := cards([]GalleryItem{{Path: "/nonexistent/x.jpg"}, {Image: []byte("not an image")}})
	if cs[0].Problem != "image not found" || cs[1].Problem != "unreadable image" || cs[0].DataURI != "" {
		t.Errorf("cards for bad images: %+v", cs)
	}
}

// TestWriteOODAndTTA: evaluate --ood's and --tta's figures are in the
// summary (report JSON) and on the page, and --min-ood-auroc gates on the
// AUROC with one line.
func TestWriteOODAndTTA(t *testing.T) {
	names := []string{"cat", "dog"}
	rows := []metrics.Row{{True: 0, Pred: 0, Probs: []float64{0.9, 0.1}}, {True: 1, Pred: 1, Probs: []float64{0.3, 0.7}}}
	ood := &calibrate.OOD{Score: calibrate.ScoreLogOdds, Threshold: 2.5, Confidence: 0.924142, Accept: 0.95, Known: 2, Images: 3, AUROC: 0.8333, KnownAccepted: 1, OODAccepted: 0.3333}
	tta := &calibrate.TTA{Views: []string{"identity", "hflip"}, Without: calibrate.Scores{Accuracy: 0.5, ECE: 0.21, NLL: 0.7}, With: calibrate.Scores{Accuracy: 1, ECE: 0.12, NLL: 0.4}}
	gate, _ := metrics.MinOODAUROC(0.9)
	out := t.TempDir()
	sum, err := Write(Input{Classes: names, Rows: rows, OutDir: out, OOD: ood, TTA: tta, Gates: []metrics.Gate{gate}})
	if want := "gate failed: AUROC of the evaluated against the --ood images 0.8333 < 0.9000 by 0.0667 (--min-ood-auroc 0.9)"; err == nil || err.Error() != want || cli.ExitCode(err) != cli.ExitGate {
		t.Errorf("gate: %v, want %q", err, want)
	}
	if sum == nil || sum.OOD != ood || sum.TTA != tta {
		t.Fatalf("summary %+v", sum)
	}
	data, _ := json.Marshal(sum)
	for _, want := range []string{`"ood":{"score":"log_odds","threshold":2.5,"confidence":0.924142`, `"auroc":0.8333`, `"ood_accepted":0.3333`, `"known_accepted":1`, `"tta":{"views":["identity","hflip"]`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("summary JSON lacks %s: %s", want, data)
		}
	}
	page, _ := os.ReadFile(filepath.Join(out, FileReportHTML))
	for _, want := range []string{`<section id="ood">`, "log-odds 2.5, a top probability of 0.924142;", "AUROC 0.8333", "<td>33.3%</td>", `<section id="tta">`, "identity, hflip", "<td>0.1200</td>"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	if _, err := Write(Input{Classes: names, Rows: rows, OutDir: t.TempDir(), Gates: []metrics.Gate{gate}}); cli.ExitCode(err) != cli.ExitUsage {
		t.Errorf("--min-ood-auroc without --ood: %v", err)
	}
}
