package export

import (
	"fmt"

	"github.com/xcept/xcept/internal/contract"
)

// SignatureSpec is one entry point of an export: what to feed it and what
// it returns, so that a user can call it without reading the graph.
type SignatureSpec struct {
	Name    string       `json:"name"`
	Inputs  []TensorSpec `json:"inputs"`
	Outputs []TensorSpec `json:"outputs"`
}

// TensorSpec is one input or output.
type TensorSpec struct {
	Name         string        `json:"name"`
	DType        string        `json:"dtype"`
	Shape        []int64       `json:"shape"` // -1: any size (the batch)
	Quantization *Quantization `json:"quantization,omitempty"`
	Meaning      string        `json:"meaning,omitempty"`
}

// Quantization maps a quantized tensor's integers q to real values:
// real = Scale × (q − ZeroPoint).
type Quantization struct {
	Scale     float64 `json:"scale"`
	ZeroPoint int64   `json:"zero_point"`
}

// annotated fills in what each known tensor means. The model's contract
// (scripts/xcept_model.py) fixes the names: image_bytes, images,
// probabilities, classes.
func (s SignatureSpec) annotated(size int) SignatureSpec {
	for i := range s.Inputs {
		s.Inputs[i].Meaning = s.Inputs[i].inputMeaning(size)
	}
	for i := range s.Outputs {
		s.Outputs[i].Meaning = s.Outputs[i].outputMeaning()
	}
	return s
}

func (t TensorSpec) inputMeaning(size int) string {
	switch {
	case t.Name == contract.InImageBytes:
		return fmt.Sprintf("encoded images (JPEG, PNG, GIF, BMP, WebP) of any size, one per row; decoding, the squash resize to %d×%d "+
			"(bilinear, antialiased) and Xception's scaling to [-1, 1] happen inside; REST clients send {\"b64\": \"...\"}", size, size)
	case t.Name != contract.InImages:
		return ""
	case t.Quantization != nil:
		q := t.Quantization
		return fmt.Sprintf("RGB pixels, %d×%d, as they are (0..255): quantized with scale %.6g and zero point %d, which maps each byte to its "+
			"own pixel value; squash-resize to %d×%d yourself, the scaling to [-1, 1] is inside", size, size, q.Scale, q.ZeroPoint, size, size)
	}
	return fmt.Sprintf("RGB pixel values 0..255 (not scaled), %d×%d: squash-resize yourself; Xception's scaling to [-1, 1] happens inside", size, size)
}

func (t TensorSpec) outputMeaning() string {
	switch t.Name {
	case contract.OutProbabilities:
		if q := t.Quantization; q != nil {
			return fmt.Sprintf("class probabilities in labels.txt order, quantized: p = %.6g × (q − %d)", q.Scale, q.ZeroPoint)
		}
		return "class probabilities (softmax) in labels.txt order"
	case contract.OutClasses:
		return "the class names, in labels.txt order, repeated for every image"
	}
	return ""
}

// formatBytes prints a size for people.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
