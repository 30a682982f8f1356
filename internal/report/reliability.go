package report

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/metrics"
)

// Calibration is the report's account of how far the confidence can be
// believed: the probabilities evaluated (calibrated, for a run whose model
// holds a temperature), the same rows at temperature 1 when the
// temperature is known, and the fit on the validation split.
type Calibration struct {
	Temperature float64 `json:"temperature,omitempty"` // 0: unknown (a predictions file, an uncalibrated run)
	Bins        int     `json:"bins"`
	// Evaluated are the scores of the probabilities the model answered
	// (what --max-ece gates).
	Evaluated calibrate.Scores `json:"evaluated"`
	// Uncalibrated are the scores at temperature 1, recovered from the
	// answered probabilities (nil when the temperature is unknown).
	Uncalibrated *calibrate.Scores `json:"uncalibrated,omitempty"`
	Validation   *calibrate.Fit    `json:"validation,omitempty"`
}

// FileReliabilityPNG is the reliability diagram.
const FileReliabilityPNG = "reliability.png"

// calibrationOf scores rows that all carry probabilities; nil otherwise.
func calibrationOf(k int, rows []metrics.Row, temperature float64, fit *calibrate.Fit) (*Calibration, error) {
	probs := make([]float32, 0, len(rows)*k)
	labels := make([]int32, len(rows))
	for i, r := range rows {
		if r.Probs == nil {
			return nil, nil
		}
		for _, p := range r.Probs {
			probs = append(probs, float32(p))
		}
		labels[i] = int32(r.True)
	}
	ev, err := calibrate.Score(probs, labels, k)
	if err != nil {
		return nil, err
	}
	c := &Calibration{Temperature: temperature, Bins: calibrate.Bins, Evaluated: ev, Validation: fit}
	if temperature > 0 {
		raw, err := calibrate.Score(calibrate.Uncalibrate(probs, k, temperature), labels, k)
		if err != nil {
			return nil, err
		}
		c.Uncalibrated = &raw
	}
	return c, nil
}

var (
	calibratedInk   = rgb(0x2ca02c)
	uncalibratedInk = rgb(0xd62728)
	gapInk          = color.RGBA{0xd6, 0x27, 0x28, 60}
	barInk          = color.RGBA{0x2c, 0xa0, 0x2c, 150}
)

// RenderReliability draws the reliability diagram: per confidence bin,
// the accuracy of the evaluated probabilities as bars (the gap to the
// diagonal shaded), the uncalibrated accuracy as a line when known, and a
// strip of bin counts underneath.
func RenderReliability(c *Calibration) *image.RGBA {
	const w, h = 620, 520
	img := newCanvas(w, h)
	title := textStyle{size: 15, bold: true, color: ink}
	tick := textStyle{size: 11.5, color: softInk}
	drawText(img, "Reliability diagram", 18, 14, alignLeft, title)
	plot := image.Rect(70, 50, w-30, h-130)
	counts := image.Rect(plot.Min.X, plot.Max.Y+44, plot.Max.X, h-30)
	px := func(v float64) float64 { return float64(plot.Min.X) + v*float64(plot.Dx()) }
	py := func(v float64) float64 { return float64(plot.Max.Y) - v*float64(plot.Dy()) }
	for i := 0; i <= 5; i++ {
		v := float64(i) / 5
		hline(img, plot.Min.X, plot.Max.X, int(math.Round(py(v))), color.RGBA{0, 0, 0, 18}, 0)
		drawText(img, fmt.Sprintf("%.1f", v), plot.Min.X-6, int(py(v))-textHeight(tick)/2, alignRight, tick)
		vline(img, int(math.Round(px(v))), plot.Max.Y, plot.Max.Y+4, axisInk, 0)
		drawText(img, fmt.Sprintf("%.1f", v), int(px(v)), plot.Max.Y+7, alignCenter, tick)
	}
	drawText(img, "confidence (top probability)", (plot.Min.X+plot.Max.X)/2, plot.Max.Y+8+textHeight(tick), alignCenter, tick)
	drawTextUp(img, "accuracy", 18, (plot.Min.Y+plot.Max.Y)/2+30, tick)
	bins := c.Evaluated.Bins
	peak := 1
	for _, b := range bins {
		peak = max(peak, b.Count)
	}
	for _, b := range bins {
		if b.Count == 0 {
			continue
		}
		x0, x1 := int(math.Round(px(b.Lo)))+1, int(math.Round(px(b.Hi)))-1
		top, mid := int(math.Round(py(b.Accuracy))), int(math.Round(py((b.Lo+b.Hi)/2)))
		fillRect(img, image.Rect(x0, top, x1, plot.Max.Y), barInk)
		fillRect(img, image.Rect(x0, min(top, mid), x1, max(top, mid)), gapInk)
		ch := int(math.Round(float64(b.Count) / float64(peak) * float64(counts.Dy())))
		fillRect(img, image.Rect(x0, counts.Max.Y-ch, x1, counts.Max.Y), color.RGBA{0x88, 0x88, 0x88, 255})
	}
	drawText(img, fmt.Sprintf("images per bin (most: %d)", peak), counts.Min.X, counts.Min.Y-textHeight(tick)-2, alignLeft, tick)
	strokePolyline(img, []pt{{px(0), py(0)}, {px(1), py(1)}}, 1.2, axisInk)
	hline(img, plot.Min.X, plot.Max.X, plot.Max.Y, axisInk, 0)
	vline(img, plot.Min.X, plot.Min.Y, plot.Max.Y, axisInk, 0)
	legendY := plot.Min.Y + 4
	label := "evaluated"
	if c.Temperature > 0 {
		label = fmt.Sprintf("calibrated (T = %.3f)", c.Temperature)
	}
	legend := []struct {
		ink  color.RGBA
		text string
	}{{calibratedInk, fmt.Sprintf("%s: ECE %.4f", label, c.Evaluated.ECE)}}
	if u := c.Uncalibrated; u != nil {
		var pts []pt
		for _, b := range u.Bins {
			if b.Count > 0 {
				pts = append(pts, pt{px((b.Lo + b.Hi) / 2), py(b.Accuracy)})
			}
		}
		strokePolyline(img, pts, 2, uncalibratedInk)
		for _, q := range pts {
			fillDisc(img, q, 3, uncalibratedInk)
		}
		legend = append(legend, struct {
			ink  color.RGBA
			text string
		}{uncalibratedInk, fmt.Sprintf("uncalibrated (T = 1): ECE %.4f", u.ECE)})
	}
	for _, l := range legend {
		fillRect(img, image.Rect(plot.Min.X+10, legendY+4, plot.Min.X+24, legendY+14), l.ink)
		drawText(img, l.text, plot.Min.X+30, legendY, alignLeft, tick)
		legendY += textHeight(tick) + 4
	}
	return img
}
