package serve

import (
	"bytes"
	"image"
	"strings"
	"testing"

	"golang.org/x/image/tiff"

	"github.com/xcept/xcept/internal/imageio"
)

// withOrientation inserts an EXIF APP1 segment holding orientation o right
// after a JPEG's SOI marker.
func withOrientation(jpg []byte, o byte) []byte {
	tiffHeader := []byte{'I', 'I', 42, 0, 8, 0, 0, 0, // little-endian TIFF, IFD at 8
		1, 0, // one entry
		0x12, 0x01, 3, 0, 1, 0, 0, 0, o, 0, 0, 0, // Orientation, SHORT, count 1, value o
		0, 0, 0, 0} // no next IFD
	payload := append([]byte("Exif\x00\x00"), tiffHeader...)
	n := len(payload) + 2
	seg := append([]byte{0xFF, 0xE1, byte(n >> 8), byte(n)}, payload...)
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

func tiffBytes(t *testing.T, img image.Image) []byte {
	var buf bytes.Buffer
	if err := tiff.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FeedImage passes JPEG and PNG through, and sends what TensorFlow would
// read otherwise than prepare as the upright pixels in a PNG.
func TestFeedImage(t *testing.T) {
	img := testImage(40, 30, 1)
	jpg, pngData := jpegBytes(t, img), pngBytes(t, img)
	tests := []struct {
		name     string
		data     []byte
		same     bool   // fed as is
		w, h     int    // size of the PNG fed otherwise
		errorHas string // when refused
	}{
		{"JPEG", jpg, true, 0, 0, ""},
		{"PNG", pngData, true, 0, 0, ""},
		{"JPEG with EXIF orientation 1", withOrientation(jpg, 1), true, 0, 0, ""},
		{"JPEG rotated by EXIF orientation 6", withOrientation(jpg, 6), false, 30, 40, ""},
		{"GIF", gifBytes(t, img), false, 40, 30, ""},
		{"BMP", bmpBytes(t, img), false, 40, 30, ""},
		{"TIFF", tiffBytes(t, img), false, 40, 30, ""},
		{"truncated JPEG", jpg[:len(jpg)/2], false, 0, 0, "truncated"},
		{"not an image", []byte("hello, world"), false, 0, 0, "not-an-image: the bytes are not a JPEG, PNG, GIF, BMP, WebP or TIFF image"},
		{"empty", nil, false, 0, 0, "empty-file"},
		{"over the pixel limit", pngBytes(t, testImage(101, 100, 2)), false, 0, 0,
			"too-large: 101×100 is 10100 pixels, over the server's limit of 10000 (serve.max_pixels)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			feed, err := FeedImage(tt.data, Limits{MaxPixels: 10_000})
			if tt.errorHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errorHas) {
					t.Fatalf("err = %v, want %q", err, tt.errorHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.same {
				if !bytes.Equal(feed, tt.data) {
					t.Error("not fed as is")
				}
				return
			}
			got, info, err := imageio.Decode(feed, imageio.Limits{})
			if err != nil || info.Format != imageio.PNG || got.Rect.Dx() != tt.w || got.Rect.Dy() != tt.h {
				t.Fatalf("fed %v %s %v, want a %d×%d PNG", err, info.Format, got.Rect, tt.w, tt.h)
			}
			want, _, _ := imageio.Decode(tt.data, imageio.Limits{})
			if !bytes.Equal(got.Pix, want.Pix) {
				t.Error("the PNG fed does not hold the pixels prepare decodes")
			}
		})
	}
}
