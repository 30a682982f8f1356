package serve

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/ort"
	"github.com/xcept/xcept/internal/trust"
	"github.com/xcept/xcept/internal/versions"
)

// ONNXConverter returns the cached ONNX conversion of the serving
// SavedModel in a version folder, converting it first when there is none.
type ONNXConverter func(ctx context.Context, dir string) (string, error)

// ONNXLoader loads version folders on onnxruntime: an ONNX export's
// NAME.onnx (with its labels.txt) as it is, a SavedModel export through
// convert (its cached conversion; trust.Check first unless allowUntrusted,
// since converting loads it). The model answers the serving SavedModel's
// signatures: serving_default on encoded images, decoded upright and
// squash-resized in Go (the model has no decoder), predict_images on float
// pixel values 0..255 and predict on uint8 ones. Pair it with Config.Complete = versions.CompleteAny.
func ONNXLoader(ctx context.Context, opts ort.Options, convert ONNXConverter, allowUntrusted bool) Loader {
	return func(dir string) (Model, error) {
		path, labelsFile := versions.ONNXModel(dir), filepath.Join(dir, versions.ONNXLabels)
		if _, ok := versions.Complete(dir); ok {
			if !allowUntrusted {
				if err := trust.Check(dir); err != nil {
					return nil, err
				}
			}
			var err error
			if path, err = convert(ctx, dir); err != nil {
				return nil, err
			}
			labelsFile = filepath.Join(dir, contract.LabelsAsset)
		} else if path == "" {
			return nil, fmt.Errorf("%s: neither a SavedModel nor one NAME.onnx", dir)
		}
		labels, err := readLabels(labelsFile)
		if err != nil {
			return nil, err
		}
		s, err := ort.Open(path, opts)
		if err != nil {
			return nil, err
		}
		if labels != nil && len(labels) != s.Classes {
			s.Close()
			return nil, invalidf("%s names %d classes, but %s gives %d probabilities", labelsFile, len(labels), path, s.Classes)
		}
		return newONNXModel(s, labels), nil
	}
}

// onnxModel is one ONNX version on onnxruntime.
type onnxModel struct {
	s      *ort.Session
	labels []string
	sigs   map[string]*graph.Signature
}

func newONNXModel(s *ort.Session, labels []string) *onnxModel {
	k, size := int64(s.Classes), int64(s.Size)
	probs := graph.TensorInfo{Name: s.Output, DType: graph.Float, Shape: []int64{-1, k}}
	m := &onnxModel{s: s, labels: labels, sigs: map[string]*graph.Signature{
		contract.SigImages: {
			Key: contract.SigImages, Method: "tensorflow/serving/predict",
			Inputs:  map[string]graph.TensorInfo{contract.InImages: {Name: s.Input, DType: graph.Float, Shape: []int64{-1, size, size, 3}}},
			Outputs: map[string]graph.TensorInfo{contract.OutProbabilities: probs},
		},
		contract.SigPredict: {
			Key: contract.SigPredict, Method: "tensorflow/serving/predict",
			Inputs:  map[string]graph.TensorInfo{contract.InImages: {Name: s.Input, DType: graph.Uint8, Shape: []int64{-1, size, size, 3}}},
			Outputs: map[string]graph.TensorInfo{contract.OutProbabilities: probs},
		},
		contract.SigServing: {
			Key: contract.SigServing, Method: "tensorflow/serving/predict",
			Inputs:  map[string]graph.TensorInfo{contract.InImageBytes: {Name: contract.InImageBytes, DType: graph.String, Shape: []int64{-1}}},
			Outputs: map[string]graph.TensorInfo{contract.OutProbabilities: probs},
		},
	}}
	if labels != nil {
		m.sigs[contract.SigServing].Outputs[contract.OutClasses] = graph.TensorInfo{Name: contract.OutClasses, DType: graph.String, Shape: []int64{-1, k}}
	}
	return m
}

func (m *onnxModel) Signatures() map[string]*graph.Signature { return m.sigs }
func (m *onnxModel) Labels() []string                        { return m.labels }
func (m *onnxModel) Close() error                            { return m.s.Close() }

func (m *onnxModel) Run(signature string, inputs map[string]*Column) (map[string]*Column, error) {
	var pixels []float32
	var n int
	switch signature {
	case contract.SigImages:
		c, ok := inputs[contract.InImages]
		if !ok || c.DType != graph.Float {
			return nil, invalidf("%s takes one float32 input %q", signature, contract.InImages)
		}
		pixels, n = c.Data.([]float32), c.Rows()
	case contract.SigPredict:
		c, ok := inputs[contract.InImages]
		if !ok || c.DType != graph.Uint8 {
			return nil, invalidf("%s takes one uint8 input %q", signature, contract.InImages)
		}
		u := c.Data.([]uint8)
		pixels, n = make([]float32, len(u)), c.Rows()
		for i, v := range u {
			pixels[i] = float32(v)
		}
	case contract.SigServing:
		c, ok := inputs[contract.InImageBytes]
		if !ok || c.DType != graph.String {
			return nil, invalidf("%s takes one string input %q", signature, contract.InImageBytes)
		}
		var err error
		if pixels, err = m.decode(c.Data.([][]byte)); err != nil {
			return nil, err
		}
		n = c.Rows()
	default:
		return nil, notFoundf("signature %q: this model has %s, %s and %s", signature, contract.SigServing, contract.SigImages, contract.SigPredict)
	}
	probs, err := m.s.PredictFloat(pixels, n)
	if err != nil {
		return nil, err
	}
	k := int64(m.s.Classes)
	out := map[string]*Column{contract.OutProbabilities: {DType: graph.Float, Shape: []int64{int64(n), k}, Data: probs}}
	if _, ok := m.sigs[signature].Outputs[contract.OutClasses]; ok {
		names := make([][]byte, 0, n*len(m.labels))
		for range n {
			for _, l := range m.labels {
				names = append(names, []byte(l))
			}
		}
		out[contract.OutClasses] = &Column{DType: graph.String, Shape: []int64{int64(n), k}, Data: names}
	}
	return out, nil
}

// decode turns what serving_default is fed (imageio.ServingFeed's bytes:
// JPEG or PNG, upright) into the model's pixels, on all cores: decoded as
// prepare decodes and squash-resized to float values as the serving graph
// resizes (imageio.ResizeFloat, not rounded to whole levels).
func (m *onnxModel) decode(files [][]byte) ([]float32, error) {
	size := m.s.Size
	px := size * size * 3
	pixels := make([]float32, len(files)*px)
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, data := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			img, _, err := imageio.Decode(data, imageio.Limits{})
			if err != nil {
				errs[i] = invalidf("image %d: %v", i, err)
				return
			}
			copy(pixels[i*px:(i+1)*px], imageio.ResizeFloat(img, size, imageio.Squash))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return pixels, nil
}
