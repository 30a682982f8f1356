package infer

import (
	"path/filepath"
	"testing"

	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/testenv"
)

// BenchmarkSquare is what xcept does per file before onnxruntime runs it
// (the model has no image decoder): read, decode upright, squash-resize to
// 299 px, on the fixture's real photos (750×1000 JPEGs). make bench-engines
// reports the rest of the onnxruntime path against onnxruntime's own figure.
func BenchmarkSquare(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join(testenv.KitchenPhotos(b), "*", "*.jpg"))
	if len(files) == 0 {
		b.Skip("no fixture photos")
	}
	i := 0
	for b.Loop() {
		img, ferr := Decode(Input{Path: files[i%len(files)]}, Limits{})
		if ferr != nil {
			b.Fatal(ferr)
		}
		Square(img, 299, imageio.Squash)
		i++
	}
}
