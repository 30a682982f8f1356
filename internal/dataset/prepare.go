// Package dataset turns a folder of labelled images into an xcept dataset:
// it audits every file, fixes what can be fixed, reports what cannot,
// assigns stable stratified splits, and writes TFRecord shards, labels.txt,
// problems.json and manifest.json without ever touching the originals.
package dataset

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xcept/xcept/internal/atomicfile"
	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/imageio"
)

// Options configure Prepare. Zero values are not defaults: the command fills
// every field from the layered configuration.
type Options struct {
	Data, Out    string
	ImageSize    int            // square side of the stored images
	Fractions    Fractions      // drawn split; ignored for train/ val/ test/ folders
	Seed         int64          // the split and the record order depend on it
	Fit          imageio.Fit    // resize policy
	Format       imageio.Format // stored image format: JPEG or PNG
	Quality      int            // JPEG quality, 1–100
	ShardBytes   int64          // target TFRecord shard size
	MaxPixels    int64          // decompression-bomb limit (width × height)
	MaxFileBytes int64          // files larger than this are not read
	MinSide      int            // images with a smaller side are skipped
	Workers      int            // decoding goroutines
	// FollowOutsideLinks follows symbolic links whose target is outside
	// Data; by default they are reported (symlink-outside-data) and skipped.
	FollowOutsideLinks bool
	// Finish, when set, completes the dataset in dir (the work folder, with
	// every dataset file written) before it is published: prepare builds the
	// model there, so that Out appears with model/ or not at all. An error
	// leaves Out as it was.
	Finish   func(ctx context.Context, dir string, classes []string) error
	Progress Progress // nil: none
}

// Progress receives the progress of the two long phases.
type Progress interface {
	Start(phase string, total int)
	Add(n int)
	Finish()
}

type noProgress struct{}

func (noProgress) Start(string, int) {}
func (noProgress) Add(int)           {}
func (noProgress) Finish()           {}

func (o *Options) progress() Progress {
	if o.Progress == nil {
		return noProgress{}
	}
	return o.Progress
}

// ParseFractions reads "0.8,0.1,0.1" (train, val, test); the shares must be
// non-negative, give train a positive share and add up to 1.
func ParseFractions(s string) (Fractions, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return Fractions{}, fmt.Errorf("%q: want three shares train,val,test such as 0.8,0.1,0.1", s)
	}
	var v [3]float64
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
			return Fractions{}, fmt.Errorf("%q: %q is not a share between 0 and 1", s, p)
		}
		v[i] = f
	}
	if sum := v[0] + v[1] + v[2]; math.Abs(sum-1) > 1e-6 {
		return Fractions{}, fmt.Errorf("%q: the shares add up to %g, not 1", s, sum)
	}
	if v[0] == 0 {
		return Fractions{}, fmt.Errorf("%q: the train share must be above 0", s)
	}
	return Fractions{Train: v[0], Val: v[1], Test: v[2]}, nil
}

// The options that errors name (fault.Option: the command layer names
// their flags).
const (
	optData fault.Option = "data"
	optOut  fault.Option = "out"
)

func (o *Options) validate() error {
	switch {
	case o.Data == "":
		return fault.New(fault.BadValue, "%s is required: the folder with one sub-folder per class", optData)
	case o.Out == "":
		return fault.New(fault.BadValue, "%s is required: the folder to write the dataset to", optOut)
	case o.ImageSize < 32 || o.ImageSize > 1024:
		return fault.BadSetting("model.image_size", "%d: choose 32 to 1024 (Xception needs at least 71 at its input)", o.ImageSize)
	case o.Format != imageio.JPEG && o.Format != imageio.PNG:
		return fault.BadSetting("prepare.format", "%q: choose jpeg or png", o.Format)
	case o.Format == imageio.JPEG && (o.Quality < 1 || o.Quality > 100):
		return fault.BadSetting("prepare.jpeg_quality", "%d: choose 1 to 100", o.Quality)
	case o.ShardBytes < 1:
		return fault.New(fault.BadValue, "prepare.shard_mb: choose at least 1")
	case o.MaxPixels < 1:
		return fault.New(fault.BadValue, "prepare.max_pixels %d: choose a positive limit", o.MaxPixels)
	case o.MaxFileBytes < 1:
		return fault.New(fault.BadValue, "prepare.max_file_mb: choose a positive limit")
	case o.MinSide < 1:
		return fault.New(fault.BadValue, "prepare.min_side %d: choose at least 1", o.MinSide)
	}
	if _, err := imageio.ParseFit(string(o.Fit)); err != nil {
		return fault.BadSetting("prepare.resize", "%v", err)
	}
	return nil
}

// Prepare audits opts.Data and writes the dataset to opts.Out. The dataset
// is built in a work folder beside Out and renamed into place only when
// manifest.json, written last, is there; an interrupted run leaves Out as it
// was. The report is returned whenever the audit ran, also with an error,
// so that the caller can show what was wrong with the data.
func Prepare(ctx context.Context, opts Options) (*Report, error) {
	start := time.Now()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	data, err := filepath.Abs(opts.Data)
	if err != nil {
		return nil, fault.About(fault.BadValue, fault.DataFolder, opts.Data, "%v", err)
	}
	out, err := filepath.Abs(opts.Out)
	if err != nil {
		return nil, fault.About(fault.BadValue, fault.OutFolder, opts.Out, "%v", err)
	}
	opts.Data, opts.Out = data, out
	if err := checkPaths(data, out); err != nil {
		return nil, err
	}
	sc, err := scan(data, opts.FollowOutsideLinks)
	if err != nil {
		return nil, err
	}
	if len(sc.classDirs) == 0 {
		return nil, fault.About(fault.BadData, fault.DataFolder, data, "no class folders found: put each class's images in a sub-folder named after the class")
	}
	work, err := newWorkDir(out)
	if err != nil {
		return nil, err
	}
	published := false
	defer func() {
		if !published {
			os.RemoveAll(work)
		}
	}()
	spoolPath := filepath.Join(work, "spool")
	spool, err := os.Create(spoolPath)
	if err != nil {
		return nil, fault.WriteFailedAbout(fault.OutFolder, out, err)
	}
	defer spool.Close()

	audited, err := auditAll(ctx, sc.files, spool, &opts)
	if err != nil {
		return nil, fault.WriteFailedAbout(fault.OutFolder, out, err)
	}
	items := make([]*item, len(audited))
	for i := range audited {
		items[i] = &audited[i]
	}
	plan, err := assemble(sc, items, &opts)
	rep := newReport(&opts, sc, items, plan, start)
	if err != nil {
		return rep, err
	}
	m, err := writeDataset(ctx, work, spool, plan, &opts)
	if err != nil {
		return rep, fault.WriteFailedAbout(fault.OutFolder, out, err)
	}
	spool.Close()
	if err := os.Remove(spoolPath); err != nil {
		return rep, err
	}
	if opts.Finish != nil {
		if err := opts.Finish(ctx, work, m.ClassNames()); err != nil {
			return rep, err
		}
	}
	if err := publish(work, out); err != nil {
		return rep, fault.WriteFailedAbout(fault.OutFolder, out, fault.About(fault.Unknown, fault.OutFolder, out, "moving the finished dataset into place: %w", err))
	}
	published = true
	rep.Manifest = m
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// plan is the dataset decided from the audit, before anything is written.
type plan struct {
	classes  []string // labels, in order
	kept     []*item  // by path
	counts   classCounts
	problems []Problem
	folders  bool
}

// assemble splits, deduplicates, decides the classes, and checks that a
// classifier can be trained on the result.
func assemble(sc *scanned, items []*item, opts *Options) (*plan, error) {
	p := &plan{folders: sc.fromFolders, problems: []Problem{}}
	p.problems = append(p.problems, sc.problems...)
	for _, it := range items {
		switch {
		case it.fail != nil:
			p.problems = append(p.problems, *it.fail)
		case sc.fromFolders:
			it.split = it.folder
		default:
			it.split = drawSplit(opts.Seed, it.sha, opts.Fractions)
		}
	}
	p.problems = append(p.problems, dedupe(items)...)
	p.counts = countSplits(items)
	for _, c := range sc.sortedClasses() {
		if p.counts.total(c) == 0 {
			p.problems = append(p.problems, Problem{Path: strings.Join(sc.classDirs[c], ", "), Reason: ReasonEmptyClass,
				Action: ActionExcluded, Detail: fmt.Sprintf("class %q has no usable image; it is left out of the labels", c)})
			continue
		}
		p.classes = append(p.classes, c)
	}
	label := map[string]int{}
	for i, c := range p.classes {
		label[c] = i
	}
	for _, it := range items {
		if it.fail == nil && !it.drop {
			it.label = label[it.class]
			p.kept = append(p.kept, it)
			p.problems = append(p.problems, it.notes...)
		}
	}
	slices.SortFunc(p.kept, func(a, b *item) int { return strings.Compare(a.rel, b.rel) })
	p.problems = append(p.problems, p.splitWarnings(sc, opts)...)
	sortProblems(p.problems)
	return p, p.trainable(opts)
}

// splitWarnings reports classes that some split lacks. Training can go on;
// the evaluation of that class on that split cannot.
func (p *plan) splitWarnings(sc *scanned, opts *Options) []Problem {
	var ps []Problem
	share := map[string]float64{Train: opts.Fractions.Train, Val: opts.Fractions.Val, Test: opts.Fractions.Test}
	present := map[string]bool{}
	for _, it := range p.kept {
		present[it.split] = true
	}
	for _, c := range p.classes {
		n := p.counts[c]
		var missing []string
		for _, s := range Splits[1:] {
			if n[s] > 0 || (!p.folders && share[s] == 0) || (p.folders && !present[s]) {
				continue
			}
			missing = append(missing, s)
		}
		if len(missing) == 0 || n[Train] == 0 {
			continue
		}
		counts := fmt.Sprintf("%d train, %d val, %d test", n[Train], n[Val], n[Test])
		if p.folders {
			ps = append(ps, Problem{Path: strings.Join(sc.classDirs[c], ", "), Reason: ReasonClassSplitEmpty, Action: ActionKept,
				Detail: fmt.Sprintf("class %q has no %s images (%s): it cannot be evaluated there", c, strings.Join(missing, " or "), counts)})
			continue
		}
		ps = append(ps, Problem{Path: strings.Join(sc.classDirs[c], ", "), Reason: ReasonClassTooSmall, Action: ActionKept,
			Detail: fmt.Sprintf("class %q: %d images drew no %s images (%s); add images so that every split gets some", c, p.counts.total(c), strings.Join(missing, " or "), counts)})
	}
	return ps
}

// trainable returns the data errors that stop prepare: no usable image,
// fewer than two classes, or a class without training images.
func (p *plan) trainable(opts *Options) error {
	if len(p.kept) == 0 {
		return fault.About(fault.BadData, fault.DataFolder, opts.Data, "no usable image (see the problems above)")
	}
	if len(p.classes) < 2 {
		return fault.About(fault.BadData, fault.DataFolder, opts.Data, "only %d class with usable images (%s): a classifier needs at least two class folders", len(p.classes), strings.Join(p.classes, ", "))
	}
	var starved []string
	for _, c := range p.classes {
		if p.counts[c][Train] == 0 {
			starved = append(starved, fmt.Sprintf("%q (%d images)", c, p.counts.total(c)))
		}
	}
	if len(starved) > 0 {
		if !p.folders {
			return fault.About(fault.BadData, fault.DataFolder, opts.Data, "no training images for class %s: add images, or raise the train share of %s", strings.Join(starved, ", "), fault.Option("split"))
		}
		return fault.About(fault.BadData, fault.DataFolder, opts.Data, "no training images for class %s: add images to its train/ folder", strings.Join(starved, ", "))
	}
	return nil
}

// writeDataset writes shards, labels.txt, problems.json and, last,
// manifest.json into the work folder.
func writeDataset(ctx context.Context, work string, spool *os.File, p *plan, opts *Options) (*Manifest, error) {
	m := &Manifest{
		Format: ManifestFormat, Version: ManifestVersion, Seed: opts.Seed,
		SplitSource: "hash", Fractions: opts.Fractions,
		Image:    ImageSpec{Size: opts.ImageSize, Resize: string(opts.Fit), Format: string(opts.Format)},
		Problems: len(p.problems), Files: make([]File, 0, len(p.kept)),
	}
	if p.folders {
		m.SplitSource = "folders"
		m.Fractions = Fractions{}
	}
	if opts.Format == imageio.JPEG {
		m.Image.Quality = opts.Quality
	}
	bySplit := map[string][]*item{}
	for _, it := range p.kept {
		bySplit[it.split] = append(bySplit[it.split], it)
		m.Files = append(m.Files, manifestFile(it, p.classes))
	}
	opts.progress().Start("writing", len(p.kept))
	for _, s := range Splits {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		files, err := writeSplit(work, s, slices.Clone(bySplit[s]), spool, p.classes, opts)
		if err != nil {
			return nil, err
		}
		m.Splits = append(m.Splits, files)
	}
	opts.progress().Finish()
	m.Classes = classTable(p)
	if err := atomicfile.WriteFile(filepath.Join(work, contract.LabelsFile), contract.LabelsText(p.classes)); err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(work, ProblemsFile), p.problems); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return m, writeJSON(filepath.Join(work, ManifestFile), m)
}

func manifestFile(it *item, classes []string) File {
	return File{
		Path: it.rel, SHA256: fmt.Sprintf("%x", it.sha), Class: classes[it.label], Label: it.label, Split: it.split,
		Format: string(it.info.Format), Width: it.info.Width, Height: it.info.Height, Bytes: it.bytes,
		Conversions: it.info.Conversions,
	}
}

// classTable gives each class its counts and balanced training weight.
func classTable(p *plan) []Class {
	trainTotal := 0
	for _, c := range p.classes {
		trainTotal += p.counts[c][Train]
	}
	out := make([]Class, len(p.classes))
	for i, c := range p.classes {
		n := p.counts[c]
		out[i] = Class{Name: c, Label: i, Train: n[Train], Val: n[Val], Test: n[Test],
			Weight: float64(trainTotal) / float64(len(p.classes)*n[Train])}
	}
	return out
}
