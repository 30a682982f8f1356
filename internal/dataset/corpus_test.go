package dataset

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"

	"github.com/xcept/xcept/internal/imageio"
)

type want struct{ path, reason, action string }

// buildCorpus writes every bad case Go can make into data and returns the
// problems prepare must report and the files it must keep.
func buildCorpus(t *testing.T, data string) (problems []want, kept []string) {
	cats := filepath.Join(data, "cats")
	dogs := filepath.Join(data, "dogs")
	put := func(rel string, b []byte) { writeTestFile(t, filepath.Join(data, rel), b) }
	keep := func(rel string, b []byte) { put(rel, b); kept = append(kept, rel) }
	bad := func(rel, reason, action string) { problems = append(problems, want{rel, reason, action}) }
	var buf bytes.Buffer

	for i := range 10 {
		keep(filepathf("cats/good_%03d.jpg", i), goodImage(t, 0, i))
		keep(filepathf("dogs/good_%03d.jpg", i), goodImage(t, 1, i))
	}
	put("README.txt", []byte("my dataset\n"))
	bad("README.txt", ReasonOutsideClass, ActionSkipped)
	put(".hidden/x.jpg", []byte("ignored"))
	bad(".hidden", ReasonHiddenFolder, ActionSkipped)
	put("..dots/x.jpg", goodImage(t, 0, 40))
	bad("..dots", ReasonHiddenFolder, ActionSkipped)
	put("cats/.DS_Store", []byte("ignored"))
	put("empty_class/.keep", nil)
	bad("empty_class", ReasonEmptyClass, ActionExcluded)

	put("cats/empty.jpg", nil)
	bad("cats/empty.jpg", ReasonEmptyFile, ActionSkipped)
	put("cats/notes.txt", []byte("not a picture\n"))
	bad("cats/notes.txt", ReasonNotImage, ActionSkipped)
	put("cats/fake.jpg", []byte("<html>404 not found</html>"))
	bad("cats/fake.jpg", ReasonNotImage, ActionSkipped)
	put("cats/photo.heic", []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"))
	bad("cats/photo.heic", ReasonUnsupported, ActionSkipped)
	j := goodImage(t, 0, 30)
	put("cats/truncated.jpg", j[:len(j)*6/10])
	bad("cats/truncated.jpg", ReasonTruncated, ActionSkipped)
	damaged := encodePNG(t, noisy(64, 64, 1))
	copy(damaged[len(damaged)/2:], bytes.Repeat([]byte{0xA5}, 64))
	put("cats/corrupt.png", damaged)
	bad("cats/corrupt.png", ReasonCorrupt, ActionSkipped)
	bomb := bytes.Clone(goodImage(t, 0, 31))
	sof := bytes.Index(bomb, []byte{0xFF, 0xC0})
	binary.BigEndian.PutUint16(bomb[sof+5:], 50000)
	binary.BigEndian.PutUint16(bomb[sof+7:], 50000)
	put("cats/huge.jpg", bomb)
	bad("cats/huge.jpg", ReasonTooLarge, ActionSkipped)
	put("cats/huge_file.jpg", append(goodImage(t, 0, 32), make([]byte, 300<<10)...))
	bad("cats/huge_file.jpg", ReasonTooLarge, ActionSkipped)
	put("cats/tiny.png", encodePNG(t, noisy(8, 40, 2)))
	bad("cats/tiny.png", ReasonTooSmall, ActionSkipped)

	keep("cats/UPPER.JPG", goodImage(t, 0, 20))
	keep("cats/odd.Jpe", goodImage(t, 0, 21))
	keep("cats/png_named.jpg", encodePNG(t, noisy(40, 30, 3)))
	bad("cats/png_named.jpg", ReasonExtension, ActionKept)
	keep("cats/noext", goodImage(t, 0, 22))
	bad("cats/noext", ReasonExtension, ActionKept)

	gray := image.NewGray(image.Rect(0, 0, 40, 30))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i)
	}
	buf.Reset()
	jpeg.Encode(&buf, gray, nil)
	keep("cats/gray.jpg", bytes.Clone(buf.Bytes()))
	pal := image.NewPaletted(image.Rect(0, 0, 40, 30), color.Palette{color.RGBA{0, 0, 0, 0}, color.RGBA{200, 0, 0, 255}, color.RGBA{0, 200, 0, 255}})
	for i := range pal.Pix {
		pal.Pix[i] = uint8(i % 3)
	}
	keep("cats/palette.png", encodePNG(t, pal))
	alpha := image.NewNRGBA(image.Rect(0, 0, 40, 30))
	for i := range alpha.Pix {
		alpha.Pix[i] = uint8(i * 3)
	}
	keep("cats/alpha.png", encodePNG(t, alpha))
	deep := image.NewRGBA64(image.Rect(0, 0, 40, 30))
	for i := range deep.Pix {
		deep.Pix[i] = uint8(i * 5)
		if i%8 >= 6 {
			deep.Pix[i] = 0xFF
		}
	}
	keep("cats/deep16.png", encodePNG(t, deep))
	buf.Reset()
	gif.EncodeAll(&buf, &gif.GIF{Image: []*image.Paletted{pal, pal, pal}, Delay: []int{5, 5, 5}})
	keep("cats/anim.gif", bytes.Clone(buf.Bytes()))
	bad("cats/anim.gif", ReasonAnimated, ActionFixed)
	buf.Reset()
	tiff.Encode(&buf, noisy(40, 30, 4), &tiff.Options{Compression: tiff.Deflate})
	keep("cats/scan.tif", bytes.Clone(buf.Bytes()))
	buf.Reset()
	bmp.Encode(&buf, noisy(40, 30, 5))
	keep("cats/old.bmp", bytes.Clone(buf.Bytes()))
	keep("cats/sub/deeper/nested.jpg", goodImage(t, 0, 23))

	keep("cats/dup_a.jpg", goodImage(t, 0, 24))
	put("cats/sub/dup_b.jpg", goodImage(t, 0, 24))
	bad("cats/sub/dup_b.jpg", ReasonDupInClass, ActionSkipped)
	put("cats/conflict.jpg", goodImage(t, 0, 25))
	put("dogs/conflict.jpg", goodImage(t, 0, 25))
	bad("cats/conflict.jpg", ReasonDupAcrossClasses, ActionExcluded)
	bad("dogs/conflict.jpg", ReasonDupAcrossClasses, ActionExcluded)

	link := func(target, rel string) {
		if err := os.Symlink(target, filepath.Join(data, rel)); err != nil {
			t.Fatal(err)
		}
	}
	link("good_000.jpg", "cats/link_good.jpg")
	bad("cats/link_good.jpg", ReasonDupInClass, ActionSkipped)
	link("missing.jpg", "cats/broken_link.jpg")
	bad("cats/broken_link.jpg", ReasonBrokenSymlink, ActionSkipped)
	link(".", "cats/loop_dir")
	bad("cats/loop_dir", ReasonSymlinkLoop, ActionSkipped)
	link("self_loop.jpg", "cats/self_loop.jpg")
	bad("cats/self_loop.jpg", ReasonSymlinkLoop, ActionSkipped)
	link(dogs, "cats/linked_dogs")
	bad("cats/linked_dogs", ReasonSymlinkLoop, ActionSkipped) // dogs/ is scanned before, as its own class
	_ = cats
	if err := syscall.Mkfifo(filepath.Join(data, "cats/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad("cats/fifo", ReasonNotRegular, ActionSkipped)

	put("cats/bad\xffname.jpg", goodImage(t, 0, 26))
	kept = append(kept, `cats/bad\xffname.jpg`)
	bad(`cats/bad\xffname.jpg`, ReasonOddName, ActionKept)
	return problems, kept
}

func filepathf(format string, a ...any) string { return filepath.FromSlash(fmt.Sprintf(format, a...)) }

// TestBadCaseCorpus runs prepare on a folder holding every bad case and
// checks the exact problem list, that every good file is kept, that the
// records hold them, and that no original changed.
func TestBadCaseCorpus(t *testing.T) {
	data, out := t.TempDir(), filepath.Join(t.TempDir(), "ds")
	wantProblems, wantKept := buildCorpus(t, data)
	before := snapshot(t, data)

	o := testOptions(data, out)
	o.MaxFileBytes = 256 << 10
	rep := mustPrepare(t, o)

	sameSnapshot(t, before, snapshot(t, data))
	var got []want
	for _, p := range readProblems(t, out) {
		got = append(got, want{p.Path, p.Reason, p.Action})
		if p.Detail == "" {
			t.Errorf("%s %s: no detail", p.Path, p.Reason)
		}
	}
	cmpWant := func(a, b want) int { return strings.Compare(a.path+" "+a.reason, b.path+" "+b.reason) }
	slices.SortFunc(wantProblems, cmpWant)
	slices.SortFunc(got, cmpWant)
	if !slices.Equal(got, wantProblems) {
		t.Errorf("problems differ\n got: %v\nwant: %v", got, wantProblems)
	}
	if len(rep.Problems) != len(wantProblems) {
		t.Errorf("report has %d problems, want %d", len(rep.Problems), len(wantProblems))
	}

	m, err := ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	var keptPaths []string
	for _, f := range m.Files {
		keptPaths = append(keptPaths, f.Path)
	}
	slices.Sort(wantKept)
	if !slices.Equal(keptPaths, wantKept) {
		t.Errorf("kept files differ\n got: %q\nwant: %q", keptPaths, wantKept)
	}
	if got := m.ClassNames(); !slices.Equal(got, []string{"cats", "dogs"}) {
		t.Errorf("classes = %q", got)
	}
	conv := map[string][]string{}
	for _, f := range m.Files {
		conv[f.Path] = f.Conversions
	}
	for path, c := range map[string]string{
		"cats/gray.jpg": imageio.ConvGrayscale, "cats/palette.png": imageio.ConvPalette, "cats/alpha.png": imageio.ConvAlpha,
		"cats/deep16.png": imageio.Conv16Bit, "cats/anim.gif": imageio.ConvFirstFrame,
	} {
		if !slices.Contains(conv[path], c) {
			t.Errorf("%s: conversions %q lack %s", path, conv[path], c)
		}
	}

	var names []string
	for _, s := range Splits {
		for _, r := range readRecords(t, out, m, s) {
			names = append(names, r.name)
			if r.width != 64 || r.height != 64 || r.format != "jpeg" {
				t.Errorf("%s: %s %dx%d", r.name, r.format, r.width, r.height)
			}
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, wantKept) {
		t.Errorf("records hold %q", names)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 {
		t.Errorf("work folders left beside the output: %v", entries)
	}
}

// TestLinksOutsideDataNotFollowed: a link to a folder of images outside
// --data (which would become a class) and a link to a system folder are
// reported with symlink-outside-data and nothing under them is read or
// listed; prepare.follow_outside_links follows them.
func TestLinksOutsideDataNotFollowed(t *testing.T) {
	data, elsewhere := t.TempDir(), t.TempDir()
	for i := range 6 {
		writeTestFile(t, filepathf("%s/cats/c%d.jpg", data, i), goodImage(t, 0, i))
		writeTestFile(t, filepathf("%s/dogs/d%d.jpg", data, i), goodImage(t, 1, i))
		writeTestFile(t, filepathf("%s/birds/b%d.jpg", elsewhere, i), goodImage(t, 2, i))
	}
	writeTestFile(t, filepath.Join(elsewhere, "lone.jpg"), goodImage(t, 0, 9))
	for _, l := range [][2]string{
		{filepath.Join(elsewhere, "birds"), "birds"},
		{"/etc", "etc"},
		{filepath.Join(elsewhere, "lone.jpg"), "cats/lone.jpg"},
		{filepath.Join(elsewhere, "birds"), "dogs/more"},
	} {
		if err := os.Symlink(l[0], filepath.Join(data, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("../cats", filepath.Join(data, "dogs", "inside")) // inside --data: followed as before (a loop)
	out := filepath.Join(t.TempDir(), "ds")
	rep := mustPrepare(t, testOptions(data, out))
	var got []string
	for _, p := range readProblems(t, out) {
		got = append(got, p.Path+" "+p.Reason)
		if p.Reason == ReasonLinkOutside && !strings.Contains(p.Detail, "outside --data") {
			t.Errorf("detail %q", p.Detail)
		}
	}
	want := []string{"birds symlink-outside-data", "cats/lone.jpg symlink-outside-data", "dogs/inside symlink-loop", "dogs/more symlink-outside-data", "etc symlink-outside-data"}
	if !slices.Equal(got, want) {
		t.Errorf("problems %v, want %v", got, want)
	}
	if !slices.Equal(rep.Manifest.ClassNames(), []string{"cats", "dogs"}) || len(rep.Manifest.Files) != 12 {
		t.Errorf("classes %v, %d images: the outside links were followed", rep.Manifest.ClassNames(), len(rep.Manifest.Files))
	}

	os.Remove(filepath.Join(data, "etc"))
	o := testOptions(data, filepath.Join(t.TempDir(), "ds"))
	o.FollowOutsideLinks = true
	o.Data = filepath.Join(data, "..", filepath.Base(data)) // with a path that is not the resolved one
	rep = mustPrepare(t, o)
	if !slices.Contains(rep.Manifest.ClassNames(), "birds") {
		t.Errorf("with follow_outside_links: classes %v", rep.Manifest.ClassNames())
	}
}
