package evaluate

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/infer"
	"github.com/xcept/xcept/internal/loader"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/report"
	"github.com/xcept/xcept/internal/run"
)

// namedSplits are the splits of a prepared dataset that --split names.
var namedSplits = []string{dataset.Test, dataset.Val, dataset.Train}

// source is what --split names: a prepared split's records, or a labelled
// folder of image files.
type source struct {
	name   string // for messages and the report page
	shards []string
	files  []infer.LabelledFile
	fit    imageio.Fit
	o      Options
}

func newSource(r *run.Run, info *model.Info, o Options) (*source, error) {
	ds, dsErr := dataset.ReadManifest(r.Info.Dataset)
	if slices.Contains(namedSplits, o.Split) {
		if dsErr != nil {
			return nil, fault.New(fault.BadData, "run %s: its dataset %s cannot be read (%v): evaluate a folder with %s DIR", r.Dir, r.Info.Dataset, dsErr, optSplit)
		}
		if err := contract.CheckFit(info.Fit(), contract.Fit{Name: "the dataset " + r.Info.Dataset, Classes: ds.ClassNames()}, infer.Refit); err != nil {
			return nil, err
		}
		shards := ds.ShardPaths(r.Info.Dataset, o.Split)
		if n, _ := loader.Count(shards); n == 0 {
			return nil, fault.New(fault.BadData, "the dataset %s has no %s images: choose another %s (test, val, train or a folder)", r.Info.Dataset, o.Split, optSplit)
		}
		fit := imageio.Squash
		if f, err := imageio.ParseFit(ds.Image.Resize); err == nil {
			fit = f // --ood's images are resized as prepare resized the split's
		}
		return &source{name: fmt.Sprintf("the %s split of %s", o.Split, r.Info.Dataset), shards: shards, fit: fit, o: o}, nil
	}
	if st, err := os.Stat(o.Split); err != nil || !st.IsDir() {
		return nil, fault.New(fault.BadData, "%s %s: no such folder (want test, val, train, or a folder with one sub-folder per class)", optSplit, o.Split)
	}
	files, err := infer.ScanLabelled(o.Split, info.Classes, optSplit)
	if err != nil {
		return nil, err
	}
	fit := imageio.Squash // the serving graph's own resize, when the dataset is gone
	if dsErr == nil {
		if f, err := imageio.ParseFit(ds.Image.Resize); err == nil {
			fit = f
		}
	}
	return &source{name: "the folder " + o.Split, files: files, fit: fit, o: o}, nil
}

// predict runs the model over every image of the source, in order.
func (s *source) predict(ctx context.Context, m *infer.Pixels) (*infer.Evaluated, error) {
	if s.files == nil {
		return infer.PredictRecords(ctx, m, s.shards, s.o.Batch)
	}
	skipped := 0
	ev, err := infer.PredictLabelled(ctx, m, s.files, s.fit, s.o.Batch, s.o.Limits, func(e *infer.FileError) {
		skipped++
		s.o.Notef("skipped %s: %s (%s)", e.Path, e.Reason, e.Detail)
	})
	if err == nil && skipped > 0 {
		s.o.Notef("%d unreadable files left out of the evaluation", skipped)
	}
	return ev, err
}

// measureOOD predicts the --ood folder and measures the threshold on it
// against the evaluated images.
func (s *source) measureOOD(ctx context.Context, m *infer.Pixels, ev *infer.Evaluated, reject *calibrate.Rejection) (*calibrate.OOD, error) {
	skipped := 0
	probs, n, err := infer.PredictFolder(ctx, m, s.o.OOD, s.fit, s.o.Batch, s.o.Limits, func(e *infer.FileError) {
		skipped++
		s.o.Notef("skipped %s: %s (%s)", e.Path, e.Reason, e.Detail)
	})
	if err != nil {
		return nil, err
	}
	if skipped > 0 {
		s.o.Notef("%d unreadable files left out of --ood", skipped)
	}
	if n == 0 {
		return nil, fault.New(fault.BadData, "%s %s: no image could be read", optOOD, s.o.OOD)
	}
	known, _ := infer.Probabilities(ev)
	ood, err := calibrate.MeasureOOD(known, probs, m.Info.NumClasses, reject)
	if err != nil {
		return nil, fault.New(fault.BadData, "%s: %v", optOOD, err)
	}
	return ood, nil
}

// galleryShown is how many mistakes the page shows.
const galleryShown = 24

// gallery picks the worst mistakes. Files are read from disk by the
// report; records lend their stored (already resized) image.
func (s *source) gallery(classes []string, ev *infer.Evaluated) ([]report.GalleryItem, error) {
	items := report.WorstMistakes(classes, ev.Rows, galleryShown, "")
	if s.files != nil {
		return items, nil
	}
	// Items name their rows by file; prepared datasets name every record
	// uniquely. A name missing or shared (records from another tool) gets
	// no picture rather than someone else's.
	record := map[string]int{}
	for i, row := range ev.Rows {
		if _, seen := record[row.File]; seen || row.File == "" {
			record[row.File] = -1
			continue
		}
		record[row.File] = ev.Records[i]
	}
	want := map[int]bool{}
	for _, it := range items {
		if i := record[it.Name]; i >= 0 {
			want[i] = true
		}
	}
	images, err := infer.RecordImages(s.shards, want)
	if err != nil {
		return nil, err
	}
	for i := range items {
		items[i].Path = ""
		if r := record[items[i].Name]; r >= 0 {
			items[i].Image = images[r]
		}
	}
	return items, nil
}
