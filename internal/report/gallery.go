package report

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"slices"

	xdraw "golang.org/x/image/draw"

	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/metrics"
)

// GalleryItem is one mistake to show: the image (bytes, or a path to read
// them from), its true and predicted class, and the confidence of the
// prediction (negative when unknown).
type GalleryItem struct {
	Path       string
	Name       string // shown under the picture; "" shows Path's base name
	Image      []byte
	True, Pred string
	Confidence float64
}

// thumbSide bounds gallery thumbnails: big enough to see what the model
// saw, small enough that 24 of them keep report.html light.
const thumbSide = 200

// galleryLimits keeps a stray huge image from eating memory for a thumbnail.
var galleryLimits = imageio.Limits{MaxPixels: 100_000_000}

// WorstMistakes picks up to n wrong predictions, most confident first
// (those are the ones a user trusts and should not), ties in file order.
// Relative file paths resolve against base first, then the working folder.
func WorstMistakes(classes []string, rows []metrics.Row, n int, base string) []GalleryItem {
	var wrong []metrics.Row
	for _, r := range rows {
		if r.True != r.Pred {
			wrong = append(wrong, r)
		}
	}
	slices.SortStableFunc(wrong, func(a, b metrics.Row) int { return cmp.Compare(b.Confidence(), a.Confidence()) })
	items := make([]GalleryItem, 0, min(n, len(wrong)))
	for _, r := range wrong[:min(n, len(wrong))] {
		path := r.File
		if path != "" && !filepath.IsAbs(path) && base != "" {
			if _, err := os.Stat(filepath.Join(base, path)); err == nil {
				path = filepath.Join(base, path)
			}
		}
		items = append(items, GalleryItem{Path: path, Name: r.File, True: classes[r.True], Pred: classes[r.Pred], Confidence: r.Confidence()})
	}
	return items
}

// galleryCard is a GalleryItem ready for the page.
type galleryCard struct {
	GalleryItem
	Caption string // file name shown under the picture
	DataURI string // "" when the image could not be read
	Problem string // why there is no picture
}

// cards loads and shrinks every item's image. An unreadable image becomes
// a card that says why, never a failed report.
func cards(items []GalleryItem) []galleryCard {
	out := make([]galleryCard, len(items))
	for i, it := range items {
		c := galleryCard{GalleryItem: it, Caption: it.Name}
		if c.Caption == "" && it.Path != "" {
			c.Caption = filepath.Base(it.Path)
		}
		data := it.Image
		if data == nil && it.Path != "" {
			var err error
			if data, err = os.ReadFile(it.Path); err != nil {
				c.Problem = "image not found"
			}
		}
		if data == nil && c.Problem == "" {
			c.Problem = "no image"
		}
		if data != nil {
			uri, err := thumbnailURI(data)
			if err != nil {
				c.Problem = "unreadable image"
			}
			c.DataURI = uri
		}
		out[i] = c
	}
	return out
}

// thumbnailURI decodes an image (EXIF orientation applied), fits it in
// thumbSide×thumbSide keeping its shape, and returns it as a JPEG data URI.
func thumbnailURI(data []byte) (string, error) {
	img, _, err := imageio.Decode(data, galleryLimits)
	if err != nil {
		return "", err
	}
	w, h := img.Rect.Dx(), img.Rect.Dy()
	scale := min(1, float64(thumbSide)/float64(max(w, h)))
	tw, th := max(1, int(float64(w)*scale+0.5)), max(1, int(float64(h)*scale+0.5))
	thumb := image.NewRGBA(image.Rect(0, 0, tw, th))
	xdraw.CatmullRom.Scale(thumb, thumb.Rect, img, img.Rect, xdraw.Src, nil)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, thumb, &jpeg.Options{Quality: 85}); err != nil {
		return "", err
	}
	return "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}
