package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"

	"github.com/xcept/xcept/internal/atomicfile"
	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/metrics"
)

// Input is everything an evaluation report is made from. Evaluating a
// predictions file and evaluating a model both end here, with the same
// rows, so their reports cannot drift apart.
type Input struct {
	Classes     []string       // class names in index order (labels.txt)
	Rows        []metrics.Row  // one per evaluated sample
	HistoryPath string         // training history.csv, "" for none
	OutDir      string         // where the report files go (created)
	Gates       []metrics.Gate // CI gates, checked after everything is written
	TopK        int            // k of top-k accuracy; 0 means 5
	Source      string         // what was evaluated, shown on the page
	// Gallery lists the mistakes to show. Nil picks the GallerySize most
	// confident mistakes among Rows whose File can be read, relative paths
	// resolving against FileBase.
	Gallery     []GalleryItem
	GallerySize int // 0 means 24
	FileBase    string
	// Temperature is the run's fitted temperature, which its model's
	// probabilities already include (0: unknown or none); Fit its fit on
	// the validation split.
	Temperature float64
	Fit         *calibrate.Fit
	// OOD is evaluate --ood's measure of the "unknown" threshold (nil
	// without); TTA evaluate --tta's comparison (nil without).
	OOD *calibrate.OOD
	TTA *calibrate.TTA
}

// Summary is what an evaluation found, printed by --json and rendered on
// the page. Report is scikit-learn's output_dict layout.
type Summary struct {
	Source       string               `json:"source,omitempty"`
	Samples      int                  `json:"samples"`
	Classes      int                  `json:"classes"`
	Accuracy     float64              `json:"accuracy"`
	Top1         *float64             `json:"top1_accuracy,omitempty"`
	K            int                  `json:"k,omitempty"`
	TopK         *float64             `json:"top_k_accuracy,omitempty"`
	MacroF1      float64              `json:"macro_f1"`
	WeightedF1   float64              `json:"weighted_f1"`
	Report       *metrics.Report      `json:"report"`
	MostConfused []metrics.Pair       `json:"most_confused"`
	Calibration  *Calibration         `json:"calibration,omitempty"` // nil without probabilities
	OOD          *calibrate.OOD       `json:"ood,omitempty"`         // evaluate --ood
	TTA          *calibrate.TTA       `json:"tta,omitempty"`         // evaluate --tta
	Gates        []metrics.GateResult `json:"gates"`
	GatesPassed  bool                 `json:"gates_passed"`
	Files        map[string]string    `json:"files"`
}

// Report files written by Write, in OutDir.
const (
	FilePredictions  = "predictions.csv"
	FileReportText   = "report.txt"
	FileReportJSON   = "report.json"
	FileConfusionCSV = "confusion.csv"
	FileConfusionPNG = "confusion.png"
	FileCurvesPNG    = "curves.png"
	FileReportHTML   = "report.html"
)

// pageContentWidth is the width report.html gives a figure (its CSS
// max-width less the padding).
const pageContentWidth = 1180

// mostConfusedShown is how many confused pairs the summary lists.
const mostConfusedShown = 10

// Write computes the metrics and writes predictions.csv, report.txt,
// report.json, confusion.csv, confusion.png, curves.png (with a history)
// and report.html to in.OutDir. Every file is written before the gates are
// judged; a failed gate returns the summary and a fault.GateFailed error naming
// each failed gate and by how much.
func Write(in Input) (*Summary, error) {
	if err := validate(in); err != nil {
		return nil, err
	}
	k := in.TopK
	if k <= 0 {
		k = 5
	}
	cm := metrics.NewConfusion(in.Classes, in.Rows)
	rep := metrics.NewReport(cm)
	gates, err := metrics.CheckGates(rep, in.Gates)
	if err != nil {
		return nil, fault.New(fault.BadValue, "%v", err)
	}
	cal, err := calibrationOf(len(in.Classes), in.Rows, in.Temperature, in.Fit)
	if err != nil {
		return nil, fault.New(fault.BadData, "calibration: %v", err)
	}
	for _, g := range in.Gates {
		if g.Metric != metrics.GateECE {
			continue
		}
		if cal == nil {
			return nil, fault.New(fault.BadValue, "%s needs probabilities: the predictions have no probability columns", g)
		}
		gates = append(gates, metrics.CheckMax(g, cal.Evaluated.ECE))
	}
	for _, g := range in.Gates {
		if g.Metric != metrics.GateOODAUROC {
			continue
		}
		if in.OOD == nil {
			return nil, fault.New(fault.BadValue, "%s needs %s DIR: a folder of images of none of the classes", g, fault.Option("ood"))
		}
		gates = append(gates, metrics.CheckMin(g, in.OOD.AUROC))
	}
	s := &Summary{
		Source: in.Source, Samples: len(in.Rows), Classes: len(in.Classes),
		Accuracy: rep.Accuracy, MacroF1: rep.Macro.F1, WeightedF1: rep.Weighted.F1,
		Report: rep, MostConfused: cm.MostConfused(mostConfusedShown), Calibration: cal, OOD: in.OOD, TTA: in.TTA,
		Gates: gates, GatesPassed: metrics.FailedGates(gates) == "",
		Files: map[string]string{},
	}
	if top1, ok := metrics.TopK(in.Rows, 1); ok {
		s.Top1 = &top1
		// With k at least the number of classes every sample is a hit:
		// a 100% that says nothing is left out.
		if k < len(in.Classes) {
			topk, _ := metrics.TopK(in.Rows, k)
			s.K, s.TopK = k, &topk
		}
	}
	var history *History
	if in.HistoryPath != "" {
		if history, err = ReadHistory(in.HistoryPath); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(in.OutDir, 0o755); err != nil {
		return nil, fault.About(fault.CannotWrite, fault.OutFolder, in.OutDir, "cannot create the folder: %v", err)
	}
	w := &writer{dir: in.OutDir, files: s.Files}
	w.write(FilePredictions, func(f io.Writer) error { return metrics.WritePredictions(f, in.Classes, in.Rows, k) })
	w.write(FileReportText, func(f io.Writer) error { _, err := io.WriteString(f, rep.Text(2)); return err })
	w.write(FileReportJSON, func(f io.Writer) error { return writeJSON(f, rep) })
	w.write(FileConfusionCSV, cm.WriteCSV)
	confusionImg := RenderConfusion(cm)
	confusionPNG := encodePNG(confusionImg)
	w.write(FileConfusionPNG, bytesOf(confusionPNG))
	var curvesPNG []byte
	if history != nil && len(history.Metrics) > 0 {
		curvesPNG = encodePNG(RenderCurves(history))
		w.write(FileCurvesPNG, bytesOf(curvesPNG))
	}
	var reliabilityPNG []byte
	if cal != nil {
		reliabilityPNG = encodePNG(RenderReliability(cal))
		w.write(FileReliabilityPNG, bytesOf(reliabilityPNG))
	}
	gallery := in.Gallery
	if gallery == nil {
		gallery = WorstMistakes(in.Classes, in.Rows, cmpOr(in.GallerySize, 24), in.FileBase)
	}
	page := pageData{Summary: s, ReportText: rep.Text(2), Confusion: confusionPNG, Curves: curvesPNG,
		ConfusionWide: confusionImg.Rect.Dx() > pageContentWidth, Reliability: reliabilityPNG,
		Gallery: readableCards(cards(gallery))}
	w.write(FileReportHTML, func(f io.Writer) error { return renderHTML(f, page) })
	if w.err != nil {
		return nil, w.err
	}
	if failed := metrics.FailedGates(gates); failed != "" {
		return s, fault.New(fault.GateFailed, "gate failed: %s", failed)
	}
	return s, nil
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// readableCards drops the gallery when not one image could be read (a
// predictions file from another machine): a wall of "image not found"
// helps nobody. Otherwise missing images keep their card.
func readableCards(cs []galleryCard) []galleryCard {
	for _, c := range cs {
		if c.DataURI != "" {
			return cs
		}
	}
	return nil
}

func validate(in Input) error {
	k := len(in.Classes)
	if k == 0 {
		return fault.New(fault.BadData, "no classes to evaluate (empty labels)")
	}
	if len(in.Rows) == 0 {
		return fault.New(fault.BadData, "no predictions to evaluate")
	}
	for i, r := range in.Rows {
		if r.True < 0 || r.True >= k || r.Pred < 0 || r.Pred >= k {
			return fault.New(fault.BadData, "prediction %d (%s): class index %d or %d out of range for %d classes", i+1, r.File, r.True, r.Pred, k)
		}
		if r.Probs != nil && len(r.Probs) != k {
			return fault.New(fault.BadData, "prediction %d (%s): %d probabilities for %d classes: the model and labels.txt disagree", i+1, r.File, len(r.Probs), k)
		}
	}
	return nil
}

// writer writes report files atomically (temporary name, then rename), so a
// reader never sees half a report, and remembers the first error.
type writer struct {
	dir   string
	files map[string]string
	err   error
}

func (w *writer) write(name string, fill func(io.Writer) error) {
	if w.err != nil {
		return
	}
	path := filepath.Join(w.dir, name)
	if err := atomicfile.Write(path, fill); err != nil {
		w.err = fault.New(fault.CannotWrite, "writing %s: %v", path, err)
		return
	}
	w.files[name] = path
}

func bytesOf(b []byte) func(io.Writer) error {
	return func(w io.Writer) error { _, err := w.Write(b); return err }
}

func writeJSON(w io.Writer, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// encodePNG cannot fail on an in-memory RGBA; a failure would be a bug.
func encodePNG(img image.Image) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(fmt.Sprintf("report: PNG encoding of an RGBA image failed: %v", err))
	}
	return buf.Bytes()
}
