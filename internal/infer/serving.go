package infer

import (
	"context"
	"image"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/metrics"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/run"
	"github.com/xcept/xcept/internal/trust"
	"github.com/xcept/xcept/internal/versions"
)

// Serving predicts encoded image files through serving_default, the path
// TF Serving and Python take: TensorFlow decodes the file's own bytes and
// resizes in the graph, so the probabilities are theirs exactly.
//
// On onnxruntime (pixels set) there is no image decoder in the model: xcept
// decodes each file upright as prepare does and squash-resizes it to the
// model's size (the serving graph's own resize), then feeds the pixels.
type Serving struct {
	Session *graph.Session
	Classes []string
	Engine  string       // EngineTensorFlow | EngineONNXRuntime
	owned   bool         // Close closes the session
	model   *model.Model // closed by Close when set
	pixels  *Pixels      // onnxruntime: runs decoded pixels

	// The "unknown" threshold (Rejection), where it was looked for, and
	// what to do without one.
	reject                *calibrate.Rejection
	rejectErr             error
	rejectWhat            any // where the threshold is looked for: "run", or fault.Option("model")
	rejectFrom, rejectFix string
}

// NewServing wraps an open serving session (a run's restored serving
// model), checking that serving_default takes encoded images.
func NewServing(s *graph.Session, classes []string) (*Serving, error) {
	sig, err := s.Signature(contract.SigServing)
	if err != nil {
		return nil, fault.New(fault.ToolFailed, "%v", err)
	}
	in, ok := sig.Inputs[contract.InImageBytes]
	_, hasProbs := sig.Outputs[contract.OutProbabilities]
	if !ok || in.DType != graph.String || !hasProbs {
		return nil, fault.New(fault.NotAModel, "%s: %s does not take encoded images (%s) to probabilities: rebuild the model with this xcept",
			s.Dir, contract.SigServing, contract.InImageBytes)
	}
	return &Serving{Session: s, Classes: classes, Engine: EngineTensorFlow}, nil
}

// OpenRunServing opens a run's best checkpoint for encoded image files on
// the engine o chooses (see OpenPixels): onnxruntime on its cached
// conversion, or TensorFlow's serving_default.
func OpenRunServing(ctx context.Context, r *run.Run, o EngineOptions) (*Serving, error) {
	p, err := chooseONNX(ctx, r, o)
	if err != nil {
		return nil, err
	}
	if p != nil {
		s := &Serving{Classes: p.Info.Classes, Engine: EngineONNXRuntime, pixels: p}
		s.setRunRejection(r, p.Info)
		return s, nil
	}
	m, err := OpenServing(r, o.Session)
	if err != nil {
		return nil, err
	}
	s, err := NewServing(m.Session, m.Info.Classes)
	if err != nil {
		m.Close()
		return nil, err
	}
	s.model = m
	s.setRunRejection(r, m.Info)
	return s, nil
}

// OpenSavedModel opens an exported serving SavedModel: dir itself, or
// the newest numbered version in a TF Serving layout (dir/1/, dir/2/...).
// The class names are its assets/labels.txt. Unless allowUntrusted, a
// model trust.Check refuses is not loaded (loading runs its ops).
func OpenSavedModel(dir string, opts graph.SessionOptions, allowUntrusted bool) (*Serving, error) {
	path, err := ResolveSavedModel(dir)
	if err != nil {
		return nil, err
	}
	if !allowUntrusted {
		if err := trust.Check(path); err != nil {
			return nil, fault.About(fault.ToolFailed, fault.ModelFolder, dir, "%v", err)
		}
	}
	labels, err := metrics.ReadLabels(filepath.Join(path, contract.LabelsAsset))
	if err != nil {
		return nil, fault.About(fault.NotAModel, fault.ModelFolder, dir, "no class names (%v): export the model with xcept, or add %s", err, contract.LabelsAsset)
	}
	s, err := graph.LoadSavedModel(path, opts)
	if err != nil {
		return nil, fault.About(fault.ToolFailed, fault.ModelFolder, dir, "loading %s: %v", path, err)
	}
	sv, err := NewServing(s, labels.Names)
	if err != nil {
		s.Close()
		return nil, err
	}
	sv.owned = true
	sv.setExportRejection(dir, path)
	return sv, nil
}

// ResolveSavedModel finds the SavedModel folder that dir names: dir
// itself, or its newest complete version folder (TF Serving's layout). A
// missing folder, or one without a SavedModel, is a bad path (data error).
func ResolveSavedModel(dir string) (string, error) {
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return "", fault.About(fault.BadData, fault.ModelFolder, dir, "no such folder")
	}
	if isSavedModel(dir) {
		return dir, nil
	}
	// Complete versions only, newest first, as serve picks them: a version
	// still being copied in is not half-read.
	if v, ok := versions.Newest(dir); ok {
		return v.Dir, nil
	}
	if _, err := os.Stat(filepath.Join(dir, model.InfoFile)); err == nil {
		return "", fault.New(fault.BadData, "%s %s is a model folder: pass %s, or %s for trained weights",
			fault.Option("model"), dir, filepath.Join(dir, model.ServingDir), fault.Option("run"))
	}
	return "", fault.About(fault.BadData, fault.ModelFolder, dir, "no SavedModel here (want saved_model.pb, or version folders 1/, 2/ ... as TF Serving has them)")
}

func isSavedModel(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, contract.SavedModelFile))
	return err == nil
}

// Close closes the session if OpenSavedModel or OpenRunServing opened it.
func (s *Serving) Close() error {
	switch {
	case s.pixels != nil:
		return s.pixels.Close()
	case s.model != nil:
		return s.model.Close()
	case s.owned:
		return s.Session.Close()
	}
	return nil
}

// Predict runs serving_default on encoded images and returns their
// probabilities, n × classes.
func (s *Serving) Predict(encoded [][]byte) ([]float32, error) {
	in, err := graph.NewStrings([]int64{int64(len(encoded))}, encoded)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	out, err := s.Session.Run(contract.SigServing, map[string]*graph.Tensor{contract.InImageBytes: in}, contract.OutProbabilities)
	if err != nil {
		return nil, err
	}
	defer out[0].Close()
	probs, err := out[0].Float32s()
	if err != nil {
		return nil, err
	}
	if len(probs) != len(encoded)*len(s.Classes) {
		return nil, fault.New(fault.NotAModel, "%s: %d probabilities for %d images of %d classes: the model and its labels.txt disagree",
			s.Session.Dir, len(probs), len(encoded), len(s.Classes))
	}
	return probs, nil
}

// Encoded is what serving_default is fed for one file: imageio.ServingFeed.
func Encoded(data []byte, lim imageio.Limits) (feed []byte, converted string, err error) {
	return imageio.ServingFeed(data, lim)
}

// Prediction is the outcome for one input file.
type Prediction struct {
	Input
	Probs []float32 // one per class; nil when Err is set
	// Converted says why the file was decoded by xcept and fed as PNG ("" when
	// TensorFlow read the file's own bytes).
	Converted string
	Err       *FileError
}

// PredictFiles predicts the inputs in batches of batchSize and calls emit
// for each in input order (folder entries that are no image at all are
// left out). An unreadable file is a Prediction with Err; the others are
// still predicted. Only a model failure or ctx ends it early.
func (s *Serving) PredictFiles(ctx context.Context, inputs []Input, batchSize int, lim Limits, emit func(Prediction) error) error {
	for start := 0; start < len(inputs); start += batchSize {
		if ctx.Err() != nil {
			return fault.ErrInterrupted
		}
		chunk := inputs[start:min(start+batchSize, len(inputs))]
		var preds []Prediction
		if s.pixels != nil {
			var err error
			if preds, err = s.predictPixels(chunk, lim); err != nil {
				return err
			}
		} else {
			var feeds [][]byte
			preds, feeds = prepareBatch(chunk, lim)
			if err := s.predictBatch(preds, feeds, lim); err != nil {
				return err
			}
		}
		for i, p := range preds {
			if p.Err != nil && chunk[i].Skippable(p.Err) {
				continue
			}
			if err := emit(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// prepareBatch reads and checks a batch's files on all cores.
func prepareBatch(inputs []Input, lim Limits) ([]Prediction, [][]byte) {
	preds := make([]Prediction, len(inputs))
	feeds := make([][]byte, len(inputs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, in := range inputs {
		preds[i].Input = in
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			data, ferr := ReadFile(in, lim)
			if ferr != nil {
				preds[i].Err = ferr
				return
			}
			feed, converted, err := Encoded(data, lim.Limits)
			if err != nil {
				preds[i].Err = imageError(in.Path, err)
				return
			}
			feeds[i], preds[i].Converted = feed, converted
		}()
	}
	wg.Wait()
	return preds, feeds
}

// predictBatch runs the good files of a batch together. Should TensorFlow
// refuse the batch (a file Go decodes and TensorFlow does not), each file
// is run alone, and one TensorFlow refuses is fed re-encoded as PNG.
func (s *Serving) predictBatch(preds []Prediction, feeds [][]byte, lim Limits) error {
	var idx []int
	var batch [][]byte
	for i, f := range feeds {
		if f != nil {
			idx = append(idx, i)
			batch = append(batch, f)
		}
	}
	if len(batch) == 0 {
		return nil
	}
	k := len(s.Classes)
	probs, err := s.Predict(batch)
	if err == nil {
		for j, i := range idx {
			preds[i].Probs = probs[j*k : (j+1)*k]
		}
		return nil
	}
	if fault.ReasonOf(err) != fault.Unknown {
		return err
	}
	for _, i := range idx {
		if preds[i].Probs, err = s.Predict([][]byte{feeds[i]}); err == nil {
			continue
		}
		png, perr := reencodePNG(preds[i].Input, lim)
		if perr != nil {
			return fault.New(fault.ToolFailed, "predicting %s: %v", preds[i].Path, oneLine(err))
		}
		if preds[i].Probs, err = s.Predict([][]byte{png}); err != nil {
			return fault.New(fault.ToolFailed, "predicting %s: %v", preds[i].Path, oneLine(err))
		}
		preds[i].Converted = "tensorflow-refused-file"
	}
	return nil
}

// predictPixels decodes and squash-resizes a batch's files in Go, to float
// values as the serving graph resizes (imageio.ResizeFloat), and runs the
// good ones together on onnxruntime.
func (s *Serving) predictPixels(inputs []Input, lim Limits) ([]Prediction, error) {
	files := make([]LabelledFile, len(inputs))
	for i, in := range inputs {
		files[i].Input = in
	}
	size := s.pixels.Info.ImageSize
	pixels, errs := decodeAll(files, lim, func(img *image.RGBA) []float32 { return imageio.ResizeFloat(img, size, imageio.Squash) })
	preds := make([]Prediction, len(inputs))
	var images []float32
	var idx []int
	for i, in := range inputs {
		preds[i].Input, preds[i].Err = in, errs[i]
		if errs[i] == nil {
			images = append(images, pixels[i]...)
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return preds, nil
	}
	probs, err := s.pixels.onnx.PredictFloat(images, len(idx))
	if err != nil {
		return nil, fault.New(fault.ToolFailed, "predicting with %s: %v", s.pixels.Dir, err)
	}
	k := len(s.Classes)
	for j, i := range idx {
		preds[i].Probs = probs[j*k : (j+1)*k]
	}
	return preds, nil
}

func reencodePNG(in Input, lim Limits) ([]byte, error) {
	img, ferr := Decode(in, lim)
	if ferr != nil {
		return nil, ferr
	}
	return imageio.Encode(img, imageio.PNG, 0)
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
