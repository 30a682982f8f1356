package augment

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/pyenv"
	"github.com/xcept/xcept/internal/testenv"
)

// noise is a reproducible h×w RGB test image.
func noise(h, w int, seed uint64) []uint8 {
	rng := rand.New(rand.NewPCG(seed, 1))
	img := make([]uint8, h*w*3)
	for i := range img {
		img[i] = uint8(rng.IntN(256))
	}
	return img
}

// grid is an image whose pixel (x, y) holds channels (x, y, 10x+y): easy to
// read in expected outputs.
func grid(h, w int) []uint8 {
	img := make([]uint8, 0, h*w*3)
	for y := range h {
		for x := range w {
			img = append(img, uint8(x), uint8(y), uint8(10*x+y))
		}
	}
	return img
}

// pixelsOf lists (x, y) pairs read back from a grid image's first two channels.
func pixelsOf(img []uint8) [][2]uint8 {
	var out [][2]uint8
	for i := 0; i < len(img); i += 3 {
		out = append(out, [2]uint8{img[i], img[i+1]})
	}
	return out
}

func TestIdentityCopiesExactly(t *testing.T) {
	src := noise(17, 23, 1)
	dst := make([]uint8, len(src))
	for _, p := range []Params{{}, {Fill: FillConstant, Cval: 9}} {
		p.Apply(dst, src, 17, 23, rand.New(rand.NewPCG(1, 2)))
		if !bytes.Equal(dst, src) {
			t.Fatalf("%+v changed the image", p)
		}
	}
	// An explicit identity that is not == Identity (-0 zoom offsets) still
	// maps pixels onto themselves.
	Params{}.ApplyTransform(dst, src, 17, 23, Transform{Theta: math.Copysign(0, -1), Zx: 1, Zy: 1, Shear: 0})
	if !bytes.Equal(dst, src) {
		t.Fatal("a -0 rotation changed the image")
	}
}

func TestKnownTransforms(t *testing.T) {
	// 3×3 grid: pixel (x, y) is read back as [x y].
	p00, p10, p20 := [2]uint8{0, 0}, [2]uint8{1, 0}, [2]uint8{2, 0}
	p01, p11, p21 := [2]uint8{0, 1}, [2]uint8{1, 1}, [2]uint8{2, 1}
	p02, p12, p22 := [2]uint8{0, 2}, [2]uint8{1, 2}, [2]uint8{2, 2}
	tests := []struct {
		name string
		fill string
		t    Transform
		want [][2]uint8 // row-major
	}{
		{"flip h", FillNearest, Transform{Zx: 1, Zy: 1, FlipH: true},
			[][2]uint8{p20, p10, p00, p21, p11, p01, p22, p12, p02}},
		{"flip v", FillNearest, Transform{Zx: 1, Zy: 1, FlipV: true},
			[][2]uint8{p02, p12, p22, p01, p11, p21, p00, p10, p20}},
		// Keras's theta=90 samples input (x, y) = (-y', x') about the
		// centre: the output's top row is the input's right column, top
		// down; the content turns a quarter counter-clockwise.
		{"rotate 90", FillNearest, Transform{Theta: 90, Zx: 1, Zy: 1},
			[][2]uint8{p20, p21, p22, p10, p11, p12, p00, p01, p02}},
		{"rotate 180", FillNearest, Transform{Theta: 180, Zx: 1, Zy: 1},
			[][2]uint8{p22, p12, p02, p21, p11, p01, p20, p10, p00}},
		// Tx=1 samples one pixel to the right: content moves left and the
		// last column repeats (nearest).
		{"shift x nearest", FillNearest, Transform{Tx: 1, Zx: 1, Zy: 1},
			[][2]uint8{p10, p20, p20, p11, p21, p21, p12, p22, p22}},
		{"shift y reflect", FillReflect, Transform{Ty: -1, Zx: 1, Zy: 1},
			[][2]uint8{p00, p10, p20, p00, p10, p20, p01, p11, p21}},
		// scipy's wrap has period n-1 = 2: x=2 wraps to x=0... then 3 -> 1.
		{"shift x wrap", FillWrap, Transform{Tx: 1, Zx: 1, Zy: 1},
			[][2]uint8{p10, p20, p10, p11, p21, p11, p12, p22, p12}},
		// Zoom 2 samples twice as far from the centre: corners come from
		// outside, the centre stays.
		{"zoom out nearest", FillNearest, Transform{Zx: 2, Zy: 2},
			[][2]uint8{p00, p10, p20, p01, p11, p21, p02, p12, p22}},
		{"flips after shift", FillNearest, Transform{Tx: 1, Zx: 1, Zy: 1, FlipH: true},
			[][2]uint8{p20, p20, p10, p21, p21, p11, p22, p22, p12}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := make([]uint8, 27)
			Params{Fill: tt.fill}.ApplyTransform(dst, grid(3, 3), 3, 3, tt.t)
			if got := pixelsOf(dst); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestConstantFill(t *testing.T) {
	dst := make([]uint8, 27)
	Params{Fill: FillConstant, Cval: 200}.ApplyTransform(dst, grid(3, 3), 3, 3, Transform{Tx: 1, Zx: 1, Zy: 1})
	for y := range 3 {
		if px := dst[(y*3+2)*3 : (y*3+2)*3+3]; !bytes.Equal(px, []byte{200, 200, 200}) {
			t.Errorf("row %d last pixel = %v, want cval", y, px)
		}
		if px := dst[(y*3)*3 : (y*3)*3+2]; px[0] != 1 || px[1] != uint8(y) {
			t.Errorf("row %d first pixel = %v, want the input's (1, %d)", y, px, y)
		}
	}
}

// A half-pixel shift blends neighbours equally: bilinear, not nearest.
func TestBilinearHalfPixel(t *testing.T) {
	src := []uint8{0, 0, 0, 100, 50, 255}
	dst := make([]uint8, 6)
	Params{}.ApplyTransform(dst, src, 1, 2, Transform{Tx: 0.5, Zx: 1, Zy: 1})
	if want := []uint8{50, 25, 128, 100, 50, 255}; !bytes.Equal(dst, want) {
		t.Fatalf("got %v, want %v", dst, want)
	}
}

func TestSameSeedSameOutput(t *testing.T) {
	src := noise(40, 30, 7)
	a, b, c := make([]uint8, len(src)), make([]uint8, len(src)), make([]uint8, len(src))
	p := Recipe()
	p.VerticalFlip = true
	p.Apply(a, src, 40, 30, rand.New(rand.NewPCG(42, 0)))
	p.Apply(b, src, 40, 30, rand.New(rand.NewPCG(42, 0)))
	p.Apply(c, src, 40, 30, rand.New(rand.NewPCG(43, 0)))
	if !bytes.Equal(a, b) {
		t.Error("same seed gave different images")
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds gave the same image")
	}
}

// Enabling one parameter must not shift the random stream of the others.
func TestDrawStreamIsStable(t *testing.T) {
	only := Params{Rotation: 30}
	more := Params{Rotation: 30, Zoom: 0.1, VerticalFlip: true}
	a := only.Draw(10, 10, rand.New(rand.NewPCG(5, 5)))
	b := more.Draw(10, 10, rand.New(rand.NewPCG(5, 5)))
	if a.Theta != b.Theta || a.Theta == 0 {
		t.Fatalf("theta %v vs %v", a.Theta, b.Theta)
	}
}

func TestDrawRanges(t *testing.T) {
	p := Params{Rotation: 20, WidthShift: 0.2, HeightShift: 0.1, Shear: 5, Zoom: 0.3, HorizontalFlip: true}
	rng := rand.New(rand.NewPCG(9, 9))
	flips := 0
	const n, h, w = 4000, 50, 100
	var maxTheta, maxTx, maxTy, minZ, maxZ float64 = 0, 0, 0, 2, 0
	for range n {
		tr := p.Draw(h, w, rng)
		maxTheta, maxTx, maxTy = max(maxTheta, math.Abs(tr.Theta)), max(maxTx, math.Abs(tr.Tx)), max(maxTy, math.Abs(tr.Ty))
		minZ, maxZ = min(minZ, tr.Zx, tr.Zy), max(maxZ, tr.Zx, tr.Zy)
		if tr.FlipV || math.Abs(tr.Shear) > 5 {
			t.Fatalf("drew %+v: vertical flip is off and shear is at most 5", tr)
		}
		if tr.FlipH {
			flips++
		}
	}
	checks := []struct {
		name      string
		got, want float64
	}{
		{"max |theta|", maxTheta, 20}, {"max |tx|", maxTx, 0.2 * w}, {"max |ty|", maxTy, 0.1 * h},
		{"min zoom", minZ, 0.7}, {"max zoom", maxZ, 1.3},
	}
	for _, c := range checks {
		if math.Abs(c.got-c.want) > 0.02*math.Abs(c.want) {
			t.Errorf("%s = %v over %d draws, want close to %v", c.name, c.got, n, c.want)
		}
	}
	if flips < n*45/100 || flips > n*55/100 {
		t.Errorf("%d horizontal flips in %d draws, want about half", flips, n)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Params
		key  string // "" for valid
	}{
		{"zero", Params{}, ""},
		{"recipe", Recipe(), ""},
		{"max rotation", Params{Rotation: 180}, ""},
		{"every fill", Params{Fill: FillWrap}, ""},
		{"negative rotation", Params{Rotation: -1}, "augment.rotation"},
		{"rotation NaN", Params{Rotation: math.NaN()}, "augment.rotation"},
		{"rotation too big", Params{Rotation: 181}, "augment.rotation"},
		{"negative width shift", Params{WidthShift: -0.1}, "augment.width_shift"},
		{"whole height shift", Params{HeightShift: 1}, "augment.height_shift"},
		{"right-angle shear", Params{Shear: 90}, "augment.shear"},
		{"zoom to zero", Params{Zoom: 1}, "augment.zoom"},
		{"zoom inf", Params{Zoom: math.Inf(1)}, "augment.zoom"},
		{"unknown fill", Params{Fill: "mirror"}, "augment.fill"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if tt.key == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.key+": ") || cli.KindOf(err) != cli.KindUsage {
				t.Fatalf("Validate = %v, want a usage error starting with %s", err, tt.key)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestEnabled(t *testing.T) {
	if (Params{Fill: FillConstant, Cval: 3}).Enabled() {
		t.Error("fill settings alone enable augmentation")
	}
	for _, p := range []Params{{Rotation: 1}, {WidthShift: 0.1}, {HeightShift: 0.1}, {Shear: 1}, {Zoom: 0.1}, {HorizontalFlip: true}, {VerticalFlip: true}} {
		if !p.Enabled() {
			t.Errorf("%+v reports disabled", p)
		}
	}
}

func TestApplyPanicsOnBadLength(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "2x2 RGB image needs 12 bytes") {
			t.Errorf("recovered %v", r)
		}
	}()
	Params{}.Apply(make([]uint8, 12), make([]uint8, 11), 2, 2, rand.New(rand.NewPCG(1, 1)))
}

func TestApplyAllocatesNothing(t *testing.T) {
	src := noise(64, 48, 3)
	dst := make([]uint8, len(src))
	p := Recipe()
	p.Fill = FillReflect
	rng := rand.New(rand.NewPCG(1, 1))
	if n := testing.AllocsPerRun(20, func() { p.Apply(dst, src, 64, 48, rng) }); n != 0 {
		t.Fatalf("Apply allocates %v times per call", n)
	}
}

// refCase is one case for testdata/reference.py.
type refCase struct {
	H         int     `json:"h"`
	W         int     `json:"w"`
	Pixels    []uint8 `json:"-"`
	PixelList []int   `json:"pixels"`
	Fill      string  `json:"fill"`
	Cval      uint8   `json:"cval"`
	Reference string  `json:"reference"`
	T         struct {
		Theta float64 `json:"theta"`
		Tx    float64 `json:"tx"`
		Ty    float64 `json:"ty"`
		Shear float64 `json:"shear"`
		Zx    float64 `json:"zx"`
		Zy    float64 `json:"zy"`
		FlipH bool    `json:"flip_h"`
		FlipV bool    `json:"flip_v"`
	} `json:"t"`
	transform Transform
}

func newRefCase(h, w int, fill, reference string, t Transform, seed uint64) refCase {
	c := refCase{H: h, W: w, Pixels: noise(h, w, seed), Fill: fill, Cval: 77, Reference: reference, transform: t}
	for _, v := range c.Pixels {
		c.PixelList = append(c.PixelList, int(v))
	}
	c.T.Theta, c.T.Tx, c.T.Ty, c.T.Shear, c.T.Zx, c.T.Zy, c.T.FlipH, c.T.FlipV = t.Theta, t.Tx, t.Ty, t.Shear, t.Zx, t.Zy, t.FlipH, t.FlipV
	return c
}

// referenceCases: for every fill mode, strong random transforms on a square
// image (compared with Keras itself) and on a non-square one (compared with
// scipy about the true centre), plus each transform kind on its own.
func referenceCases() []refCase {
	strong := Params{Rotation: 60, WidthShift: 0.3, HeightShift: 0.3, Shear: 25, Zoom: 0.4, HorizontalFlip: true, VerticalFlip: true}
	rng := rand.New(rand.NewPCG(2024, 7))
	var cases []refCase
	seed := uint64(0)
	for _, fill := range []string{FillNearest, FillConstant, FillReflect, FillWrap} {
		single := []Transform{
			{Theta: 33, Zx: 1, Zy: 1}, {Tx: 5.3, Ty: -7.6, Zx: 1, Zy: 1}, {Shear: 20, Zx: 1, Zy: 1},
			{Zx: 1.35, Zy: 0.7}, {Zx: 1, Zy: 1, FlipH: true, FlipV: true},
		}
		for _, t := range single {
			seed++
			cases = append(cases, newRefCase(24, 24, fill, "keras", t, seed))
		}
		for range 4 {
			seed++
			cases = append(cases, newRefCase(24, 24, fill, "keras", strong.Draw(24, 24, rng), seed))
			seed++
			cases = append(cases, newRefCase(18, 31, fill, "scipy", strong.Draw(18, 31, rng), seed))
		}
	}
	return cases
}

// TestMatchesKerasAndScipy compares Apply with tf_keras's
// ImageDataGenerator.apply_transform (square images) and with
// scipy.ndimage.affine_transform about the true centre (non-square), per
// pixel: each Go value must be a rounding of the float reference (within
// 0.5; ties may round either way after last-bit differences).
func TestMatchesKerasAndScipy(t *testing.T) {
	py := testenv.Python(t)
	cases := referenceCases()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "cases.json"), filepath.Join(dir, "out.json")
	js, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, js, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "testdata/reference.py", in, out)
	cmd.Env = pyenv.Env()
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("reference.py: %v\n%s", err, msg)
	}
	js, err = os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var refs [][]float64
	if err := json.Unmarshal(js, &refs); err != nil {
		t.Fatal(err)
	}
	if len(refs) != len(cases) {
		t.Fatalf("reference.py returned %d images for %d cases", len(refs), len(cases))
	}
	for i, c := range cases {
		dst := make([]uint8, len(c.Pixels))
		Params{Fill: c.Fill, Cval: c.Cval}.ApplyTransform(dst, c.Pixels, c.H, c.W, c.transform)
		bad, worst := 0, 0.0
		for j, v := range refs[i] {
			d := math.Abs(float64(dst[j]) - v)
			worst = max(worst, d)
			if d > 0.5+1e-6 {
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("case %d (%s, %dx%d, %s, %+v): %d of %d values are not a rounding of the reference, worst difference %.3f",
				i, c.Reference, c.H, c.W, c.Fill, c.transform, bad, len(dst), worst)
		}
	}
}

func BenchmarkApply299(b *testing.B) {
	for _, fill := range []string{FillNearest, FillReflect} {
		b.Run(fill, func(b *testing.B) {
			const h, w = 299, 299
			src := noise(h, w, 1)
			dst := make([]uint8, len(src))
			p := Recipe()
			p.Fill = fill
			rng := rand.New(rand.NewPCG(1, 1))
			b.ReportAllocs()
			for b.Loop() {
				p.Apply(dst, src, h, w, rng)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
