package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/device"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/pyenv"
	"github.com/xcept/xcept/internal/run"
	"github.com/xcept/xcept/internal/tempdir"
)

// File names inside an export.
const (
	ManifestFile = "export.json" // TFLite and ONNX exports
	// A SavedModel's manifest goes in assets.extra/, the folder for files
	// that travel with a model but that TensorFlow does not load.
	SavedModelManifest = "assets.extra/xcept_export.json"
)

// ReadPrecision is the model precision a SavedModel export's manifest
// records; "" when it records none (an export older than the field, or a
// SavedModel xcept did not write).
func ReadPrecision(versionDir string) string {
	data, err := os.ReadFile(filepath.Join(versionDir, SavedModelManifest))
	var m struct {
		Precision string `json:"precision"`
	}
	if err != nil || json.Unmarshal(data, &m) != nil {
		return ""
	}
	return m.Precision
}

// ReadCalibration is the calibration an export's manifest records (the
// SavedModel's assets.extra/xcept_export.json, or export.json beside a
// TFLite or ONNX file); nil when it records none (an export older than the
// field, a model without a temperature, a SavedModel xcept did not write).
func ReadCalibration(versionDir string) (*calibrate.Deployed, error) {
	for _, name := range []string{SavedModelManifest, ManifestFile} {
		data, err := os.ReadFile(filepath.Join(versionDir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var m struct {
			Calibration *calibrate.Deployed `json:"calibration"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("%s: %v", filepath.Join(versionDir, name), err)
		}
		return m.Calibration, nil
	}
	return nil, nil
}

// job is one export underway.
type job struct {
	o       Options
	p       *progress
	src     *source
	name    string
	sample  *sample
	ref     *model.Model // the serving model with the best weights: the reference
	st      *staging
	work    string // scratch files (the intermediate SavedModel, .npy batches), always removed
	workDir *tempdir.Dir
	lock    *run.Lock // held when the export is written into the run folder
	res     *Result
	place   *device.Placement // where the reference (and a SavedModel candidate) runs
}

// newJob checks the run, the dataset and the verification images, loads
// the reference, and only then creates the export's temporary folder.
func newJob(ctx context.Context, o Options) (*job, error) {
	j := &job{o: o, p: &progress{o.Progress}}
	if err := j.open(ctx); err != nil {
		j.close()
		return nil, err
	}
	return j, nil
}

func (j *job) open(ctx context.Context) error {
	o := j.o
	var err error
	if j.name, err = o.exportName(); err != nil {
		return err
	}
	if j.place, err = device.Check(o.Session); err != nil {
		return err
	}
	base, err := o.base(j.name)
	if err != nil {
		return err
	}
	if j.src, err = openSource(o, base); err != nil {
		return err
	}
	j.lock = j.src.lock
	if o.Format != SavedModel {
		if _, err := pyenv.Python(); err != nil {
			return fault.New(fault.ToolFailed, "%s %s is converted by a script of xcept's Python environment: %v", optFormat, o.Format, err)
		}
	}
	info := j.src.info
	if j.sample, err = loadSample(ctx, j.src.verifyShards, info.ImageSize, info.NumClasses, o.Images, o.Format == SavedModel); err != nil {
		return err
	}
	if j.sample.N() == 0 {
		return fault.New(fault.BadData, "dataset %s has no %s images to verify the export on: set export.verify_splits to a split that has some",
			j.src.run.Info.Dataset, strings.Join(o.Splits, " or "))
	}
	if j.ref, err = model.OpenServing(j.src.run.Info.Model, o.Session); err != nil {
		return err
	}
	if err := j.src.run.Restore(j.ref.Session, run.Best); err != nil {
		return err
	}
	j.place.Use(info.Precision)
	if w := j.p.writer(); w != nil {
		j.place.Announce(w, false)
	}
	if j.st, err = stage(base); err != nil {
		return fault.About(fault.CannotWrite, fault.OutFolder, filepath.Dir(base), "%v: choose a folder you can write to", unwrapPath(err))
	}
	if j.workDir, err = tempdir.Make(base, workPrefix); err != nil {
		return fault.About(fault.CannotWrite, fault.OutFolder, filepath.Dir(base), "%v", unwrapPath(err))
	}
	j.work = j.workDir.Path
	return nil
}

// close frees the sessions and removes whatever was not published.
func (j *job) close() {
	if j.ref != nil {
		j.ref.Close()
	}
	j.workDir.Remove()
	if j.st != nil {
		j.st.abort()
	}
	j.lock.Release()
}

func (j *job) export(ctx context.Context) (*Result, error) {
	info := j.src.info
	j.res = &Result{
		Format: j.o.Format, Quantize: j.o.Quantize, Run: j.src.run.Dir,
		Checkpoint: j.src.run.CheckpointPrefix(run.Best), Epoch: j.src.epoch,
		Classes: info.Classes, ImageSize: info.ImageSize, TensorFlow: info.TensorFlowVersion,
		Precision: info.Precision, Arch: info.Arch(), Device: j.place,
	}
	if info.Calibratable() {
		j.res.Calibration = j.src.run.Info.Calibration.Deployed()
	}
	j.p.printf("exporting %s of run %s (best checkpoint, epoch %d) as %s", info, j.src.run.Dir, j.src.epoch, j.describe())
	var err error
	switch j.o.Format {
	case SavedModel:
		err = j.exportSavedModel(ctx)
	default:
		err = j.exportConverted(ctx)
	}
	if err != nil {
		return nil, j.writeError(ctx, err)
	}
	if err := j.gate(); err != nil {
		return nil, err
	}
	if err := j.publish(); err != nil {
		return nil, j.writeError(ctx, err)
	}
	return j.res, nil
}

// describe names the format for people.
func (j *job) describe() string {
	switch j.o.Format {
	case SavedModel:
		return "SavedModel"
	case ONNX:
		return "ONNX"
	}
	if j.o.Quantize == QuantNone {
		return "TFLite float32"
	}
	return "TFLite " + j.o.Quantize
}

// writeError gives an error without a reason one: a failed write is the
// output folder's problem (full, read-only), anything else TensorFlow's.
// An error with a reason is kept (the command layer's net, cli.AsWriteFailure,
// still turns a full disk behind it into a data error).
func (j *job) writeError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fault.ErrInterrupted
	}
	if fault.ReasonOf(err) != fault.Unknown {
		return err
	}
	if werr := fault.WriteFailed(j.st.Base, err); werr != err {
		return werr
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fault.About(fault.CannotWrite, fault.OutFolder, filepath.Dir(j.st.Base), "%v", err)
	}
	return fault.New(fault.ToolFailed, "%v", err)
}

// gate fails the export when a candidate agrees with the trained model on
// fewer images than asked, saying by how much.
func (j *job) gate() error {
	v := &j.res.Verification
	worst := v.Worst()
	v.Passed = v.MinAgreement == 0 || worst.Agreement.Agreement >= v.MinAgreement
	if v.Passed {
		return nil
	}
	a := worst.Agreement
	return fault.New(fault.GateFailed, "export gate: %s agrees with the trained model on %.2f%% of %d images (%d differ), %.2f points below %s %.2f%%; nothing was exported",
		worst.Name, 100*a.Agreement, v.Images, a.Disagreements, 100*(v.MinAgreement-a.Agreement), optMinAgreement, 100*v.MinAgreement)
}

// publish writes the manifest and renames the export into place.
func (j *job) publish() error {
	manifest := filepath.Join(j.st.Tmp, ManifestFile)
	if j.o.Format == SavedModel {
		manifest = filepath.Join(j.st.Tmp, SavedModelManifest)
		if err := os.MkdirAll(filepath.Dir(manifest), 0o755); err != nil {
			return err
		}
	}
	size, err := dirSize(j.st.Tmp)
	if err != nil {
		return err
	}
	j.res.SizeBytes = size
	data, err := json.MarshalIndent(j.res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(manifest, append(data, '\n'), 0o644); err != nil {
		return err
	}
	if err := syncTree(j.st.Tmp); err != nil {
		return err
	}
	path, version, err := j.st.commit()
	if err != nil {
		return err
	}
	j.res.Path, j.res.Version = path, version
	j.res.Artefact = filepath.Join(path, j.res.Artefact)
	j.res.Labels = filepath.Join(path, j.res.Labels)
	return nil
}

// verify runs the reference and every candidate on the sample and records
// the comparison.
func (j *job) verify(ctx context.Context, candidates []candidate) error {
	v := &j.res.Verification
	*v = Verification{Images: j.sample.N(), Splits: j.o.Splits, BatchSize: j.o.BatchSize, MinAgreement: j.o.MinAgreement}
	j.p.printf("verifying on %d %s images, %d per call", v.Images, strings.Join(j.o.Splits, "+"), j.o.BatchSize)
	refSize, err := dirSize(filepath.Join(j.src.run.Info.Model, model.ServingDir))
	if err != nil {
		return err
	}
	ref := capiSignature{Session: j.ref.Session, Signature: contract.SigPredict, Input: contract.InImages, Kind: inputUint8, Classes: j.src.info.Classes}
	want, err := ref.predict(ctx, j.sample, j.o.BatchSize)
	if err != nil {
		return err
	}
	k := len(j.src.info.Classes)
	v.Reference = Check{Name: "trained model (predict)", Runtime: runtimeCAPI, Input: inputUint8, SizeBytes: refSize,
		LatencyMS: perImage(want.PerItem), Accuracy: accuracy(want.Probs, j.sample.Labels, k)}
	for _, c := range candidates {
		started := time.Now()
		got, err := c.run(ctx)
		if err != nil {
			return err
		}
		a, err := compare(want.Probs, got.Probs, j.sample.N(), k)
		if err != nil {
			return fault.New(fault.ToolFailed, "%s: %v", c.check.Name, err)
		}
		check := c.check
		check.LatencyMS, check.Accuracy, check.Agreement = perImage(got.PerItem), accuracy(got.Probs, j.sample.Labels, k), &a
		v.Candidates = append(v.Candidates, check)
		j.p.printf("  %s: agreement %.2f%%, max |Δp| %.2g, accuracy %.2f%% (trained model %.2f%%), %.1f ms/image (%.1fs)",
			check.Name, 100*a.Agreement, a.MaxAbsDiff, 100*check.Accuracy, 100*v.Reference.Accuracy, check.LatencyMS, time.Since(started).Seconds())
	}
	return nil
}

// candidate is one way of running the artefact.
type candidate struct {
	check Check // what it is; verify fills in the figures
	run   func(ctx context.Context) (*prediction, error)
}

// Runtimes, as reported.
const (
	runtimeCAPI   = "TensorFlow C API"
	runtimeTFLite = "TFLite interpreter"
	runtimeONNX   = "onnxruntime"
)

// unwrapPath shortens "mkdir /a/b: permission denied" errors to the part
// that names the path, for one-line messages that already name the flag.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s %s: %v", pe.Op, pe.Path, pe.Err)
	}
	return err
}
