package serve_test

// An external test package: internal/infer (xcept predict's engine)
// imports serve, so only from outside can both be compared.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"

	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/infer"
	"github.com/xcept/xcept/internal/serve"
	"github.com/xcept/xcept/internal/testmodel"
)

func encodeAs(t *testing.T, img image.Image, format string) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch format {
	case "jpeg":
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85})
	case "png":
		err = png.Encode(&buf, img)
	case "gif":
		err = gif.Encode(&buf, img, nil)
	case "bmp":
		err = bmp.Encode(&buf, img)
	case "tiff":
		err = tiff.Encode(&buf, img, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rotated inserts an EXIF segment with orientation 6 (rotate 90° clockwise to view).
func rotated(jpg []byte) []byte {
	exif := append([]byte("Exif\x00\x00"), 'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0)
	seg := append([]byte{0xFF, 0xE1, 0, byte(len(exif) + 2)}, exif...)
	return append(append(append([]byte{}, jpg[:2]...), seg...), jpg[2:]...)
}

func picture(w, h, seed int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x*5 + seed), uint8(y * 3), uint8((x * y) >> 3), 255})
		}
	}
	return img
}

// The same files answer the same through xcept serve as through xcept
// predict's engine (infer: its file-to-feed rule and its serving_default
// run), for every format and an EXIF-rotated photo.
func TestServeAnswersLikePredict(t *testing.T) {
	dir := testmodel.TinyServingExport(t)
	opts := graph.SessionOptions{IntraOpThreads: 2, InterOpThreads: 1}
	files := map[string][]byte{}
	for i, f := range []string{"jpeg", "png", "gif", "bmp", "tiff"} {
		files[f] = encodeAs(t, picture(90+7*i, 70+5*i, i), f)
	}
	files["rotated jpeg"] = rotated(files["jpeg"])
	names := []string{"jpeg", "png", "gif", "bmp", "tiff", "rotated jpeg"}

	sv, err := infer.OpenSavedModel(dir, opts, false)
	if err != nil {
		t.Fatal(err)
	}
	feeds := make([][]byte, len(names))
	for i, n := range names {
		if feeds[i], _, err = infer.Encoded(files[n], imageio.Limits{}); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
	want, err := sv.Predict(feeds)
	sv.Close()
	if err != nil {
		t.Fatal(err)
	}

	s, err := serve.New(serve.Config{
		Dir: dir, Name: "tiny",
		Batch:   serve.BatchConfig{MaxBatch: 8, Timeout: time.Millisecond, Workers: 1, MaxQueue: 16},
		Timeout: time.Minute, MaxBodyBytes: 1 << 24, Limits: serve.Limits{MaxPixels: 1 << 24},
	}, serve.SavedModelLoader(opts, false))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	var items []string
	for _, n := range names {
		items = append(items, `{"b64": "`+base64.StdEncoding.EncodeToString(files[n])+`"}`)
	}
	resp, err := http.Post(ts.URL+"/v1/models/tiny:predict", "application/json",
		strings.NewReader(`{"instances": [`+strings.Join(items, ",")+`]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Predictions []struct {
			Probabilities []float32 `json:"probabilities"`
		} `json:"predictions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 || len(got.Predictions) != len(names) {
		t.Fatalf("status %d, %v, %d predictions", resp.StatusCode, err, len(got.Predictions))
	}
	classes := len(want) / len(names)
	for i, n := range names {
		for c, p := range got.Predictions[i].Probabilities {
			if d := math.Abs(float64(p - want[i*classes+c])); d > 1e-6 {
				t.Errorf("%s: class %d: serve %v, predict %v", n, c, p, want[i*classes+c])
			}
		}
	}
}
