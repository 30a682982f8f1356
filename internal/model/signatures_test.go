package model_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/testmodel"
)

// These tests run the signatures builder_version 2 added through the C API:
// eval_head_step in the trainer, serving_default (encoded images) and
// predict_images in the serving model, and a trainer built --init-from a
// checkpoint the Go side saved.

func openTinyServing(t *testing.T) *model.Model {
	t.Helper()
	m, err := model.OpenServing(testmodel.Tiny(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// The cached-feature path validates exactly as the image path does.
func TestEvalHeadMatchesEval(t *testing.T) {
	m := openTiny(t)
	b := fixedBatch(m, 6, 4)
	feats, err := m.Features(b.Images, b.N())
	if err != nil {
		t.Fatal(err)
	}
	wantLoss, wantProbs, err := m.Eval(b)
	if err != nil {
		t.Fatal(err)
	}
	loss, probs, err := m.EvalHead(feats, b.Labels)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff([]float32{loss}, []float32{wantLoss}); d > 1e-5 {
		t.Errorf("eval_head_step loss %v, eval_step %v", loss, wantLoss)
	}
	if len(probs) != len(wantProbs) {
		t.Fatalf("eval_head_step gave %d probabilities, eval_step %d", len(probs), len(wantProbs))
	}
	if d := maxAbsDiff(probs, wantProbs); d > 1e-5 {
		t.Errorf("eval_head_step probabilities differ from eval_step's by %g", d)
	}
	if _, _, err := m.EvalHead(feats[:100], b.Labels); err == nil {
		t.Error("EvalHead accepted a short feature buffer")
	}
}

// rgba wraps image i of the batch (n×s×s×3 bytes) as an opaque image.
func rgba(images []uint8, i, s int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, s, s))
	px := images[i*s*s*3 : (i+1)*s*s*3]
	for p := 0; p < s*s; p++ {
		copy(img.Pix[4*p:4*p+3], px[3*p:3*p+3])
		img.Pix[4*p+3] = 0xFF
	}
	return img
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// serveBytes runs serving_default on encoded images.
func serveBytes(m *model.Model, images [][]byte) ([]float32, [][]byte, error) {
	in, err := graph.NewStrings([]int64{int64(len(images))}, images)
	if err != nil {
		return nil, nil, err
	}
	defer in.Close()
	out, err := m.Session.Run("serving_default", map[string]*graph.Tensor{"image_bytes": in}, "probabilities", "classes")
	if err != nil {
		return nil, nil, err
	}
	defer out[0].Close()
	defer out[1].Close()
	probs, err := out[0].Float32s()
	if err != nil {
		return nil, nil, err
	}
	classes, err := out[1].Strings()
	return probs, classes, err
}

func predictImages(m *model.Model, pixels []float32, n int) ([]float32, error) {
	s := int64(m.Info.ImageSize)
	in, err := graph.NewTensor([]int64{int64(n), s, s, 3}, pixels)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	out, err := m.Session.Run("predict_images", map[string]*graph.Tensor{"images": in}, "probabilities")
	if err != nil {
		return nil, err
	}
	defer out[0].Close()
	return out[0].Float32s()
}

// PNGs at the model's size are lossless and need no resize, so
// serving_default, predict_images and predict all see the same pixels.
func TestServingSignaturesAgree(t *testing.T) {
	m := openTinyServing(t)
	b := fixedBatch(m, 3, 5)
	n, s := b.N(), m.Info.ImageSize
	want, err := m.Predict(b.Images, n)
	if err != nil {
		t.Fatal(err)
	}
	encoded := make([][]byte, n)
	for i := range encoded {
		encoded[i] = encodePNG(t, rgba(b.Images, i, s))
	}
	probs, classes, err := serveBytes(m, encoded)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(probs, want); len(probs) != len(want) || d > 1e-5 {
		t.Errorf("serving_default differs from predict by %g (%d vs %d values)", d, len(probs), len(want))
	}
	nc := m.Info.NumClasses
	if len(classes) != n*nc {
		t.Fatalf("classes has %d names, want %d rows of %d", len(classes), n, nc)
	}
	for i, c := range classes {
		if string(c) != m.Info.Classes[i%nc] {
			t.Errorf("classes[%d][%d] = %q, want %q", i/nc, i%nc, c, m.Info.Classes[i%nc])
		}
	}
	pixels := make([]float32, len(b.Images))
	for i, v := range b.Images {
		pixels[i] = float32(v)
	}
	got, err := predictImages(m, pixels, n)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(got, want); d > 1e-5 {
		t.Errorf("predict_images differs from predict by %g", d)
	}
}

// A half-transparent PNG means what the training data meant: prepare's
// decoder (imageio) composites alpha over white, and so does the graph,
// rounding as imageio's WebP path does; image/draw (imageio's PNG path)
// rounds its 16-bit arithmetic differently, by at most one level.
func TestServingDefaultCompositesAlphaLikeImageio(t *testing.T) {
	m := openTinyServing(t)
	s := m.Info.ImageSize
	b := fixedBatch(m, 1, 6)
	src := image.NewNRGBA(image.Rect(0, 0, s, s))
	composite := make([]uint8, 0, s*s*3)
	for y := 0; y < s; y++ {
		for x := 0; x < s; x++ {
			p, a := 3*(y*s+x), 255*x/(s-1) // transparent left, opaque right
			src.SetNRGBA(x, y, color.NRGBA{b.Images[p], b.Images[p+1], b.Images[p+2], uint8(a)})
			for _, c := range b.Images[p : p+3] {
				composite = append(composite, uint8((int(c)*a+255*(255-a)+127)/255))
			}
		}
	}
	data := encodePNG(t, src)
	decoded, info, err := imageio.Decode(data, imageio.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(info.Conversions, imageio.ConvAlpha) {
		t.Fatalf("imageio did not composite: %v", info.Conversions)
	}
	for p := 0; p < s*s*3; p++ {
		if d := int(decoded.Pix[4*(p/3)+p%3]) - int(composite[p]); d < -1 || d > 1 {
			t.Fatalf("pixel %d channel %d: imageio gives %d, the graph's rounding %d", p/3, p%3, decoded.Pix[4*(p/3)+p%3], composite[p])
		}
	}
	want, err := m.Predict(composite, 1)
	if err != nil {
		t.Fatal(err)
	}
	dropped, err := m.Predict(b.Images, 1) // the colours under the alpha, as channels=3 would decode them
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := serveBytes(m, [][]byte{data})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(got, want); d > 1e-5 {
		t.Errorf("serving_default differs from predict on the composited pixels by %g", d)
	}
	if d := maxAbsDiff(dropped, want); d < 1e-3 {
		t.Fatalf("dropping alpha changes the prediction by only %g: the test would prove nothing", d)
	}
}

func TestServingDefaultRefusesUndecodableBytes(t *testing.T) {
	m := openTinyServing(t)
	good := encodePNG(t, rgba(fixedBatch(m, 1, 7).Images, 0, m.Info.ImageSize))
	for _, bad := range [][]byte{[]byte("not an image"), {}, good[:60]} {
		_, _, err := serveBytes(m, [][]byte{good, bad})
		var ge *graph.Error
		if !errors.As(err, &ge) || ge.Code != graph.CodeInvalidArgument {
			t.Errorf("%d bytes of garbage: err = %v, want InvalidArgument", len(bad), err)
		}
	}
	if probs, _, err := serveBytes(m, [][]byte{good}); err != nil || len(probs) != m.Info.NumClasses {
		t.Errorf("after refusing garbage the session must still serve: %v, %d values", err, len(probs))
	}
}

// xcept finetune at another unfreeze boundary (a trainer rebuilt with
// model.Spec.InitFrom from the run's checkpoint) is checked by the
// builder's tests, which build that model once: the rebuilt trainer and
// serving model predict what the checkpoint did, every model value is the
// checkpoint's, the optimizers start afresh, and finetune_step trains the
// new boundary's block and not the one before it
// (scripts/test_build_model.py: test_init_from_starts_from_the_checkpoints_model,
// test_init_from_finetunes_the_new_boundary). That InitFrom reaches the
// builder and that it reads a checkpoint the C API saved is
// TestBuildInitFromErrors's "other classes" case.

func TestBuildInitFromErrors(t *testing.T) {
	dir := testmodel.Tiny(t)
	m, err := model.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	prefix := filepath.Join(tmp, "ckpt")
	err = m.Session.Save(prefix)
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(*model.Spec)
		want []string
	}{
		{"missing", func(s *model.Spec) { s.InitFrom = prefix + "-gone" }, []string{prefix + "-gone", "ckpt-gone.index not found"}},
		{"other classes", func(s *model.Spec) { s.InitFrom, s.Classes = prefix, []string{"a", "b"} },
			[]string{prefix, "has 3 classes and 32 dense units", "this one has 2 classes"}},
	}
	for _, c := range cases {
		spec := testmodel.TinySpec()
		c.edit(&spec)
		out := filepath.Join(tmp, strings.ReplaceAll(c.name, " ", "-"))
		_, err := model.Build(context.Background(), out, spec, false, nil)
		if cli.KindOf(err) != cli.KindUsage || err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %v (kind %v), want one line of kind %v", c.name, err, cli.KindOf(err), cli.KindUsage)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not mention %q", c.name, err, w)
			}
		}
		if _, statErr := os.Stat(out); statErr == nil {
			t.Errorf("%s: a failed build left %s", c.name, out)
		}
	}
}

// Every name the Go side takes from contract is a signature, input or
// output of the models the builder writes (scripts/xcept_model.py).
func TestContractNamesTheBuiltModel(t *testing.T) {
	dir := testmodel.Tiny(t)
	for _, part := range []struct {
		sub  string
		want map[string][2][]string // signature → inputs, outputs
	}{
		{model.TrainerDir, map[string][2][]string{
			contract.SigTrainStep:     {{contract.InImages, contract.InLabels, contract.InSampleWeight, contract.InLearningRate, contract.InLabelSmoothing, contract.InSeed}, {contract.OutLoss, contract.OutAccuracy}},
			contract.SigFinetuneStep:  {{contract.InImages, contract.InLabels}, {contract.OutLoss, contract.OutAccuracy}},
			contract.SigTrainHeadStep: {{contract.InFeatures, contract.InLabels}, {contract.OutLoss, contract.OutAccuracy}},
			contract.SigEvalStep:      {{contract.InImages, contract.InLabels}, {contract.OutLoss, contract.OutProbabilities}},
			contract.SigEvalHeadStep:  {{contract.InFeatures, contract.InLabels}, {contract.OutLoss, contract.OutProbabilities}},
			contract.SigPredict:       {{contract.InImages}, {contract.OutProbabilities}},
			contract.SigFeatures:      {{contract.InImages}, {contract.OutFeatures}},
			contract.SigExplain:       {{contract.InImages, contract.InClassIndex}, {contract.OutHeatmap, contract.OutProbabilities, contract.OutClassIndex}},
		}},
		{model.ServingDir, map[string][2][]string{
			contract.SigServing: {{contract.InImageBytes}, {contract.OutProbabilities, contract.OutClasses}},
			contract.SigImages:  {{contract.InImages}, {contract.OutProbabilities}},
			contract.SigPredict: {{contract.InImages}, {contract.OutProbabilities}},
		}},
	} {
		s, err := graph.LoadSavedModel(filepath.Join(dir, part.sub), opts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for name, io := range part.want {
			sig, ok := s.MetaGraph.Signatures[name]
			if !ok {
				t.Errorf("%s: no signature %s", part.sub, name)
				continue
			}
			for _, in := range io[0] {
				if _, ok := sig.Inputs[in]; !ok {
					t.Errorf("%s %s: no input %s", part.sub, name, in)
				}
			}
			for _, out := range io[1] {
				if _, ok := sig.Outputs[out]; !ok {
					t.Errorf("%s %s: no output %s", part.sub, name, out)
				}
			}
		}
	}
	if labels, err := contract.ReadLabels(filepath.Join(dir, model.ServingDir, contract.LabelsAsset)); err != nil || !slices.Equal(labels, testmodel.TinySpec().Classes) {
		t.Errorf("%s: %q, %v; want %q", contract.LabelsAsset, labels, err, testmodel.TinySpec().Classes)
	}
}
