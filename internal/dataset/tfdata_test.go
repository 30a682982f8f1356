package dataset

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/xcept/xcept/internal/demodata"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/testenv"
)

// TestTFDataReadsRecords reads prepared datasets (JPEG and PNG records,
// several shards) with tf.data.TFRecordDataset and the standard feature
// spec, and checks every record against manifest.json and against xcept's
// own decoding of the same record.
func TestTFDataReadsRecords(t *testing.T) {
	py := testenv.Python(t)
	data := t.TempDir()
	gen := demodata.Defaults()
	gen.PerClass, gen.Width, gen.Height = 12, 80, 60
	if err := demodata.Generate(data, gen); err != nil {
		t.Fatal(err)
	}
	// The corpus's odd name must survive the trip to Python intact.
	writeTestFile(t, filepath.Join(data, "circle", "caf\xe9 copy.jpg"), goodImage(t, 0, 40))
	root := t.TempDir()
	jpegOut, pngOut := filepath.Join(root, "jpeg"), filepath.Join(root, "png")
	o := testOptions(data, jpegOut)
	o.Fractions, o.ImageSize = Fractions{Train: 0.6, Val: 0.2, Test: 0.2}, 72
	mustPrepare(t, o)
	o.Out, o.Format, o.Fit, o.ShardBytes = pngOut, imageio.PNG, imageio.Pad, 100<<10
	rep := mustPrepare(t, o)
	if n := len(rep.Manifest.Splits[0].Shards); n < 2 {
		t.Fatalf("PNG train split written as %d shard; the test wants several", n)
	}

	cmd := exec.Command(py, filepath.Join("testdata", "read_tfrecords.py"), jpegOut, pngOut)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("read_tfrecords.py: %v\n%s", err, stderr.String())
	}
	type pyRecord struct {
		Dataset, Split, Filename, Text, Format string
		Label, Height, Width                   int
		Shape                                  []int
		Mean                                   float64
	}
	seen := map[string]pyRecord{}
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	for sc.Scan() {
		var r pyRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		key := r.Dataset + "|" + r.Filename
		if _, dup := seen[key]; dup {
			t.Errorf("%s read twice", key)
		}
		seen[key] = r
	}
	for _, ds := range []string{jpegOut, pngOut} {
		m, err := ReadManifest(ds)
		if err != nil {
			t.Fatal(err)
		}
		goMeans := map[string]float64{}
		for _, s := range Splits {
			for _, r := range readRecords(t, ds, m, s) {
				goMeans[r.name] = meanValue(r.image.Pix)
			}
		}
		if len(m.Files) != 3*12+1 {
			t.Errorf("%s: %d files in the manifest", ds, len(m.Files))
		}
		for _, f := range m.Files {
			r, ok := seen[ds+"|"+f.Path]
			if !ok {
				t.Errorf("%s: tf.data did not read %s", ds, f.Path)
				continue
			}
			delete(seen, ds+"|"+f.Path)
			if r.Split != f.Split || r.Label != f.Label || r.Text != f.Class || r.Format != m.Image.Format ||
				r.Height != 72 || r.Width != 72 || len(r.Shape) != 3 || r.Shape[0] != 72 || r.Shape[1] != 72 || r.Shape[2] != 3 {
				t.Errorf("%s: tf.data read %+v; manifest says %+v", f.Path, r, f)
			}
			// PNG is lossless, so both must see the same pixels; JPEG decoders
			// may round differently (TensorFlow uses libjpeg-turbo's fast DCT).
			tolerance := 2.0
			if m.Image.Format == "png" {
				tolerance = 0.01
			}
			if d := math.Abs(r.Mean - goMeans[f.Path]); d > tolerance {
				t.Errorf("%s: TensorFlow's mean pixel %.2f, xcept's %.2f", f.Path, r.Mean, goMeans[f.Path])
			}
		}
	}
	for key := range seen {
		t.Errorf("tf.data read %s, which no manifest lists", key)
	}
}

// meanValue is the mean of the RGB channels of RGBA pixels.
func meanValue(pix []uint8) float64 {
	var sum, n float64
	for i := 0; i < len(pix); i += 4 {
		sum += float64(pix[i]) + float64(pix[i+1]) + float64(pix[i+2])
		n += 3
	}
	return sum / n
}
