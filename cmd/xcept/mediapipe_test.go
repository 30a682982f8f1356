package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xcept/xcept/internal/export"
	"github.com/xcept/xcept/internal/pyenv"
	"github.com/xcept/xcept/internal/testenv"
)

// checkMediaPipe: MediaPipe Tasks' real ImageClassifier, created from an
// exported .tflite through its TFLite Model Metadata, reads back the name and
// labels and names the same top-1 class as `xcept predict` on the 9 kitchen
// photos and 30 demo images (at least 95% of those xcept does not call a
// near-tie). TestExportTFLite runs it
// on its float32 and int8 exports.
func checkMediaPipe(t *testing.T, runDir string, res *export.Result) {
	t.Helper()
	mp, err := pyenv.MediaPipePython()
	if err != nil {
		testenv.Unavailable(t, err.Error())
		return
	}
	if !res.TFLiteMetadata {
		t.Fatalf("export.json: tflite_metadata false with %s there", mp)
	}
	images := mediapipeImages(t)
	started := time.Now()
	code, lines, stderr := predictJSON(t, append([]string{"--run", runDir}, images...)...)
	if code != 0 || len(lines) != len(images) {
		t.Fatalf("xcept predict: exit %d, %d lines for %d images: %s", code, len(lines), len(images), stderr)
	}
	// MediaPipe resizes the photo with its own resampler, which moves the
	// probabilities a little: where xcept's top two classes are within
	// nearTie of each other, either answer is right (the test model is small
	// and the kitchen photos are of none of its classes).
	const nearTie = 0.1
	want, decisive := map[string]string{}, map[string]bool{}
	for _, l := range lines {
		want[l.File] = l.Top[0].Name
		decisive[l.File] = len(l.Top) < 2 || l.Top[0].Probability-l.Top[1].Probability >= nearTie
	}
	script, err := pyenv.ScriptPath("mediapipe_classify.py")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(mp, append([]string{script, "--model", res.Artefact}, images...)...).Output()
	if err != nil {
		t.Fatalf("mediapipe_classify.py: %v", err)
	}
	rows := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(rows) < len(images)+1 {
		t.Fatalf("mediapipe_classify.py printed %d lines for %d images", len(rows), len(images))
	}
	rows = rows[len(rows)-len(images)-1:]
	var meta struct {
		Metadata struct {
			Name        string `json:"name"`
			Description string `json:"description"`
		} `json:"metadata"`
		Files  []string `json:"files"`
		Labels []string `json:"labels"`
	}
	if err := json.Unmarshal([]byte(rows[0]), &meta); err != nil {
		t.Fatalf("metadata line %q: %v", rows[0], err)
	}
	if meta.Metadata.Name != "shapes" || !slices.Equal(meta.Files, []string{"labels.txt"}) || !slices.Equal(meta.Labels, []string{"circle", "square", "triangle"}) {
		t.Errorf("metadata read back: %s", rows[0])
	}
	if c := res.Calibration; c == nil || c.Reject == nil ||
		!strings.Contains(meta.Metadata.Description, `answer "unknown" below `+c.Reject.Describe()) {
		t.Errorf("the description %q does not give the calibration %+v", meta.Metadata.Description, c)
	}
	same, counted := 0, 0
	var differ, ties []string
	for _, row := range rows[1:] {
		var got struct {
			File  string `json:"file"`
			Class string `json:"class"`
		}
		if err := json.Unmarshal([]byte(row), &got); err != nil {
			t.Fatalf("line %q: %v", row, err)
		}
		name := filepath.Base(got.File) + ": " + got.Class + " vs " + want[got.File]
		switch {
		case !decisive[got.File]:
			if got.Class != want[got.File] {
				ties = append(ties, name)
			}
		case got.Class == want[got.File]:
			same, counted = same+1, counted+1
		default:
			counted++
			differ = append(differ, name)
		}
	}
	rate := float64(same) / float64(counted)
	t.Logf("%s: MediaPipe ImageClassifier agrees with xcept predict on %d of the %d images whose top two classes are %.2f or more apart (%.1f%%), in %.1fs (predict + MediaPipe); differ: %v; %d near-ties, flipped: %v",
		filepath.Base(res.Artefact), same, counted, nearTie, 100*rate, time.Since(started).Seconds(), differ, len(images)-counted, ties)
	if counted < len(images)*2/3 {
		t.Fatalf("only %d of %d images have a decisive top-1: the comparison would prove little", counted, len(images))
	}
	if rate < 0.95 {
		t.Errorf("MediaPipe's top-1 equals xcept predict's on %.1f%% of %d decisive images, want ≥ 95%%; differ: %v", 100*rate, counted, differ)
	}
}

// mediapipeImages are the 9 real kitchen photos and the demo dataset's
// images (every fourth: shapes of three classes, 96 px PNG/JPEG).
func mediapipeImages(t *testing.T) []string {
	t.Helper()
	var images []string
	for _, root := range []string{testenv.KitchenPhotos(t), filepath.Join(filepath.Dir(trainDataset(t)), "images")} {
		n := 0
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if n++; root == testenv.KitchenPhotos(t) || n%4 == 0 {
				images = append(images, path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return images
}
