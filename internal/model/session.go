package model

import (
	"fmt"
	"path/filepath"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/graph"
)

// Model is a loaded model folder: its description and one session on the
// trainer or the serving SavedModel.
type Model struct {
	Dir     string
	Info    *Info
	Session *graph.Session
	// Group, when set, makes the training steps data-parallel (collective.go).
	Group *Group
}

// Open loads the trainer SavedModel of the model folder dir.
func Open(dir string, opts graph.SessionOptions) (*Model, error) {
	return open(dir, TrainerDir, opts)
}

// OpenServing loads the inference-only SavedModel of the model folder dir.
func OpenServing(dir string, opts graph.SessionOptions) (*Model, error) {
	return open(dir, ServingDir, opts)
}

func open(dir, sub string, opts graph.SessionOptions) (*Model, error) {
	info, err := ReadInfo(dir)
	if err != nil {
		return nil, err
	}
	s, err := graph.LoadSavedModel(filepath.Join(dir, sub), opts)
	if err != nil {
		return nil, fault.New(fault.ToolFailed, "loading %s: %v", filepath.Join(dir, sub), err)
	}
	return &Model{Dir: dir, Info: info, Session: s}, nil
}

// Close closes the session.
func (m *Model) Close() error { return m.Session.Close() }

// Batch is a batch of images at the model's size, uint8 RGB, NHWC.
type Batch struct {
	Images  []uint8
	Labels  []int32   // one per image (training and evaluation)
	Weights []float32 // per-sample weights; nil means all 1
}

// N is the number of images in the batch.
func (b Batch) N() int { return len(b.Labels) }

// StepParams are the per-step inputs of the training signatures.
type StepParams struct {
	LearningRate   float32
	LabelSmoothing float32
	Seed           [2]int64 // drives dropout; derive it from the run's RNG
}

// StepResult is what a training step reports.
type StepResult struct {
	Loss, Accuracy float32
}

// imagesTensor checks len(images) against n images of the model's size.
func (m *Model) imagesTensor(images []uint8, n int) (*graph.Tensor, error) {
	s := int64(m.Info.ImageSize)
	if int64(len(images)) != int64(n)*s*s*3 {
		return nil, fmt.Errorf("%d bytes of images is not %d images of %d×%d×3", len(images), n, s, s)
	}
	return graph.NewTensor([]int64{int64(n), s, s, 3}, images)
}

// feeds builds tensors and closes them all when done is called.
type feeds struct {
	m   map[string]*graph.Tensor
	err error
}

func (f *feeds) add(key string, t *graph.Tensor, err error) {
	if f.m == nil {
		f.m = map[string]*graph.Tensor{}
	}
	if err != nil && f.err == nil {
		f.err = fmt.Errorf("%s: %w", key, err)
	}
	if t != nil {
		f.m[key] = t
	}
}

func (f *feeds) close() {
	for _, t := range f.m {
		t.Close()
	}
}

// Step runs one training signature (train_step or finetune_step) on a batch.
func (m *Model) Step(signature string, b Batch, p StepParams) (StepResult, error) {
	if m.Group != nil {
		return m.groupStep(signature, b.Images, nil, b, p)
	}
	var f feeds
	defer f.close()
	t, err := m.imagesTensor(b.Images, b.N())
	f.add(contract.InImages, t, err)
	return m.step(signature, &f, b, p)
}

// HeadStep runs train_head_step on cached pooled features (FeatureDim per image).
func (m *Model) HeadStep(features []float32, b Batch, p StepParams) (StepResult, error) {
	if m.Group != nil {
		return m.groupStep(contract.SigTrainHeadStep, nil, features, b, p)
	}
	var f feeds
	defer f.close()
	d := m.Info.FeatureDim
	if len(features) != b.N()*d {
		return StepResult{}, fmt.Errorf("%d features is not %d images of %d", len(features), b.N(), d)
	}
	t, err := graph.NewTensor([]int64{int64(b.N()), int64(d)}, features)
	f.add(contract.InFeatures, t, err)
	return m.step(contract.SigTrainHeadStep, &f, b, p)
}

func (m *Model) step(signature string, f *feeds, b Batch, p StepParams) (StepResult, error) {
	n := b.N()
	w := b.Weights
	if w == nil {
		w = make([]float32, n)
		for i := range w {
			w[i] = 1
		}
	}
	t, err := graph.NewTensor([]int64{int64(n)}, b.Labels)
	f.add(contract.InLabels, t, err)
	t, err = graph.NewTensor([]int64{int64(len(w))}, w)
	f.add(contract.InSampleWeight, t, err)
	t, err = graph.NewScalar(p.LearningRate)
	f.add(contract.InLearningRate, t, err)
	t, err = graph.NewScalar(p.LabelSmoothing)
	f.add(contract.InLabelSmoothing, t, err)
	t, err = graph.NewTensor([]int64{2}, p.Seed[:])
	f.add(contract.InSeed, t, err)
	if f.err != nil {
		return StepResult{}, f.err
	}
	out, err := m.Session.Run(signature, f.m, contract.OutLoss, contract.OutAccuracy)
	if err != nil {
		return StepResult{}, err
	}
	defer out[0].Close()
	defer out[1].Close()
	loss, err := out[0].Float32()
	if err != nil {
		return StepResult{}, err
	}
	acc, err := out[1].Float32()
	return StepResult{Loss: loss, Accuracy: acc}, err
}

// Eval runs eval_step: the mean loss and the probabilities (n × classes).
func (m *Model) Eval(b Batch) (float32, []float32, error) {
	var f feeds
	defer f.close()
	t, err := m.imagesTensor(b.Images, b.N())
	f.add(contract.InImages, t, err)
	t, err = graph.NewTensor([]int64{int64(b.N())}, b.Labels)
	f.add(contract.InLabels, t, err)
	if f.err != nil {
		return 0, nil, f.err
	}
	return m.lossAndProbabilities(contract.SigEvalStep, f.m)
}

func (m *Model) lossAndProbabilities(signature string, feeds map[string]*graph.Tensor) (float32, []float32, error) {
	out, err := m.Session.Run(signature, feeds, contract.OutLoss, contract.OutProbabilities)
	if err != nil {
		return 0, nil, err
	}
	defer out[0].Close()
	defer out[1].Close()
	loss, err := out[0].Float32()
	if err != nil {
		return 0, nil, err
	}
	probs, err := out[1].Float32s()
	return loss, probs, err
}

// Predict returns the probabilities (n × classes) of n images. It works on
// both the trainer (signature predict) and the serving model.
func (m *Model) Predict(images []uint8, n int) ([]float32, error) {
	return m.imagesToFloats(contract.SigPredict, contract.OutProbabilities, images, n)
}

// Features returns the pooled base features (n × FeatureDim) of n images.
func (m *Model) Features(images []uint8, n int) ([]float32, error) {
	return m.imagesToFloats(contract.SigFeatures, contract.OutFeatures, images, n)
}

func (m *Model) imagesToFloats(signature, output string, images []uint8, n int) ([]float32, error) {
	in, err := m.imagesTensor(images, n)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	out, err := m.Session.Run(signature, map[string]*graph.Tensor{contract.InImages: in}, output)
	if err != nil {
		return nil, err
	}
	defer out[0].Close()
	return out[0].Float32s()
}

// EvalHead runs eval_head_step on cached pooled features: the mean loss and
// the probabilities (n × classes), without running the base.
func (m *Model) EvalHead(features []float32, labels []int32) (float32, []float32, error) {
	var f feeds
	defer f.close()
	n, d := len(labels), m.Info.FeatureDim
	if len(features) != n*d {
		return 0, nil, fmt.Errorf("%d features is not %d images of %d", len(features), n, d)
	}
	t, err := graph.NewTensor([]int64{int64(n), int64(d)}, features)
	f.add(contract.InFeatures, t, err)
	t, err = graph.NewTensor([]int64{int64(n)}, labels)
	f.add(contract.InLabels, t, err)
	if f.err != nil {
		return 0, nil, f.err
	}
	return m.lossAndProbabilities(contract.SigEvalHeadStep, f.m)
}

// HeadLogits runs eval_head_step on cached pooled features and returns the
// uncalibrated logits (n × classes).
func (m *Model) HeadLogits(features []float32, labels []int32) ([]float32, error) {
	var f feeds
	defer f.close()
	n, d := len(labels), m.Info.FeatureDim
	if len(features) != n*d {
		return nil, fmt.Errorf("%d features is not %d images of %d", len(features), n, d)
	}
	t, err := graph.NewTensor([]int64{int64(n), int64(d)}, features)
	f.add(contract.InFeatures, t, err)
	t, err = graph.NewTensor([]int64{int64(n)}, labels)
	f.add(contract.InLabels, t, err)
	return m.logits(contract.SigEvalHeadStep, &f)
}

// ImageLogits runs eval_step on a batch of images and returns the
// uncalibrated logits (n × classes).
func (m *Model) ImageLogits(b Batch) ([]float32, error) {
	var f feeds
	defer f.close()
	t, err := m.imagesTensor(b.Images, b.N())
	f.add(contract.InImages, t, err)
	t, err = graph.NewTensor([]int64{int64(b.N())}, b.Labels)
	f.add(contract.InLabels, t, err)
	return m.logits(contract.SigEvalStep, &f)
}

func (m *Model) logits(signature string, f *feeds) ([]float32, error) {
	if f.err != nil {
		return nil, f.err
	}
	out, err := m.Session.Run(signature, f.m, contract.OutLogits)
	if err != nil {
		return nil, err
	}
	defer out[0].Close()
	return out[0].Float32s()
}

// SetTemperature sets the temperature the trainer's predict and, through
// the checkpoint, the serving model divide logits by.
func (m *Model) SetTemperature(t float64) error {
	in, err := graph.NewScalar(float32(t))
	if err != nil {
		return err
	}
	return m.assign(contract.SigSetTemperature, contract.InTemperature, contract.OutTemperature, in)
}

// assign runs a setter signature: one input, closed here, and one output
// (the variable's new value), not needed.
func (m *Model) assign(signature, input, output string, value *graph.Tensor) error {
	defer value.Close()
	out, err := m.Session.Run(signature, map[string]*graph.Tensor{input: value}, output)
	if err != nil {
		return err
	}
	out[0].Close()
	return nil
}

// SetFeatureBlocks makes the head read the pooled features of blocks only
// (a subset of the model's feature blocks); the choice travels, like the
// temperature, through the checkpoint into the serving model.
func (m *Model) SetFeatureBlocks(blocks []string) error {
	mask, err := m.Info.FeatureMask(blocks)
	if err != nil {
		return err
	}
	in, err := graph.NewTensor([]int64{int64(len(mask))}, mask)
	if err != nil {
		return err
	}
	return m.assign(contract.SigSetFeatureMask, contract.InFeatureMask, contract.OutFeatureMask, in)
}

// Reset puts every variable (weights, optimizer slots, temperature, feature
// mask) back to the values the model was built with.
func (m *Model) Reset() error {
	return m.Session.Restore(filepath.Join(m.Session.Dir, contract.VariablesPrefix))
}
