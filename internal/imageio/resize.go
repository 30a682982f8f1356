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

// Resize returns src as a size×size image under policy fit. It resamples
// with Catmull-Rom, whose kernel widens when shrinking, so downscaled photos
// do not alias the way nearest or plain bilinear sampling does.
func Resize(src *image.RGBA, size int, fit Fit) *image.RGBA {
	dst := image.NewRGBA(image.Rect(0, 0, size, size))
	sr, dr := src.Rect, dst.Rect
	w, h := sr.Dx(), sr.Dy()
	switch fit {
	case CenterCrop:
		side := min(w, h)
		x0, y0 := sr.Min.X+(w-side)/2, sr.Min.Y+(h-side)/2
		sr = image.Rect(x0, y0, x0+side, y0+side)
	case Pad:
		for i := range dst.Pix {
			dst.Pix[i] = PadGrey
		}
		for i := 3; i < len(dst.Pix); i += 4 {
			dst.Pix[i] = 0xFF
		}
		dw, dh := size, size
		if w >= h {
			dh = max(1, (h*size+w/2)/w)
		} else {
			dw = max(1, (w*size+h/2)/h)
		}
		x0, y0 := (size-dw)/2, (size-dh)/2
		dr = image.Rect(x0, y0, x0+dw, y0+dh)
	}
	if sr.Dx() == dr.Dx() && sr.Dy() == dr.Dy() {
		xdraw.Copy(dst, dr.Min, src, sr, xdraw.Src, nil)
		return dst
	}
	scaleRGBA(dst, dr, src, sr)
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
