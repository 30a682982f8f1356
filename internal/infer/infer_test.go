package infer

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/metrics"
	"github.com/xcept/xcept/internal/testenv"
)

func TestTopRanksLikeMetrics(t *testing.T) {
	names := []string{"a", "b", "c", "d"}
	tests := []struct {
		probs []float32
		k     int
		want  []int
	}{
		{[]float32{0.1, 0.6, 0.2, 0.1}, 2, []int{1, 2}},
		{[]float32{0.25, 0.25, 0.25, 0.25}, 3, []int{0, 1, 2}}, // ties keep label order
		{[]float32{0.1, 0.2, 0.3, 0.4}, 9, []int{3, 2, 1, 0}},  // k beyond the classes
		{[]float32{0.5, 0.1, 0.5, 0}, 1, []int{0}},
	}
	for _, tt := range tests {
		got := Top(tt.probs, names, tt.k)
		var idx []int
		for _, c := range got {
			idx = append(idx, c.Index)
			if c.Name != names[c.Index] || c.Probability != float64(tt.probs[c.Index]) {
				t.Errorf("%v: class %+v mislabelled", tt.probs, c)
			}
		}
		if !reflect.DeepEqual(idx, tt.want) {
			t.Errorf("Top(%v, %d) = %v, want %v", tt.probs, tt.k, idx, tt.want)
		}
		row := metrics.Row{Probs: Rows(tt.probs, 1)[0]}
		if ranked := row.Ranked(); !reflect.DeepEqual(ranked[:len(idx)], idx) {
			t.Errorf("%v: metrics ranks %v, Top %v: predict and evaluate would disagree", tt.probs, ranked, idx)
		}
		if metrics.Argmax(row.Probs) != idx[0] {
			t.Errorf("%v: Argmax %d, Top %d", tt.probs, metrics.Argmax(row.Probs), idx[0])
		}
	}
}

// gradient is a w×h test image whose every pixel differs.
func gradient(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / max(1, w-1)), uint8(y * 255 / max(1, h-1)), uint8((x * y) % 251), 255})
		}
	}
	return img
}

// TestPlaceMatchesResize checks that Place describes where imageio.Resize
// puts the image: a white dot at a known image point must land where Place
// maps it, for every policy and shape.
func TestPlaceMatchesResize(t *testing.T) {
	for _, fit := range []imageio.Fit{imageio.Squash, imageio.CenterCrop, imageio.Pad} {
		for _, wh := range [][2]int{{200, 100}, {100, 200}, {120, 120}} {
			w, h := wh[0], wh[1]
			img := image.NewRGBA(image.Rect(0, 0, w, h))
			for i := 3; i < len(img.Pix); i += 4 {
				img.Pix[i] = 255
			}
			// A 10×10 white block, around the image point (cx, cy).
			cx, cy := w/2+w/8, h/2-h/8
			for y := cy - 5; y < cy+5; y++ {
				for x := cx - 5; x < cx+5; x++ {
					img.Set(x, y, color.White)
				}
			}
			const size = 64
			sq := imageio.Resize(img, size, fit)
			p := Place(w, h, size, fit)
			ix, iy, seen := p.ToInput(float64(cx), float64(cy))
			if !seen {
				t.Fatalf("%s %dx%d: the block's centre reported unseen", fit, w, h)
			}
			bx, by := brightest(sq)
			if math.Abs(bx-ix) > 1.5 || math.Abs(by-iy) > 1.5 {
				t.Errorf("%s %dx%d: block at input (%.1f, %.1f), Place says (%.1f, %.1f)", fit, w, h, bx, by, ix, iy)
			}
			_, _, seenCorner := p.ToInput(0.5, 0.5)
			if wantSeen := fit != imageio.CenterCrop || w == h; seenCorner != wantSeen {
				t.Errorf("%s %dx%d: corner seen %v, want %v", fit, w, h, seenCorner, wantSeen)
			}
		}
	}
}

// brightest is the centroid of the pixels brighter than mid-grey.
func brightest(img *image.RGBA) (float64, float64) {
	var sx, sy, n float64
	for y := range img.Rect.Dy() {
		for x := range img.Rect.Dx() {
			if img.RGBAAt(x, y).R > 128 {
				sx, sy, n = sx+float64(x)+0.5, sy+float64(y)+0.5, n+1
			}
		}
	}
	return sx / n, sy / n
}

func TestHeatAtInterpolatesCellCentres(t *testing.T) {
	// A 2×2 heatmap over a 100×100 squashed input: cell centres sit at 25
	// and 75; beyond them the heat is held, between them it is linear.
	e := Explanation{Heatmap: []float32{0, 1, 0.5, 0}, H: 2, W: 2}
	p := Place(100, 100, 100, imageio.Squash)
	tests := []struct {
		x, y, want float64
	}{
		{25, 25, 0}, {75, 25, 1}, {25, 75, 0.5}, {75, 75, 0},
		{50, 25, 0.5}, {5, 5, 0}, {99, 10, 1}, {50, 50, 0.375},
	}
	for _, tt := range tests {
		got, seen := e.HeatAt(p, tt.x, tt.y)
		if !seen || math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("HeatAt(%g, %g) = %g, %v; want %g", tt.x, tt.y, got, seen, tt.want)
		}
	}
	crop := Place(200, 100, 100, imageio.CenterCrop)
	if _, seen := e.HeatAt(crop, 10, 50); seen {
		t.Error("a point cut off by center-crop is reported seen")
	}
}

// tiffOrientation is a big-endian TIFF header with one IFD entry: the
// EXIF orientation tag.
func tiffOrientation(o int) []byte {
	return []byte{'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, byte(o), 0, 0, 0, 0, 0, 0}
}

// WithJPEGOrientation inserts an EXIF APP1 segment after the SOI marker.
func withJPEGOrientation(jpg []byte, o int) []byte {
	payload := append([]byte("Exif\x00\x00"), tiffOrientation(o)...)
	seg := append([]byte{0xFF, 0xE1, byte((len(payload) + 2) >> 8), byte(len(payload) + 2)}, payload...)
	return append(append(append([]byte{}, jpg[:2]...), seg...), jpg[2:]...)
}

func TestEncodedFeedsWhatTensorFlowReadsFaithfully(t *testing.T) {
	img := gradient(40, 30)
	jpg, _ := imageio.Encode(img, imageio.JPEG, 90)
	pngData, _ := imageio.Encode(img, imageio.PNG, 0)
	var gifBuf bytes.Buffer
	gif.Encode(&gifBuf, img, nil)
	rotated := withJPEGOrientation(jpg, 6)
	tests := []struct {
		name      string
		data      []byte
		converted string
		reason    string // of the error
	}{
		{"jpeg as is", jpg, "", ""},
		{"png as is", pngData, "", ""},
		{"exif-rotated jpeg upright as png", rotated, imageio.ConvOrientation, ""},
		{"gif as png", gifBuf.Bytes(), "gif", ""},
		{"truncated jpeg", jpg[:len(jpg)/2], "", imageio.ReasonTruncated},
		{"not an image", []byte("hello, world"), "", imageio.ReasonNotImage},
		{"empty", nil, "", imageio.ReasonEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			feed, converted, err := Encoded(tt.data, imageio.Limits{})
			if tt.reason != "" {
				var ie *imageio.Error
				if !errors.As(err, &ie) || ie.Reason != tt.reason {
					t.Fatalf("error %v, want reason %s", err, tt.reason)
				}
				return
			}
			if err != nil || converted != tt.converted {
				t.Fatalf("converted %q, err %v; want %q", converted, err, tt.converted)
			}
			if converted == "" && !bytes.Equal(feed, tt.data) {
				t.Error("a faithful file was not passed on byte for byte")
			}
			if converted != "" {
				// The PNG holds exactly the pixels prepare decodes.
				want, _, _ := imageio.Decode(tt.data, imageio.Limits{})
				got, info, err := imageio.Decode(feed, imageio.Limits{})
				if err != nil || info.Format != imageio.PNG || !bytes.Equal(got.Pix, want.Pix) {
					t.Errorf("re-encoded feed: %v, format %s, same pixels %v", err, info.Format, err == nil && bytes.Equal(got.Pix, want.Pix))
				}
			}
		})
	}
	// The rotated file really is shown upright: 30 wide, 40 high.
	up, _, _ := imageio.Decode(rotated, imageio.Limits{})
	if up.Rect.Dx() != 30 || up.Rect.Dy() != 40 {
		t.Errorf("EXIF 6 decoded as %v", up.Rect)
	}
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestExpandPathsAndSkippable(t *testing.T) {
	dir := t.TempDir()
	jpg, _ := imageio.Encode(gradient(8, 8), imageio.JPEG, 90)
	write(t, filepath.Join(dir, "b.jpg"), jpg)
	write(t, filepath.Join(dir, "a", "z.jpg"), jpg)
	write(t, filepath.Join(dir, ".hidden.jpg"), jpg)
	write(t, filepath.Join(dir, ".git", "x.jpg"), jpg)
	write(t, filepath.Join(dir, "README.txt"), []byte("notes"))
	write(t, filepath.Join(dir, "bad.jpg"), []byte("not a jpeg"))
	single := filepath.Join(dir, "b.jpg")
	got := ExpandPaths([]string{single, dir, filepath.Join(dir, "missing.jpg")})
	var paths []string
	for _, in := range got {
		paths = append(paths, in.Path)
	}
	want := []string{single, filepath.Join(dir, "README.txt"), filepath.Join(dir, "a", "z.jpg"),
		filepath.Join(dir, "b.jpg"), filepath.Join(dir, "bad.jpg"), filepath.Join(dir, "missing.jpg")}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("ExpandPaths:\n got %v\nwant %v", paths, want)
	}
	if !got[len(got)-1].Missing || got[0].InDir || !got[1].InDir {
		t.Errorf("flags wrong: %+v", got)
	}
	for _, in := range got {
		_, err := Decode(in, Limits{})
		name := filepath.Base(in.Path)
		skip := err != nil && in.Skippable(err)
		switch name {
		case "README.txt":
			if !skip {
				t.Errorf("README.txt in a folder: %v, want it skipped", err)
			}
		case "bad.jpg":
			if err == nil || skip || err.Reason != imageio.ReasonNotImage {
				t.Errorf("bad.jpg: %v (skipped %v), want a reported not-an-image", err, skip)
			}
		case "missing.jpg":
			if err == nil || err.Reason != ReasonNotFound {
				t.Errorf("missing.jpg: %v", err)
			}
		default:
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
}

func TestScanLabelled(t *testing.T) {
	jpg, _ := imageio.Encode(gradient(8, 8), imageio.JPEG, 90)
	classes := []string{"cat", "dog", "owl"}
	good := t.TempDir()
	write(t, filepath.Join(good, "owl", "1.jpg"), jpg)
	write(t, filepath.Join(good, "cat", "sub", "2.jpg"), jpg)
	write(t, filepath.Join(good, ".cache", "3.jpg"), jpg)
	files, err := ScanLabelled(good, classes, "split")
	if err != nil || len(files) != 2 || files[0].Label != 0 || files[1].Label != 2 {
		t.Fatalf("ScanLabelled: %+v, %v", files, err)
	}
	unknown := t.TempDir()
	write(t, filepath.Join(unknown, "zebra", "1.jpg"), jpg)
	empty := t.TempDir()
	for _, tt := range []struct {
		dir, want string
	}{
		{unknown, `class folder "zebra" is not a class of the model (cat, dog, owl)`},
		{empty, "no class folders"},
		{filepath.Join(empty, "nope"), "option split " + filepath.Join(empty, "nope")},
	} {
		_, err := ScanLabelled(tt.dir, classes, "split")
		if cli.KindOf(err) != cli.KindData || err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
			t.Errorf("ScanLabelled(%s) = %v, want a data error containing %q", tt.dir, err, tt.want)
		}
	}
}

func TestResolveSavedModel(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "flat", "saved_model.pb"), nil)
	for _, v := range []string{"1", "2", "10"} {
		write(t, filepath.Join(root, "versions", v, "saved_model.pb"), nil)
		write(t, filepath.Join(root, "versions", v, "variables", "variables.index"), nil)
	}
	write(t, filepath.Join(root, "versions", "11", "saved_model.pb"), nil) // incomplete: no variables yet
	write(t, filepath.Join(root, "versions", "latest", "saved_model.pb"), nil)
	write(t, filepath.Join(root, "modeldir", "model.json"), []byte("{}"))
	tests := []struct {
		dir, want, err string
	}{
		{"flat", "flat", ""},
		{"versions", filepath.Join("versions", "10"), ""},
		{"modeldir", "", "is a model folder: pass " + filepath.Join(root, "modeldir", "serving")},
		{"empty", "", "no SavedModel here"},
		{"missing", "", "no such folder"},
	}
	os.Mkdir(filepath.Join(root, "empty"), 0o755)
	for _, tt := range tests {
		got, err := ResolveSavedModel(filepath.Join(root, tt.dir))
		if tt.err != "" {
			if cli.KindOf(err) != cli.KindData || !bytes.Contains([]byte(err.Error()), []byte(tt.err)) {
				t.Errorf("%s: %v, want a data error containing %q", tt.dir, err, tt.err)
			}
			continue
		}
		if err != nil || got != filepath.Join(root, tt.want) {
			t.Errorf("%s: %s, %v; want %s", tt.dir, got, err, tt.want)
		}
	}
}

func TestHFlip(t *testing.T) {
	// Two 2×2 images; pixel (x, y) of image i holds i, x, y.
	var images []uint8
	for i := range 2 {
		for y := range 2 {
			for x := range 2 {
				images = append(images, uint8(i), uint8(x), uint8(y))
			}
		}
	}
	got := HFlip(images, 2, 2)
	for i := range 2 {
		for y := range 2 {
			for x := range 2 {
				p := got[((i*2+y)*2+x)*3:][:3]
				if p[0] != uint8(i) || p[1] != uint8(1-x) || p[2] != uint8(y) {
					t.Errorf("image %d pixel (%d, %d) = %v, want the pixel (%d, %d)", i, x, y, p, 1-x, y)
				}
			}
		}
	}
	if images[3] != 0 || images[4] != 1 {
		t.Error("HFlip changed its input")
	}
}

// TestRejectionNamesWhereItLooked: a model without an "unknown" threshold
// is a model error naming the run, or the --model version folder.
func TestRejectionNamesWhereItLooked(t *testing.T) {
	for _, c := range []struct {
		what any
		want string
	}{
		{"run", `run runs/x has no "unknown" threshold: fix it`},
		{fault.Option("model"), `--model runs/x has no "unknown" threshold: fix it`},
	} {
		s := &Serving{rejectWhat: c.what, rejectFrom: "runs/x", rejectFix: "fix it"}
		_, err := s.Rejection()
		if got := testenv.UserMessage(err); got != c.want || cli.ExitCode(err) != cli.ExitModel {
			t.Errorf("Rejection: %q (exit %d), want %q (exit 5)", got, cli.ExitCode(err), c.want)
		}
	}
}
