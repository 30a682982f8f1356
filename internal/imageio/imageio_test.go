package imageio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math"
	"slices"
	"testing"

	"golang.org/x/image/bmp"
	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/tiff"
)

func encodePNG(t *testing.T, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t *testing.T, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// exifTIFF builds a minimal EXIF TIFF structure holding one orientation tag.
func exifTIFF(bo binary.ByteOrder, orientation uint16) []byte {
	b := make([]byte, 8+2+12+4)
	if bo == binary.LittleEndian {
		copy(b, "II")
	} else {
		copy(b, "MM")
	}
	bo.PutUint16(b[2:], 42)
	bo.PutUint32(b[4:], 8)
	bo.PutUint16(b[8:], 1)
	bo.PutUint16(b[10:], 0x0112)
	bo.PutUint16(b[12:], 3)
	bo.PutUint32(b[14:], 1)
	bo.PutUint16(b[18:], orientation)
	return b
}

// withJPEGEXIF inserts an APP1 EXIF segment right after SOI.
func withJPEGEXIF(j []byte, tiffData []byte) []byte {
	payload := append([]byte("Exif\x00\x00"), tiffData...)
	seg := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(payload)+2))
	out := append([]byte{}, j[:2]...)
	out = append(out, seg...)
	out = append(out, payload...)
	return append(out, j[2:]...)
}

// withPNGChunk inserts a chunk right after IHDR.
func withPNGChunk(p []byte, typ string, data []byte) []byte {
	chunk := make([]byte, 8, 12+len(data))
	binary.BigEndian.PutUint32(chunk, uint32(len(data)))
	copy(chunk[4:], typ)
	chunk = append(chunk, data...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	ihdrEnd := 8 + 8 + 13 + 4
	out := append([]byte{}, p[:ihdrEnd]...)
	out = append(out, chunk...)
	return append(out, p[ihdrEnd:]...)
}

func TestSniff(t *testing.T) {
	tiffData := func() []byte {
		var b bytes.Buffer
		if err := tiff.Encode(&b, image.NewRGBA(image.Rect(0, 0, 2, 2)), nil); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}()
	bmpData := func() []byte {
		var b bytes.Buffer
		if err := bmp.Encode(&b, image.NewRGBA(image.Rect(0, 0, 2, 2))); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}()
	tests := []struct {
		name        string
		data        []byte
		want        Format
		unsupported string
	}{
		{"jpeg", encodeJPEG(t, image.NewGray(image.Rect(0, 0, 2, 2))), JPEG, ""},
		{"png", encodePNG(t, image.NewGray(image.Rect(0, 0, 2, 2))), PNG, ""},
		{"gif", []byte("GIF89a\x01\x00\x01\x00"), GIF, ""},
		{"webp", []byte("RIFF\x10\x00\x00\x00WEBPVP8 "), WebP, ""},
		{"tiff", tiffData, TIFF, ""},
		{"bmp", bmpData, BMP, ""},
		{"text starting with BM", []byte("BMW owners manual, chapter 1"), Unknown, ""},
		{"heic", []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00"), Unknown, "HEIC/HEIF"},
		{"avif", []byte("\x00\x00\x00\x1cftypavif\x00\x00\x00\x00"), Unknown, "AVIF"},
		{"riff wave", []byte("RIFF\x10\x00\x00\x00WAVEfmt "), Unknown, ""},
		{"empty", nil, Unknown, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, unsup := Sniff(tt.data)
			if got != tt.want || unsup != tt.unsupported {
				t.Errorf("Sniff = %q, %q; want %q, %q", got, unsup, tt.want, tt.unsupported)
			}
		})
	}
}

func TestExtensionFormat(t *testing.T) {
	tests := map[string]Format{
		"a.jpg": JPEG, "b.JPEG": JPEG, "c.Jpe": JPEG, "d.jfif": JPEG, "e.png": PNG, "f.GIF": GIF,
		"g.bmp": BMP, "h.dib": BMP, "i.webp": WebP, "j.TIF": TIFF, "k.tiff": TIFF,
		"l.txt": Unknown, "noext": Unknown, "m.jpg.txt": Unknown, "dir.png/n": Unknown,
	}
	for name, want := range tests {
		if got := ExtensionFormat(name); got != want {
			t.Errorf("ExtensionFormat(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestOrientationMetadata(t *testing.T) {
	j := encodeJPEG(t, image.NewGray(image.Rect(0, 0, 4, 4)))
	p := encodePNG(t, image.NewGray(image.Rect(0, 0, 4, 4)))
	webpWithEXIF := func(tiffData []byte) []byte {
		b := []byte("RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00")
		b = append(b, make([]byte, 10)...)
		b = append(b, "EXIF"...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(tiffData)))
		return append(b, tiffData...)
	}
	var tiffFile bytes.Buffer
	if err := tiff.Encode(&tiffFile, image.NewGray(image.Rect(0, 0, 2, 2)), nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		format Format
		data   []byte
		want   int
	}{
		{"jpeg little-endian 6", JPEG, withJPEGEXIF(j, exifTIFF(binary.LittleEndian, 6)), 6},
		{"jpeg big-endian 8", JPEG, withJPEGEXIF(j, exifTIFF(binary.BigEndian, 8)), 8},
		{"jpeg no exif", JPEG, j, 1},
		{"jpeg out of range", JPEG, withJPEGEXIF(j, exifTIFF(binary.BigEndian, 9)), 1},
		{"jpeg truncated exif", JPEG, withJPEGEXIF(j, exifTIFF(binary.BigEndian, 3)[:12]), 1},
		{"png eXIf 3", PNG, withPNGChunk(p, "eXIf", exifTIFF(binary.BigEndian, 3)), 3},
		{"png eXIf with Exif prefix 5", PNG, withPNGChunk(p, "eXIf", append([]byte("Exif\x00\x00"), exifTIFF(binary.LittleEndian, 5)...)), 5},
		{"png none", PNG, p, 1},
		{"webp EXIF 7", WebP, webpWithEXIF(exifTIFF(binary.LittleEndian, 7)), 7},
		{"tiff file without tag", TIFF, tiffFile.Bytes(), 1},
		{"garbage", JPEG, []byte{0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Orientation(tt.format, tt.data); got != tt.want {
				t.Errorf("Orientation = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestOrient checks each EXIF value against the EXIF table of where the
// stored 0th row and 0th column appear, an independent statement of the
// transforms that Orient implements.
func TestOrient(t *testing.T) {
	const w, h = 3, 2
	src := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			src.SetRGBA(x, y, color.RGBA{uint8(x), uint8(y), 0, 255})
		}
	}
	// upright gives where stored pixel (x, y) must appear.
	upright := map[int]func(x, y int) (int, int){
		1: func(x, y int) (int, int) { return x, y },
		2: func(x, y int) (int, int) { return w - 1 - x, y },
		3: func(x, y int) (int, int) { return w - 1 - x, h - 1 - y },
		4: func(x, y int) (int, int) { return x, h - 1 - y },
		5: func(x, y int) (int, int) { return y, x },
		6: func(x, y int) (int, int) { return h - 1 - y, x },
		7: func(x, y int) (int, int) { return h - 1 - y, w - 1 - x },
		8: func(x, y int) (int, int) { return y, w - 1 - x },
	}
	for o := 1; o <= 8; o++ {
		got := Orient(src, o)
		wantW, wantH := w, h
		if o >= 5 {
			wantW, wantH = h, w
		}
		if got.Rect.Dx() != wantW || got.Rect.Dy() != wantH {
			t.Fatalf("orientation %d: size %v, want %dx%d", o, got.Rect.Size(), wantW, wantH)
		}
		for y := range h {
			for x := range w {
				ux, uy := upright[o](x, y)
				if c := got.RGBAAt(ux, uy); c.R != uint8(x) || c.G != uint8(y) {
					t.Errorf("orientation %d: stored (%d,%d) should be at (%d,%d), found stored (%d,%d) there", o, x, y, ux, uy, c.R, c.G)
				}
			}
		}
	}
}

func TestDecodeConversions(t *testing.T) {
	rect := image.Rect(0, 0, 4, 3)
	gray := image.NewGray(rect)
	gray.SetGray(1, 1, color.Gray{200})
	gray16 := image.NewGray16(rect)
	gray16.SetGray16(1, 1, color.Gray16{0x8080})
	pal := image.NewPaletted(rect, color.Palette{color.RGBA{0, 0, 0, 0}, color.RGBA{0, 0, 255, 255}})
	pal.SetColorIndex(1, 1, 1)
	halfRed := image.NewNRGBA(rect)
	for i := 0; i < len(halfRed.Pix); i += 4 {
		copy(halfRed.Pix[i:], []byte{255, 0, 0, 255})
	}
	halfRed.SetNRGBA(1, 1, color.NRGBA{255, 0, 0, 128})
	rgba64 := image.NewNRGBA64(rect)
	for i := range rgba64.Pix {
		rgba64.Pix[i] = 0xFF
	}
	rgba64.SetNRGBA64(1, 1, color.NRGBA64{0x1234, 0x5678, 0x9abc, 0xffff})

	anim := &gif.GIF{Image: []*image.Paletted{pal, pal, pal}, Delay: []int{1, 1, 1}}
	var animBuf bytes.Buffer
	if err := gif.EncodeAll(&animBuf, anim); err != nil {
		t.Fatal(err)
	}
	var bmpBuf, tiffBuf bytes.Buffer
	if err := bmp.Encode(&bmpBuf, gray); err != nil {
		t.Fatal(err)
	}
	if err := tiff.Encode(&tiffBuf, halfRed, &tiff.Options{Compression: tiff.Deflate}); err != nil {
		t.Fatal(err)
	}
	rotated := withJPEGEXIF(encodeJPEG(t, image.NewRGBA(rect)), exifTIFF(binary.BigEndian, 6))

	tests := []struct {
		name   string
		data   []byte
		format Format
		conv   []string
		frames int
		w, h   int
		at     image.Point
		want   color.RGBA
	}{
		{"gray png", encodePNG(t, gray), PNG, []string{ConvGrayscale}, 1, 4, 3, image.Pt(1, 1), color.RGBA{200, 200, 200, 255}},
		{"gray16 png", encodePNG(t, gray16), PNG, []string{ConvGrayscale, Conv16Bit}, 1, 4, 3, image.Pt(1, 1), color.RGBA{0x80, 0x80, 0x80, 255}},
		{"palette with transparency", encodePNG(t, pal), PNG, []string{ConvPalette, ConvAlpha}, 1, 4, 3, image.Pt(0, 0), color.RGBA{255, 255, 255, 255}},
		{"palette opaque entry", encodePNG(t, pal), PNG, []string{ConvPalette, ConvAlpha}, 1, 4, 3, image.Pt(1, 1), color.RGBA{0, 0, 255, 255}},
		{"half-transparent red over white", encodePNG(t, halfRed), PNG, []string{ConvAlpha}, 1, 4, 3, image.Pt(1, 1), color.RGBA{255, 127, 127, 255}},
		{"16-bit rgb", encodePNG(t, rgba64), PNG, []string{Conv16Bit}, 1, 4, 3, image.Pt(1, 1), color.RGBA{0x12, 0x56, 0x9a, 255}},
		{"animated gif", animBuf.Bytes(), GIF, []string{ConvPalette, ConvAlpha, ConvFirstFrame}, 3, 4, 3, image.Pt(1, 1), color.RGBA{0, 0, 255, 255}},
		{"bmp (gray is stored with a palette)", bmpBuf.Bytes(), BMP, []string{ConvPalette}, 1, 4, 3, image.Pt(1, 1), color.RGBA{200, 200, 200, 255}},
		{"tiff with alpha", tiffBuf.Bytes(), TIFF, []string{ConvAlpha}, 1, 4, 3, image.Pt(1, 1), color.RGBA{255, 127, 127, 255}},
		{"jpeg rotated by exif", rotated, JPEG, []string{ConvOrientation}, 1, 3, 4, image.Pt(0, 0), color.RGBA{0, 0, 0, 255}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, info, err := Decode(tt.data, Limits{MaxPixels: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if info.Format != tt.format || info.Frames != tt.frames || info.Width != tt.w || info.Height != tt.h {
				t.Errorf("info = %+v, want format %s, %d frames, %dx%d", info, tt.format, tt.frames, tt.w, tt.h)
			}
			if !slices.Equal(info.Conversions, tt.conv) {
				t.Errorf("conversions = %q, want %q", info.Conversions, tt.conv)
			}
			got := img.RGBAAt(tt.at.X, tt.at.Y)
			if diff(got, tt.want) > 2 {
				t.Errorf("pixel at %v = %v, want %v", tt.at, got, tt.want)
			}
			for i := 3; i < len(img.Pix); i += 4 {
				if img.Pix[i] != 255 {
					t.Fatalf("alpha %d at byte %d: decoded images must be opaque", img.Pix[i], i)
				}
			}
		})
	}
}

func diff(a, b color.RGBA) int {
	d := 0
	for _, p := range [][2]uint8{{a.R, b.R}, {a.G, b.G}, {a.B, b.B}, {a.A, b.A}} {
		d = max(d, abs(int(p[0])-int(p[1])))
	}
	return d
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestDecodeErrors(t *testing.T) {
	j := encodeJPEG(t, image.NewRGBA(image.Rect(0, 0, 64, 64)))
	p := encodePNG(t, image.NewRGBA(image.Rect(0, 0, 64, 64)))
	noise := image.NewGray(image.Rect(0, 0, 64, 64))
	for i := range noise.Pix {
		noise.Pix[i] = uint8(i * 7919 >> 3)
	}
	noisyJPEG := encodeJPEG(t, noise)
	// bomb claims 60000×60000 in its frame header; its pixel data is that
	// of a 64×64 image, so only a check before decoding reports too-large.
	bomb := bytes.Clone(j)
	sof := bytes.Index(bomb, []byte{0xFF, 0xC0})
	binary.BigEndian.PutUint16(bomb[sof+5:], 60000)
	binary.BigEndian.PutUint16(bomb[sof+7:], 60000)
	corrupt := bytes.Clone(p)
	copy(corrupt[len(corrupt)-40:], bytes.Repeat([]byte{0x55}, 20))
	tests := []struct {
		name   string
		data   []byte
		reason string
	}{
		{"empty", nil, ReasonEmpty},
		{"text", []byte("hello, I am not an image\n"), ReasonNotImage},
		{"heic", []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"), ReasonUnsupported},
		{"animated webp", []byte("RIFF\x20\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x01\x00\x00"), ReasonUnsupported},
		{"truncated jpeg", j[:len(j)/2], ReasonTruncated},
		{"jpeg cut inside the entropy-coded data", noisyJPEG[:len(noisyJPEG)*6/10], ReasonTruncated},
		{"truncated png", p[:len(p)/2], ReasonTruncated},
		{"jpeg header only", j[:4], ReasonTruncated},
		{"damaged png", corrupt, ReasonCorrupt},
		{"bomb", bomb, ReasonTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Decode(tt.data, Limits{MaxPixels: 10_000_000})
			var e *Error
			if !errors.As(err, &e) || e.Reason != tt.reason {
				t.Fatalf("Decode error = %v, want reason %s", err, tt.reason)
			}
			if e.Detail == "" {
				t.Error("empty detail")
			}
		})
	}
}

func TestResize(t *testing.T) {
	// Three vertical bands: red | green | blue, 3:1 landscape.
	src := image.NewRGBA(image.Rect(0, 0, 300, 100))
	for y := range 100 {
		for x := range 300 {
			c := [3]color.RGBA{{255, 0, 0, 255}, {0, 255, 0, 255}, {0, 0, 255, 255}}[x/100]
			src.SetRGBA(x, y, c)
		}
	}
	tests := []struct {
		fit  Fit
		at   image.Point
		want color.RGBA
	}{
		{Squash, image.Pt(5, 30), color.RGBA{255, 0, 0, 255}},
		{Squash, image.Pt(54, 30), color.RGBA{0, 0, 255, 255}},
		{CenterCrop, image.Pt(0, 0), color.RGBA{0, 255, 0, 255}},
		{CenterCrop, image.Pt(59, 59), color.RGBA{0, 255, 0, 255}},
		{Pad, image.Pt(30, 2), color.RGBA{PadGrey, PadGrey, PadGrey, 255}},
		{Pad, image.Pt(30, 30), color.RGBA{0, 255, 0, 255}},
		{Pad, image.Pt(2, 30), color.RGBA{255, 0, 0, 255}},
	}
	for _, tt := range tests {
		got := Resize(src, 60, tt.fit)
		if got.Rect != image.Rect(0, 0, 60, 60) {
			t.Fatalf("%s: size %v", tt.fit, got.Rect)
		}
		if c := got.RGBAAt(tt.at.X, tt.at.Y); diff(c, tt.want) > 3 {
			t.Errorf("%s: pixel %v = %v, want %v", tt.fit, tt.at, c, tt.want)
		}
	}
	if _, err := ParseFit("stretch"); err == nil {
		t.Error("ParseFit accepted an unknown policy")
	}
}

func TestEncodeDeterministicRoundTrip(t *testing.T) {
	src := image.NewRGBA(image.Rect(0, 0, 16, 16))
	for i := range src.Pix {
		src.Pix[i] = uint8(i * 7)
	}
	for _, f := range []Format{JPEG, PNG} {
		a, err := Encode(src, f, 90)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Encode(src, f, 90)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two encodings differ", f)
		}
		if got, _ := Sniff(a); got != f {
			t.Errorf("encoded %s sniffs as %s", f, got)
		}
	}
	if _, err := Encode(src, GIF, 90); err == nil {
		t.Error("Encode accepted GIF output")
	}
}

// TestScaleMatchesXImage checks the fixed-point resampler against
// golang.org/x/image/draw's BiLinear on noise (the hardest case) and on a
// smooth gradient, shrinking, enlarging and with sub-rectangles.
func TestScaleMatchesXImage(t *testing.T) {
	smooth := image.NewRGBA(image.Rect(0, 0, 300, 200))
	for y := range 200 {
		for x := range 300 {
			smooth.SetRGBA(x, y, color.RGBA{uint8(x * 255 / 299), uint8(y * 255 / 199), uint8((x + y) % 256), 255})
		}
	}
	noise := image.NewRGBA(image.Rect(0, 0, 300, 200))
	v := uint32(1)
	for i := range noise.Pix {
		v = v*1664525 + 1013904223
		noise.Pix[i] = uint8(v >> 24)
		if i%4 == 3 {
			noise.Pix[i] = 255
		}
	}
	tests := []struct {
		name   string
		src    *image.RGBA
		sr, dr image.Rectangle
	}{
		{"shrink", noise, noise.Rect, image.Rect(0, 0, 97, 61)},
		{"shrink smooth", smooth, smooth.Rect, image.Rect(0, 0, 64, 64)},
		{"enlarge", smooth, image.Rect(10, 20, 60, 50), image.Rect(0, 0, 150, 120)},
		{"crop and pad", noise, image.Rect(50, 0, 250, 200), image.Rect(5, 10, 95, 70)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := image.NewRGBA(image.Rect(0, 0, 160, 130))
			got := image.NewRGBA(want.Rect)
			xdraw.BiLinear.Scale(want, tt.dr, tt.src, tt.sr, xdraw.Src, nil)
			scaleRGBA(got, tt.dr, tt.src, tt.sr)
			worst, sum := 0, 0
			for i := range got.Pix {
				d := abs(int(got.Pix[i]) - int(want.Pix[i]))
				worst, sum = max(worst, d), sum+d
			}
			if mean := float64(sum) / float64(len(got.Pix)); worst > 1 || mean > 0.5 { // rounding only
				t.Errorf("differs from x/image: worst %d, mean %.3f", worst, mean)
			}
		})
	}
}

// BenchmarkResize compares the fixed-point resampler with x/image's
// BiLinear on the typical prepare job: a 640×480 photo to 299×299.
func BenchmarkResize(b *testing.B) {
	src := image.NewRGBA(image.Rect(0, 0, 640, 480))
	for i := range src.Pix {
		src.Pix[i] = uint8(i * 31)
	}
	b.Run("xcept", func(b *testing.B) {
		for b.Loop() {
			Resize(src, 299, Squash)
		}
	})
	b.Run("x-image", func(b *testing.B) {
		dst := image.NewRGBA(image.Rect(0, 0, 299, 299))
		for b.Loop() {
			xdraw.BiLinear.Scale(dst, dst.Rect, src, src.Rect, xdraw.Src, nil)
		}
	})
}

// TestScaleOrderExact checks that scaleRGBA (vertical pass first) gives
// exactly what the horizontal-first resampler it replaced gave, byte for
// byte: shrinking, enlarging, sub-rectangles and a sub-image whose bounds
// do not start at (0, 0). prepare's byte-identical datasets rely on it.
func TestScaleOrderExact(t *testing.T) {
	noise := image.NewRGBA(image.Rect(0, 0, 750, 1000))
	v := uint32(7)
	for i := range noise.Pix {
		v = v*1664525 + 1013904223
		noise.Pix[i] = uint8(v >> 24)
		if i%4 == 3 {
			noise.Pix[i] = 255
		}
	}
	sub := noise.SubImage(image.Rect(13, 29, 613, 529)).(*image.RGBA)
	tests := []struct {
		name   string
		src    *image.RGBA
		sr, dr image.Rectangle
		out    image.Rectangle
	}{
		{"photo to 299", noise, noise.Rect, image.Rect(0, 0, 299, 299), image.Rect(0, 0, 299, 299)},
		{"enlarge", noise, image.Rect(10, 20, 60, 50), image.Rect(0, 0, 150, 120), image.Rect(0, 0, 160, 130)},
		{"crop and pad", noise, image.Rect(50, 0, 550, 500), image.Rect(5, 10, 95, 70), image.Rect(0, 0, 100, 80)},
		{"sub-image", sub, image.Rect(40, 60, 600, 520), image.Rect(3, 0, 71, 128), image.Rect(0, 0, 80, 128)},
		{"one pixel", noise, image.Rect(5, 5, 6, 6), image.Rect(0, 0, 7, 3), image.Rect(0, 0, 7, 3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := image.NewRGBA(tt.out)
			got := image.NewRGBA(tt.out)
			scaleRGBAHorizontalFirst(want, tt.dr, tt.src, tt.sr)
			scaleRGBA(got, tt.dr, tt.src, tt.sr)
			for i := range got.Pix {
				if got.Pix[i] != want.Pix[i] {
					t.Fatalf("byte %d: %d, the horizontal-first resampler gave %d", i, got.Pix[i], want.Pix[i])
				}
			}
		})
	}
}

// scaleRGBAHorizontalFirst is the resampler scaleRGBA replaced, kept as its
// exact reference.
func scaleRGBAHorizontalFirst(dst *image.RGBA, dr image.Rectangle, src *image.RGBA, sr image.Rectangle) {
	b := src.Rect
	tx := makeTaps(sr.Min.X-b.Min.X, sr.Dx(), b.Dx(), dr.Dx())
	ty := makeTaps(sr.Min.Y-b.Min.Y, sr.Dy(), b.Dy(), dr.Dy())
	dw := dr.Dx()
	tmp := make([]int32, sr.Dy()*dw*3)
	for y := range sr.Dy() {
		srow := src.Pix[(sr.Min.Y-b.Min.Y+y)*src.Stride:]
		trow := tmp[y*dw*3 : (y+1)*dw*3]
		for x := range dw {
			n := tx.count[x]
			w := tx.weight[x*tx.n : x*tx.n+n]
			p := srow[4*tx.first[x] : 4*(tx.first[x]+n)]
			var r, g, bl int32
			for k, wk := range w {
				r += wk * int32(p[4*k])
				g += wk * int32(p[4*k+1])
				bl += wk * int32(p[4*k+2])
			}
			trow[3*x], trow[3*x+1], trow[3*x+2] = r, g, bl
		}
	}
	const shift = 2 * weightBits
	acc := make([]int64, dw*3)
	for y := range dr.Dy() {
		clear(acc)
		n := ty.count[y]
		first := ty.first[y] - (sr.Min.Y - b.Min.Y)
		for k, wk := range ty.weight[y*ty.n : y*ty.n+n] {
			row := tmp[(first+k)*dw*3 : (first+k+1)*dw*3]
			for i, v := range row {
				acc[i] += int64(wk) * int64(v)
			}
		}
		drow := dst.Pix[(dr.Min.Y-dst.Rect.Min.Y+y)*dst.Stride+(dr.Min.X-dst.Rect.Min.X)*4:]
		for x := range dw {
			p := drow[4*x : 4*x+4]
			p[0], p[1], p[2], p[3] = round8(acc[3*x], shift), round8(acc[3*x+1], shift), round8(acc[3*x+2], shift), 255
		}
	}
}

// BenchmarkScale compares scaleRGBA with the resampler it replaced on a
// 750×1000 photo to 299×299 (the kitchen fixture's size).
func BenchmarkScale(b *testing.B) {
	src := image.NewRGBA(image.Rect(0, 0, 750, 1000))
	for i := range src.Pix {
		src.Pix[i] = uint8(i * 31)
	}
	dst := image.NewRGBA(image.Rect(0, 0, 299, 299))
	b.Run("vertical-first", func(b *testing.B) {
		for b.Loop() {
			scaleRGBA(dst, dst.Rect, src, src.Rect)
		}
	})
	b.Run("horizontal-first", func(b *testing.B) {
		for b.Loop() {
			scaleRGBAHorizontalFirst(dst, dst.Rect, src, src.Rect)
		}
	})
}

// ResizeFloat is Resize before the rounding: within half a level (plus the
// fixed-point weights' own error) of it everywhere, exact where nothing is
// resampled, and Pad's border is the same grey.
func TestResizeFloat(t *testing.T) {
	noise := image.NewRGBA(image.Rect(0, 0, 300, 200))
	v := uint32(3)
	for i := range noise.Pix {
		v = v*1664525 + 1013904223
		noise.Pix[i] = uint8(v >> 24)
		if i%4 == 3 {
			noise.Pix[i] = 255
		}
	}
	for _, fit := range []Fit{Squash, CenterCrop, Pad} {
		for _, size := range []int{61, 150, 299} {
			got := ResizeFloat(noise, size, fit)
			want := Resize(noise, size, fit)
			worst := 0.0
			for i, j := 0, 0; j < len(got); i, j = i+4, j+3 {
				for c := range 3 {
					worst = max(worst, math.Abs(float64(got[j+c])-float64(want.Pix[i+c])))
				}
			}
			if worst > 0.55 {
				t.Errorf("fit %v, %d px: %.3f levels from Resize, want ≤ 0.55", fit, size, worst)
			}
		}
	}
	same := ResizeFloat(noise.SubImage(image.Rect(0, 0, 200, 200)).(*image.RGBA), 200, Squash)
	for y := range 200 {
		for x := range 200 {
			for c := range 3 {
				if g, w := same[(y*200+x)*3+c], float32(noise.Pix[y*noise.Stride+4*x+c]); g != w {
					t.Fatalf("200 px to 200 px changed (%d,%d) channel %d: %v, want %v", x, y, c, g, w)
				}
			}
		}
	}
}
