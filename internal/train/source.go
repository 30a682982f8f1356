package train

import (
	"context"
	"io"

	"github.com/xcept/xcept/internal/augment"
	"github.com/xcept/xcept/internal/loader"
	"github.com/xcept/xcept/internal/model"
)

// Data is a prepared dataset's splits, as the sources read them.
type Data struct {
	TrainShards []string
	ValShards   []string
	ImageSize   int
	Classes     int // labels must lie in [0, Classes)
	// ClassWeights[label] is each sample's weight (nil: all 1).
	ClassWeights []float32
}

// ImageSource trains a model signature (train_step or finetune_step) on
// decoded, augmented images from the loader.
type ImageSource struct {
	Model     *model.Model
	Signature string
	Data      Data
	Cfg       Config
	steps     int
}

// NewImageSource counts the training batches once.
func NewImageSource(m *model.Model, signature string, data Data, cfg Config) (*ImageSource, error) {
	n, err := loader.Count(data.TrainShards)
	if err != nil {
		return nil, err
	}
	return &ImageSource{Model: m, Signature: signature, Data: data, Cfg: cfg, steps: (n + cfg.BatchSize - 1) / cfg.BatchSize}, nil
}

func (s *ImageSource) Steps() int { return s.steps }
func (s *ImageSource) Close()     {}

func (s *ImageSource) options(shards []string, shuffle bool, epoch int, aug *augment.Params) loader.Options {
	return loader.Options{
		Shards: shards, ImageSize: s.Data.ImageSize, Classes: s.Data.Classes, BatchSize: s.Cfg.BatchSize,
		Shuffle: shuffle, ShuffleBuffer: s.Cfg.ShuffleBuffer, Seed: uint64(s.Cfg.Seed), Epoch: epoch,
		Augment: aug, Workers: s.Cfg.Workers,
	}
}

// augmentation is the configured augmentation, nil when it is off.
func augmentation(cfg Config) *augment.Params {
	if !cfg.Augment.Enabled() {
		return nil
	}
	a := cfg.Augment
	return &a
}

func (s *ImageSource) Epoch(ctx context.Context, epoch int) (Batches, error) {
	l, err := loader.Open(ctx, s.options(s.Data.TrainShards, true, epoch, augmentation(s.Cfg)))
	if err != nil {
		return nil, err
	}
	return &imageBatches{l: l, weights: s.Data.ClassWeights}, nil
}

func (s *ImageSource) Step(b *Batch, p model.StepParams) (model.StepResult, error) {
	return s.Model.Step(s.Signature, model.Batch{Images: b.Images, Labels: b.Labels, Weights: b.Weights}, p)
}

// Validate runs eval_step over the validation split, in order, unaugmented.
func (s *ImageSource) Validate(ctx context.Context) (float64, float64, error) {
	l, err := loader.Open(ctx, s.options(s.Data.ValShards, false, 0, nil))
	if err != nil {
		return 0, 0, err
	}
	defer l.Close()
	var sums Sums
	for {
		b, err := l.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, err
		}
		loss, probs, err := s.Model.Eval(model.Batch{Images: b.Images, Labels: b.Labels})
		if err != nil {
			return 0, 0, err
		}
		sums.add(loss, accuracy(probs, b.Labels), b.N())
		l.Recycle(b)
	}
	loss, acc := sums.mean()
	return loss, acc, nil
}

// accuracy is the fraction of rows of probs whose argmax is the label.
func accuracy(probs []float32, labels []int32) float32 {
	if len(labels) == 0 {
		return 0
	}
	k := len(probs) / len(labels)
	correct := 0
	for i, label := range labels {
		row := probs[i*k : (i+1)*k]
		best := 0
		for j := range row {
			if row[j] > row[best] {
				best = j
			}
		}
		if best == int(label) {
			correct++
		}
	}
	return float32(correct) / float32(len(labels))
}

// imageBatches adapts loader batches, adding class weights.
type imageBatches struct {
	l       *loader.Loader
	weights []float32
	prev    *loader.Batch
}

func (ib *imageBatches) Next() (*Batch, error) {
	if ib.prev != nil {
		ib.l.Recycle(ib.prev) // the previous step is done with it
		ib.prev = nil
	}
	b, err := ib.l.Next()
	if err != nil {
		return nil, err
	}
	ib.prev = b
	return &Batch{N: b.N(), Images: b.Images, Labels: b.Labels, Weights: sampleWeights(ib.weights, b.Labels)}, nil
}

func (ib *imageBatches) Close() { ib.l.Close() }

// sampleWeights maps labels to their class weights (nil when unweighted).
func sampleWeights(classWeights []float32, labels []int32) []float32 {
	if classWeights == nil {
		return nil
	}
	w := make([]float32, len(labels))
	for i, l := range labels {
		w[i] = classWeights[l]
	}
	return w
}
