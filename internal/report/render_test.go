package report

import (
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/xcept/xcept/internal/metrics"
)

// TestChromiumRendersReport opens report.html in headless Chromium through
// scripts/render_html.sh, offline, and checks the screenshot shows the
// embedded heatmap: its darkest blue only comes from the data: URI image.
func TestChromiumRendersReport(t *testing.T) {
	if _, err := exec.LookPath("chromium"); err != nil {
		// CI installs Debian's chromium and sets XCEPT_TEST_CHROMIUM=1, so
		// there this test cannot pass by skipping; a developer may lack it.
		if os.Getenv("XCEPT_TEST_CHROMIUM") == "1" {
			t.Fatal("chromium not installed although XCEPT_TEST_CHROMIUM=1")
		}
		t.Skip("chromium not installed (apt-get install chromium)")
	}
	names := []string{"cat", "dog", "owl"}
	rows := []metrics.Row{{True: 0, Pred: 0}, {True: 1, Pred: 1}, {True: 2, Pred: 2}, {True: 2, Pred: 1}}
	out := outDir(t, "report-chromium")
	if _, err := Write(Input{Classes: names, Rows: rows, OutDir: out, Source: "chromium test"}); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(out, "screenshot.png")
	cmd := exec.Command(filepath.Join("..", "..", "scripts", "render_html.sh"), filepath.Join(out, FileReportHTML), shot, "1300", "1600")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("render_html.sh: %v\n%s", err, msg)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Bounds().Size(); got != image.Pt(1300, 1600) {
		t.Errorf("screenshot is %v, want 1300×1600", got)
	}
	dark := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			d := blues[len(blues)-1]
			if near(r, d.R) && near(g, d.G) && near(bl, d.B) {
				dark++
			}
		}
	}
	// Two fully right classes: two dark cells of at least 60×60 pixels,
	// less their annotations, at whatever scale the page shows them.
	if dark < 2000 {
		t.Errorf("%d pixels of the heatmap's darkest blue in the screenshot: the embedded image did not render", dark)
	}
}

func near(v uint32, want uint8) bool {
	d := int(v>>8) - int(want)
	return d >= -3 && d <= 3
}
