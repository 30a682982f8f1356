package train

import (
	"context"
	"io"

	"github.com/xcept/xcept/internal/augment"
	"github.com/xcept/xcept/internal/contract"
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
	// Part of Parts: a cluster worker decodes only its part of every
	// training batch (loader.Options.Part, the rows model.Group takes).
	Part, Parts int
	steps       int
	valCount    int // validation images, -1 until counted
	// The frozen phase's validation features, computed on the first
	// Validate (nil until then, or when they would not fit in memory).
	valFeatures []float32
	valLabels   []int32
}

// maxValFeatureBytes caps the memory the frozen phase spends on keeping the
// validation split's pooled features (2048 floats, 8 KiB, per image at
// Xception's width: 65,536 images).
const maxValFeatureBytes = 512 << 20

// NewImageSource counts the training batches once.
func NewImageSource(m *model.Model, signature string, data Data, cfg Config) (*ImageSource, error) {
	n, err := loader.Count(data.TrainShards)
	if err != nil {
		return nil, err
	}
	return &ImageSource{Model: m, Signature: signature, Data: data, Cfg: cfg, steps: (n + cfg.BatchSize - 1) / cfg.BatchSize, valCount: -1}, nil
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
	o := s.options(s.Data.TrainShards, true, epoch, augmentation(s.Cfg))
	o.Part, o.Parts = s.Part, s.Parts
	l, err := loader.Open(ctx, o)
	if err != nil {
		return nil, err
	}
	return &imageBatches{l: l, weights: s.Data.ClassWeights}, nil
}

func (s *ImageSource) Step(b *Batch, p model.StepParams) (model.StepResult, error) {
	return s.Model.Step(s.Signature, model.Batch{Images: b.Images, Labels: b.Labels, Weights: b.Weights}, p)
}

// Validate measures the model on the validation split, in order,
// unaugmented. In the frozen phase the base never changes, so the first
// call keeps the split's pooled features and every later epoch runs only
// the head on them (eval_head_step): Keras's recipe runs the whole base
// over the split every epoch for the same numbers.
func (s *ImageSource) Validate(ctx context.Context) (float64, float64, error) {
	if s.Signature != contract.SigTrainStep {
		return s.validateImages(ctx, nil)
	}
	if s.valLabels == nil {
		n, err := loader.Count(s.Data.ValShards)
		if err != nil {
			return 0, 0, err
		}
		if int64(n)*int64(s.Model.Info.FeatureDim)*4 > maxValFeatureBytes {
			return s.validateImages(ctx, nil)
		}
		features, labels := make([]float32, 0, n*s.Model.Info.FeatureDim), make([]int32, 0, n)
		keep := func(b *loader.Batch) error {
			f, err := s.Model.Features(b.Images, b.N())
			features, labels = append(features, f...), append(labels, b.Labels...)
			return err
		}
		if _, _, err := s.validateImages(ctx, keep); err != nil {
			return 0, 0, err
		}
		s.valFeatures, s.valLabels = features, labels
	}
	return validateFeatures(ctx, s.Model, s.valFeatures, s.valLabels, s.Cfg.BatchSize)
}

// validateImages runs eval_step over the validation split's images (a
// cluster worker over its share of the batches, see valBatches); with
// keep, every batch of the split goes to keep instead.
func (s *ImageSource) validateImages(ctx context.Context, keep func(*loader.Batch) error) (float64, float64, error) {
	o := s.options(s.Data.ValShards, false, 0, nil)
	var sums Sums
	if keep == nil && s.Model.Group != nil {
		if s.valCount < 0 {
			n, err := loader.Count(s.Data.ValShards)
			if err != nil {
				return 0, 0, err
			}
			s.valCount = n
		}
		from, to := valBatches(s.Model, s.valCount, s.Cfg.BatchSize)
		if from == to {
			return groupMean(s.Model, sums)
		}
		o.From, o.To = from, to
	}
	l, err := loader.Open(ctx, o)
	if err != nil {
		return 0, 0, err
	}
	defer l.Close()
	for {
		b, err := l.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, err
		}
		if keep != nil {
			if err := keep(b); err != nil {
				return 0, 0, err
			}
		} else {
			loss, probs, err := s.Model.Eval(model.Batch{Images: b.Images, Labels: b.Labels})
			if err != nil {
				return 0, 0, err
			}
			sums.add(loss, accuracy(probs, b.Labels), b.N())
		}
		l.Recycle(b)
	}
	if keep != nil {
		return 0, 0, nil
	}
	return groupMean(s.Model, sums)
}

// validateFeatures runs eval_head_step over a split's pooled features
// (len(labels) × FeatureDim) in batches of bs (a cluster worker over its
// share of the batches).
func validateFeatures(ctx context.Context, m *model.Model, features []float32, labels []int32, bs int) (float64, float64, error) {
	var sums Sums
	d := m.Info.FeatureDim
	from, to := valBatches(m, len(labels), bs)
	for start := from * bs; start < min(to*bs, len(labels)); start += bs {
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		end := min(start+bs, len(labels))
		loss, probs, err := m.EvalHead(features[start*d:end*d], labels[start:end])
		if err != nil {
			return 0, 0, err
		}
		sums.add(loss, accuracy(probs, labels[start:end]), end-start)
	}
	return groupMean(m, sums)
}

// valBatches is the batches [from, to) of a validation split of n images
// in batches of bs that this process evaluates: all of them alone; in a
// cluster its Shard of them (whole batches, so every batch's loss is the
// one a single process computes), the workers' sums added by groupMean.
func valBatches(m *model.Model, n, bs int) (from, to int) {
	batches := (n + bs - 1) / bs
	if m.Group == nil {
		return 0, batches
	}
	return m.Group.Shard(batches)
}

// groupMean is the mean loss and accuracy of sums added over the group
// (in task order, so every worker gets the same numbers); alone, of sums.
func groupMean(m *model.Model, sums Sums) (float64, float64, error) {
	if m.Group != nil {
		all, err := m.AllGather([]float64{sums.Loss, sums.Correct, float64(sums.Images)})
		if err != nil {
			return 0, 0, err
		}
		sums = Sums{}
		for _, v := range all {
			sums.Loss, sums.Correct, sums.Images = sums.Loss+v[0], sums.Correct+v[1], sums.Images+int(v[2])
		}
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
