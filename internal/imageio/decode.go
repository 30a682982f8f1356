package imageio

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"strings"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"
)

// Reasons an image cannot be used. They are the stable machine-readable
// codes of problems.json, so never rename one.
const (
	ReasonEmpty       = "empty-file"
	ReasonNotImage    = "not-an-image"
	ReasonUnsupported = "unsupported-format"
	ReasonTruncated   = "truncated"
	ReasonCorrupt     = "corrupt"
	ReasonTooLarge    = "too-large"
)

// Conversions name what Decode did to reach upright, opaque 8-bit RGB. They
// are recorded per file in manifest.json.
const (
	ConvGrayscale   = "grayscale"        // one channel copied to three
	ConvPalette     = "palette"          // palette indices expanded
	ConvCMYK        = "cmyk"             // CMYK or YCCK JPEG converted to RGB
	Conv16Bit       = "16-bit"           // 16 bits per channel rounded to 8
	ConvAlpha       = "alpha-over-white" // transparency composited over white
	ConvOrientation = "exif-orientation" // EXIF orientation 2–8 applied
	ConvFirstFrame  = "first-frame"      // animated image: only frame 1 kept
)

// Error is an image that cannot be used, with a problems.json reason code
// and a one-line detail for people.
type Error struct {
	Reason string
	Detail string
}

func (e *Error) Error() string { return e.Reason + ": " + e.Detail }

// Limits protect memory from hostile or accidental giant images.
type Limits struct {
	// MaxPixels rejects an image whose width×height exceeds it before any
	// pixel is decoded (a decompression bomb is small on disk). 0: no limit.
	MaxPixels int64
}

// Header is what the image says about itself, read without decoding pixels.
type Header struct {
	Format        Format
	Width, Height int // as stored, before EXIF orientation
}

// Pixels is the stored pixel count, the measure of decoding memory.
func (h Header) Pixels() int64 { return int64(h.Width) * int64(h.Height) }

// Info describes a decoded image.
type Info struct {
	Format        Format
	Width, Height int // upright, as people see it (EXIF orientation applied)
	Orientation   int // EXIF orientation 1–8 found in the file
	Frames        int // frames in the file; more than 1 means animated
	Conversions   []string
}

// Probe sniffs the format and reads the header, enforcing lim before any
// pixel is decoded.
func Probe(data []byte, lim Limits) (Header, error) {
	if len(data) == 0 {
		return Header{}, &Error{ReasonEmpty, "the file has no bytes"}
	}
	f, unsupported := Sniff(data)
	if f == Unknown {
		if unsupported != "" {
			return Header{}, &Error{ReasonUnsupported, unsupported + " is not supported; convert it to JPEG or PNG"}
		}
		return Header{}, &Error{ReasonNotImage, "content is not JPEG, PNG, GIF, BMP, WebP or TIFF"}
	}
	if f == WebP && animatedWebP(data) {
		return Header{}, &Error{ReasonUnsupported, "animated WebP is not supported; convert it to a still image or a GIF"}
	}
	cfg, err := decoders[f].config(bytes.NewReader(data))
	if err != nil {
		return Header{}, classify(f, err)
	}
	h := Header{Format: f, Width: cfg.Width, Height: cfg.Height}
	if h.Width <= 0 || h.Height <= 0 {
		return Header{}, &Error{ReasonCorrupt, fmt.Sprintf("%s header says %d×%d pixels", f.Name(), h.Width, h.Height)}
	}
	if lim.MaxPixels > 0 && h.Pixels() > lim.MaxPixels {
		return Header{}, &Error{ReasonTooLarge, fmt.Sprintf("%d×%d is %s pixels, over the limit of %s (prepare.max_pixels)",
			h.Width, h.Height, megapixels(h.Pixels()), megapixels(lim.MaxPixels))}
	}
	return h, nil
}

func megapixels(n int64) string { return fmt.Sprintf("%.1f M", float64(n)/1e6) }

// Decode fully decodes data into upright, opaque 8-bit RGB (an *image.RGBA
// whose alpha is 255 everywhere). Transparency is composited over white,
// because transparent regions of product shots, logos and icons are meant to
// be seen on a light page; black, what dropping alpha gives, would invent
// dark shapes. Every failure is an *Error with a problems.json reason.
func Decode(data []byte, lim Limits) (*image.RGBA, Info, error) {
	h, err := Probe(data, lim)
	if err != nil {
		return nil, Info{}, err
	}
	src, err := decoders[h.Format].decode(bytes.NewReader(data))
	if err != nil {
		return nil, Info{}, classify(h.Format, err)
	}
	info := Info{Format: h.Format, Orientation: Orientation(h.Format, data), Frames: 1}
	if h.Format == GIF {
		info.Frames = max(1, gifFrames(data))
	}
	var rgba *image.RGBA
	if webp, transparent, ok := fromWebP(h.Format, src); ok {
		rgba = webp
		if transparent {
			info.Conversions = append(info.Conversions, ConvAlpha)
		}
	} else {
		rgba, info.Conversions = toRGBA(src)
	}
	if info.Frames > 1 {
		info.Conversions = append(info.Conversions, ConvFirstFrame)
	}
	if info.Orientation != 1 {
		rgba = Orient(rgba, info.Orientation)
		info.Conversions = append(info.Conversions, ConvOrientation)
	}
	info.Width, info.Height = rgba.Rect.Dx(), rgba.Rect.Dy()
	return rgba, info, nil
}

type decoder struct {
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

// decoders are called directly rather than through image.Decode's registry,
// so that the format is the one Sniff decided and no other package's
// registration can change it.
var decoders = map[Format]decoder{
	JPEG: {jpeg.DecodeConfig, jpeg.Decode},
	PNG:  {png.DecodeConfig, png.Decode},
	GIF:  {gif.DecodeConfig, gif.Decode}, // gif.Decode returns the first frame
	BMP:  {bmp.DecodeConfig, bmp.Decode},
	WebP: {webp.DecodeConfig, webp.Decode},
	TIFF: {tiff.DecodeConfig, tiff.Decode},
}

// classify turns a decoder error into a reason: data that ends early is a
// truncated download, a valid but unsupported variant is unsupported, and
// anything else is corrupt.
func classify(f Format, err error) error {
	msg := err.Error()
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || strings.Contains(msg, "unexpected EOF") ||
		// What the decoders say when the pixel data stops early: PNG and
		// TIFF "not enough pixel data", JPEG "short Huffman data".
		strings.Contains(msg, "not enough pixel data") || strings.Contains(msg, "short Huffman data") {
		return &Error{ReasonTruncated, f.Name() + " data ends early (incomplete download or copy?)"}
	}
	var (
		jpegUnsup jpeg.UnsupportedError
		pngUnsup  png.UnsupportedError
		tiffUnsup tiff.UnsupportedError
	)
	if errors.As(err, &jpegUnsup) || errors.As(err, &pngUnsup) || errors.As(err, &tiffUnsup) ||
		errors.Is(err, bmp.ErrUnsupported) || strings.Contains(msg, "not implemented") {
		return &Error{ReasonUnsupported, f.Name() + " variant not supported (" + msg + "); convert it to JPEG or PNG"}
	}
	return &Error{ReasonCorrupt, f.Name() + " data is damaged (" + msg + ")"}
}

// toRGBA converts any decoded image to opaque 8-bit RGBA and names the
// conversions it made. image/draw has fast paths for the common sources
// (YCbCr, Gray, CMYK, RGBA, NRGBA); 16-bit sources go through its exact
// 16-bit path and are rounded down to 8 bits once.
func toRGBA(src image.Image) (*image.RGBA, []string) {
	b := src.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	var conv []string
	switch src.(type) {
	case *image.Gray:
		conv = append(conv, ConvGrayscale)
	case *image.Gray16:
		conv = append(conv, ConvGrayscale, Conv16Bit)
	case *image.CMYK:
		conv = append(conv, ConvCMYK)
	case *image.Paletted:
		conv = append(conv, ConvPalette)
	case *image.RGBA64, *image.NRGBA64:
		conv = append(conv, Conv16Bit)
	}
	if isOpaque(src) {
		draw.Draw(dst, dst.Rect, src, b.Min, draw.Src)
		return dst, conv
	}
	for i := range dst.Pix {
		dst.Pix[i] = 0xFF
	}
	draw.Draw(dst, dst.Rect, src, b.Min, draw.Over)
	return dst, append(conv, ConvAlpha)
}

// isOpaque reports whether every pixel is fully opaque; images that cannot
// tell are treated as transparent, which only costs a white fill.
func isOpaque(m image.Image) bool {
	if o, ok := m.(interface{ Opaque() bool }); ok {
		return o.Opaque()
	}
	return false
}

// animatedWebP reports the animation flag of an extended (VP8X) WebP, which
// x/image/webp cannot decode and would only call "invalid format".
func animatedWebP(data []byte) bool {
	return len(data) >= 21 && string(data[12:16]) == "VP8X" && data[20]&0x02 != 0
}

// fromWebP converts lossy WebP pixels (limited-range YUV); lossless WebP
// decodes to NRGBA and goes through toRGBA like any other image.
func fromWebP(f Format, src image.Image) (*image.RGBA, bool, bool) {
	if f != WebP {
		return nil, false, false
	}
	rgba, transparent := webpToRGBA(src)
	return rgba, transparent, rgba != nil
}
