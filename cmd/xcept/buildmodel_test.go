package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/testenv"
)

// TestImageNetWeightsOfflineIsOneLine: --weights imagenet keeps its real
// behaviour (Keras's cache, then a download; the real-weights fixture is
// never put in Keras's cache). With an empty cache and no network, as
// here and in CI, xcept fails within seconds with one error line naming the
// way out, exit 5, and leaves no model folder. (-q: without it the build's
// progress lines, Keras's "Downloading data from" among them, come first.)
func TestImageNetWeightsOfflineIsOneLine(t *testing.T) {
	testenv.Python(t)
	if err := graph.Load(); err != nil {
		testenv.Unavailable(t, err.Error())
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "model")
	started := time.Now()
	code, _, stderr := runXcept(t, map[string]string{"KERAS_HOME": filepath.Join(dir, "keras")},
		"-q", "build-model", "--out", out, "--classes", "a,b", "--image-size", "71", "--weights", "imagenet")
	elapsed := time.Since(started)
	if code == cli.ExitOK {
		t.Skip("this machine can download Keras's ImageNet weights: the offline path is not reachable here")
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != cli.ExitModel || len(lines) != 1 ||
		!strings.Contains(lines[0], "cannot download the ImageNet weights for Xception (") ||
		!strings.Contains(lines[0], "pass --weights PATH.h5 (Keras Xception notop weights) or --weights none") ||
		strings.Contains(lines[0], "http") {
		t.Errorf("exit %d, stderr %q; want exit %d and one line with the reason and the way out", code, stderr, cli.ExitModel)
	}
	t.Logf("offline --weights imagenet failed in %.1f s: %s", elapsed.Seconds(), lines[0])
	if elapsed > 90*time.Second {
		t.Errorf("took %.0f s: an offline machine must fail fast", elapsed.Seconds())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s exists after a failed build (%v)", out, err)
	}
}
