package imageio

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"

	xdraw "golang.org/x/image/draw"
)

// Fit is how an image of any shape becomes a size×size square.
type Fit string

// Resize policies (prepare.resize).
const (
	// Squash scales the whole image to the square, changing its aspect
	// ratio. It is the default: it keeps every pixel of evidence (a crop can
	// cut the object off), it is what Keras' image_dataset_from_directory
	// and the model graph's own resize do, so training images look like the
	// images predict and serve feed in, and CNNs tolerate the mild
	// distortion of photos (4:3 → 1:1) well.
	Squash Fit = "squash"
	// CenterCrop scales the shorter side to size and cuts the middle square.
	CenterCrop Fit = "center-crop"
	// Pad scales the longer side to size and centres the image on PadGrey,
	// the colour Xception's [-1, 1] scaling maps to about 0.
	Pad Fit = "pad"
)

// PadGrey fills the borders that Pad adds.
const PadGrey = 128

// ParseFit checks a prepare.resize value.
func ParseFit(s string) (Fit, error) {
	switch f := Fit(s); f {
	case Squash, CenterCrop, Pad:
		return f, nil
	}
	return "", fmt.Errorf("%q is not a resize policy (squash | center-crop | pad)", s)
}

// Layout is the geometry of policy fit for a w×h image made size×size:
// the source rectangle src (image pixels, from (0,0)) is scaled onto dst
// (output pixels). Resize follows it, and so does laying a heatmap over the
// model's input back onto the whole image.
func Layout(w, h, size int, fit Fit) (src, dst image.Rectangle) {
	src, dst = image.Rect(0, 0, w, h), image.Rect(0, 0, size, size)
	switch fit {
	case CenterCrop:
		side := min(w, h)
		x0, y0 := (w-side)/2, (h-side)/2
		src = image.Rect(x0, y0, x0+side, y0+side)
	case Pad:
		dw, dh := size, size
		if w >= h {
			dh = max(1, (h*size+w/2)/w)
		} else {
			dw = max(1, (w*size+h/2)/h)
		}
		x0, y0 := (size-dw)/2, (size-dh)/2
		dst = image.Rect(x0, y0, x0+dw, y0+dh)
	}
	return src, dst
}

// Resize returns src as a size×size image under policy fit. It resamples
// with the antialiased bilinear filter (see resample.go), whose kernel
// widens when shrinking, so downscaled photos do not alias.
func Resize(src *image.RGBA, size int, fit Fit) *image.RGBA {
	dst := image.NewRGBA(image.Rect(0, 0, size, size))
	sr, dr := Layout(src.Rect.Dx(), src.Rect.Dy(), size, fit)
	sr = sr.Add(src.Rect.Min)
	if fit == Pad {
		for i := range dst.Pix {
			dst.Pix[i] = PadGrey
		}
		for i := 3; i < len(dst.Pix); i += 4 {
			dst.Pix[i] = 0xFF
		}
	}
	if sr.Dx() == dr.Dx() && sr.Dy() == dr.Dy() {
		xdraw.Copy(dst, dr.Min, src, sr, xdraw.Src, nil)
		return dst
	}
	scaleRGBA(dst, dr, src, sr)
	return dst
}

// ResizeFloat is Resize without the rounding to whole levels: the same
// geometry and filter, computed in float32 from unrounded weights, as RGB
// values (size×size×3, row-major). It is what the serving graph's
// tf.image.resize(method="bilinear", antialias=True) gives a model, so an
// engine fed by Go (onnxruntime) sees what TensorFlow's serving_default sees
// on the same decoded image, to float rounding.
func ResizeFloat(src *image.RGBA, size int, fit Fit) []float32 {
	dst := make([]float32, size*size*3)
	sr, dr := Layout(src.Rect.Dx(), src.Rect.Dy(), size, fit)
	sr = sr.Add(src.Rect.Min)
	if fit == Pad {
		for i := range dst {
			dst[i] = PadGrey
		}
	}
	scaleFloat(dst, size, dr, src, sr)
	return dst
}

// Encode writes img as format (JPEG at quality 1–100, or PNG). Both
// encoders are deterministic, which the byte-identical datasets rely on.
func Encode(img image.Image, format Format, quality int) ([]byte, error) {
	var buf bytes.Buffer
	switch format {
	case JPEG:
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
			return nil, err
		}
	case PNG:
		if err := png.Encode(&buf, img); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("cannot encode %s: choose jpeg or png", format.Name())
	}
	return buf.Bytes(), nil
}
