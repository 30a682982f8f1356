package dataset

import (
	"image"
	"image/draw"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/testenv"
)

// TestPillowCorpus covers the cases Go cannot encode (CMYK JPEG, WebP with
// alpha or animation, EXIF orientations 1–8 in JPEG and PNG) with files
// Pillow writes, and checks xcept's reading of each against Pillow's own
// (ImageOps.exif_transpose, alpha over white) pixel by pixel.
func TestPillowCorpus(t *testing.T) {
	py := testenv.Python(t)
	root := t.TempDir()
	data, expected, out := filepath.Join(root, "data"), filepath.Join(root, "expected"), filepath.Join(root, "ds")
	cmd := exec.Command(py, filepath.Join("testdata", "make_pillow_corpus.py"), data, expected)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make_pillow_corpus.py: %v\n%s", err, msg)
	}
	before := snapshot(t, data)
	o := testOptions(data, out)
	o.Fractions = Fractions{Train: 1}
	mustPrepare(t, o)
	sameSnapshot(t, before, snapshot(t, data))

	var got []want
	for _, p := range readProblems(t, out) {
		got = append(got, want{p.Path, p.Reason, p.Action})
	}
	wantProblems := []want{{"webp/animated.webp", ReasonUnsupported, ActionSkipped}}
	if !slices.Equal(got, wantProblems) {
		t.Errorf("problems = %v, want %v", got, wantProblems)
	}
	m, err := ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 16 {
		t.Errorf("kept %d files, want 16", len(m.Files))
	}
	for _, f := range m.Files {
		t.Run(f.Path, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(data, f.Path))
			if err != nil {
				t.Fatal(err)
			}
			img, info, err := imageio.Decode(raw, imageio.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			ref := readPNG(t, filepath.Join(expected, f.Path+".png"))
			if img.Rect != ref.Rect {
				t.Fatalf("size %v, Pillow sees %v (orientation %d)", img.Rect.Size(), ref.Rect.Size(), info.Orientation)
			}
			// JPEG decoders round differently; a wrong turn or flip moves
			// whole colour quadrants and gives differences near 100.
			if d := meanAbsDiff(img, ref); d > 6 {
				t.Errorf("mean difference %.1f from Pillow's reading (orientation %d, conversions %q)", d, info.Orientation, info.Conversions)
			}
		})
	}
}

func readPNG(t *testing.T, path string) *image.RGBA {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := imageio.Decode(raw, imageio.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	out := image.NewRGBA(img.Rect)
	draw.Draw(out, out.Rect, img, img.Rect.Min, draw.Src)
	return out
}

func meanAbsDiff(a, b *image.RGBA) float64 {
	var sum int
	for i := range a.Pix {
		d := int(a.Pix[i]) - int(b.Pix[i])
		if d < 0 {
			d = -d
		}
		sum += d
	}
	return float64(sum) / float64(len(a.Pix))
}
