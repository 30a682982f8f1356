package demodata

import (
	"bytes"
	"image"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/xcept/xcept/internal/imageio"
)

func small() Options {
	o := Defaults()
	o.PerClass, o.Width, o.Height = 6, 48, 40
	return o
}

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[rel] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestGenerateIsDeterministicAndExtensible(t *testing.T) {
	a, b, more := t.TempDir(), t.TempDir(), t.TempDir()
	o := small()
	if err := Generate(a, o); err != nil {
		t.Fatal(err)
	}
	if err := Generate(b, o); err != nil {
		t.Fatal(err)
	}
	o.PerClass = 9
	if err := Generate(more, o); err != nil {
		t.Fatal(err)
	}
	ta, tb, tm := readTree(t, a), readTree(t, b), readTree(t, more)
	if len(ta) != 3*6 || len(tm) != 3*9 {
		t.Fatalf("got %d and %d files, want 18 and 27", len(ta), len(tm))
	}
	pngs := 0
	for name, data := range ta {
		if !bytes.Equal(data, tb[name]) {
			t.Errorf("%s differs between two runs with the same options", name)
		}
		if !bytes.Equal(data, tm[name]) {
			t.Errorf("%s changed when more images per class were asked for", name)
		}
		f, _ := imageio.Sniff(data)
		if want := imageio.ExtensionFormat(name); f != want {
			t.Errorf("%s holds %s", name, f)
		}
		if f == imageio.PNG {
			pngs++
		}
		img, info, err := imageio.Decode(data, imageio.Limits{})
		if err != nil || info.Width != 48 || info.Height != 40 || img == nil {
			t.Errorf("%s: %v, %dx%d", name, err, info.Width, info.Height)
		}
	}
	if pngs != 3 { // image 3 of each class
		t.Errorf("%d PNG files in mixed format, want 3", pngs)
	}
	if _, ok := tm["square/square_0008.jpg"]; !ok {
		t.Error("square/square_0008.jpg missing")
	}
}

func TestSeedsAndClassesDiffer(t *testing.T) {
	o := small()
	_, a, _ := Image(o, 0, 0)
	_, b, _ := Image(o, 1, 0)
	o.Seed = 2
	_, c, _ := Image(o, 0, 0)
	if bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Error("different classes or seeds gave identical images")
	}
}

// TestQuadrantHoldsTheEvidence checks that with Quadrant every strongly
// coloured (shape) pixel lies inside the quadrant the file name gives.
func TestQuadrantHoldsTheEvidence(t *testing.T) {
	o := small()
	o.Quadrant, o.Width, o.Height = true, 96, 80
	seen := map[int]bool{}
	for c := range o.Classes {
		for i := range 12 {
			rng := rand.New(rand.NewPCG(o.Seed, uint64(c)<<32|uint64(i)))
			img, q := draw(rng, Shapes[c], o)
			name, _, _ := Image(o, c, i)
			if got, ok := QuadrantOf(name); !ok || got != q {
				t.Fatalf("%s: QuadrantOf = %d, %v; drawn in %d", name, got, ok, q)
			}
			seen[q] = true
			quad := image.Rect(q%2*48, q/2*40, q%2*48+48, q/2*40+40)
			inside := 0
			for y := range 80 {
				for x := range 96 {
					if !saturated(img, x, y) {
						continue
					}
					if !image.Pt(x, y).In(quad) {
						t.Fatalf("%s: shape pixel (%d,%d) outside quadrant %v", name, x, y, quad)
					}
					inside++
				}
			}
			if inside < 30 {
				t.Errorf("%s: only %d shape pixels", name, inside)
			}
		}
	}
	if len(seen) != 4 {
		t.Errorf("quadrants used: %v, want all four", seen)
	}
	if _, ok := QuadrantOf("circle/circle_0001.jpg"); ok {
		t.Error("QuadrantOf found a quadrant in a plain name")
	}
}

// saturated tells shape pixels from the background by the spread of the
// channels: a shape has value >= 0.7 and saturation >= 0.65, so a spread of
// at least 116 less 10 of clipped noise; the background has a spread of at
// most 0.75*0.35*255 = 67, which clipping can only widen in dark pixels.
func saturated(img *image.RGBA, x, y int) bool {
	c := img.RGBAAt(x, y)
	hi, lo := max(c.R, c.G, c.B), min(c.R, c.G, c.B)
	return hi >= 150 && hi-lo > 90
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Options)
		ok   bool
	}{
		{"defaults", func(*Options) {}, true},
		{"one class", func(o *Options) { o.Classes = 1 }, false},
		{"too many classes", func(o *Options) { o.Classes = len(Shapes) + 1 }, false},
		{"no images", func(o *Options) { o.PerClass = 0 }, false},
		{"tiny", func(o *Options) { o.Width = 16 }, false},
		{"gif", func(o *Options) { o.Format = "gif" }, false},
		{"png", func(o *Options) { o.Format = "png" }, true},
	}
	for _, tt := range tests {
		o := Defaults()
		tt.edit(&o)
		if err := o.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v", tt.name, err)
		}
	}
}

// Composite: deterministic, and everything outside the named quadrant is
// the grey canvas while the quadrant holds the photo.
func TestCompositeLaysThePhotoInTheNamedQuadrant(t *testing.T) {
	src := t.TempDir()
	photo := image.NewRGBA(image.Rect(0, 0, 90, 60)) // a wide "photo": red left half, blue right
	for y := range 60 {
		for x := range 90 {
			p := photo.PixOffset(x, y)
			photo.Pix[p+3] = 255
			if x < 45 {
				photo.Pix[p] = 230
			} else {
				photo.Pix[p+2] = 230
			}
		}
	}
	data, err := imageio.Encode(photo, imageio.PNG, 0)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "a.png"), data, 0o644)
	photos := map[string][]string{"mug": {filepath.Join(src, "a.png")}, "pan": {filepath.Join(src, "a.png")}}
	a, b := t.TempDir(), t.TempDir()
	if err := Composite(a, photos, 12, 64, 5); err != nil {
		t.Fatal(err)
	}
	Composite(b, photos, 12, 64, 5)
	ta, tb := readTree(t, a), readTree(t, b)
	if len(ta) != 24 || len(tb) != 24 {
		t.Fatalf("%d and %d files, want 24", len(ta), len(tb))
	}
	for name, data := range ta {
		if !bytes.Equal(data, tb[name]) {
			t.Fatalf("%s: not the same bytes twice", name)
		}
	}
	seen := map[int]bool{}
	for name, data := range readTree(t, a) {
		q, ok := QuadrantOf(name)
		if !ok {
			t.Fatalf("%s: no quadrant in the name", name)
		}
		seen[q] = true
		img, _, err := imageio.Decode(data, imageio.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		coloured := 0
		for y := range 64 {
			for x := range 64 {
				p := img.PixOffset(x, y)
				r, g, b := int(img.Pix[p]), int(img.Pix[p+1]), int(img.Pix[p+2])
				grey := r == g && g == b && r >= imageio.PadGrey-4 && r <= imageio.PadGrey+4
				if (y/32)*2+x/32 != q && !grey {
					t.Fatalf("%s: pixel (%d,%d) outside quadrant %d is %d,%d,%d", name, x, y, q, r, g, b)
				}
				if !grey {
					coloured++
				}
			}
		}
		// The tile is 85–100% of the 32 px quadrant side, the 70–100% crop
		// of a 3:2 photo fitted in it with its aspect kept.
		if coloured < 27*27/3 {
			t.Errorf("%s: only %d photo pixels in quadrant %d", name, coloured, q)
		}
	}
	if len(seen) != 4 {
		t.Errorf("24 images used only quadrants %v", seen)
	}
	if err := Composite(t.TempDir(), map[string][]string{"x": nil}, 1, 64, 1); err == nil {
		t.Error("a class with no photos was accepted")
	}
}
