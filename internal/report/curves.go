package report

import (
	"image"
	"image/color"
	"math"
	"strconv"
	"strings"
)

// Series colours: matplotlib's first two, which people read as train and
// validation without a legend lookup.
var (
	trainInk = rgb(0x1f77b4)
	valInk   = rgb(0xff7f0e)
	axisInk  = rgb(0x888888)
	phaseInk = color.RGBA{0x70, 0x70, 0x70, 255}
)

const (
	panelW = 560
	panelH = 340
)

// RenderCurves draws one chart per metric (its validation twin on the same
// axes), two charts to a row, with dashed lines where the phase changes
// (feature extraction, then fine-tuning).
func RenderCurves(h *History) *image.RGBA {
	panels := h.panels()
	cols := min(2, max(1, len(panels)))
	rows := (len(panels) + cols - 1) / cols
	title := textStyle{size: 17, bold: true, color: ink}
	const margin = 18
	top := margin + textHeight(title) + 8
	img := newCanvas(margin*2+cols*panelW, top+rows*panelH+margin)
	drawText(img, "Training history", margin, margin, alignLeft, title)
	for i, p := range panels {
		x := margin + (i%cols)*panelW
		y := top + (i/cols)*panelH
		drawPanel(img, image.Rect(x, y, x+panelW, y+panelH), h, p)
	}
	return img
}

// axisScale maps data values to pixels along one axis.
type axisScale struct {
	lo, hi   float64 // data range (log10 of it when log)
	p0, p1   float64 // pixel range
	log      bool
	ticks    []float64
	decimals int
}

func (s axisScale) pixel(v float64) float64 {
	if s.log {
		if v <= 0 {
			return math.NaN()
		}
		v = math.Log10(v)
	}
	return s.p0 + (v-s.lo)/(s.hi-s.lo)*(s.p1-s.p0)
}

func (s axisScale) label(t float64) string {
	if s.log {
		return "1e" + strconv.Itoa(int(math.Round(t)))
	}
	return strconv.FormatFloat(t, 'f', s.decimals, 64)
}

// tickPixel places a tick, whose value is already log10 on a log axis.
func (s axisScale) tickPixel(t float64) float64 {
	return s.p0 + (t-s.lo)/(s.hi-s.lo)*(s.p1-s.p0)
}

func drawPanel(img *image.RGBA, r image.Rectangle, h *History, p panel) {
	head := textStyle{size: 14, bold: true, color: ink}
	tick := textStyle{size: 11.5, color: softInk}
	plot := image.Rect(r.Min.X+62, r.Min.Y+30, r.Max.X-18, r.Max.Y-44)
	drawText(img, strings.ReplaceAll(p.title, "_", " "), r.Min.X+8, r.Min.Y+4, alignLeft, head)
	drawLegend(img, r.Max.X-18, r.Min.Y+8, p)

	var all []float64
	for _, name := range p.series {
		all = append(all, h.Values[name]...)
	}
	// Leave a strip at the top for phase names, so no curve runs under them.
	ys := valueScale(all, float64(plot.Max.Y), float64(plot.Min.Y+phaseStrip(h)))
	xs := epochScale(h.Epochs, float64(plot.Min.X), float64(plot.Max.X))

	// Axes, grid and tick labels.
	for _, t := range ys.ticks {
		py := int(math.Round(ys.tickPixel(t)))
		hline(img, plot.Min.X, plot.Max.X, py, color.RGBA{0, 0, 0, 18}, 0)
		drawText(img, ys.label(t), plot.Min.X-6, py-textHeight(tick)/2, alignRight, tick)
	}
	for _, t := range xs.ticks {
		px := int(math.Round(xs.tickPixel(t)))
		vline(img, px, plot.Max.Y, plot.Max.Y+4, axisInk, 0)
		drawText(img, xs.label(t), px, plot.Max.Y+7, alignCenter, tick)
	}
	drawText(img, "epoch", (plot.Min.X+plot.Max.X)/2, plot.Max.Y+8+textHeight(tick), alignCenter, tick)
	hline(img, plot.Min.X, plot.Max.X, plot.Max.Y, axisInk, 0)
	vline(img, plot.Min.X, plot.Min.Y, plot.Max.Y, axisInk, 0)
	drawPhases(img, plot, h, xs)

	for _, name := range p.series {
		ink := trainInk
		if strings.HasPrefix(name, "val_") {
			ink = valInk
		}
		vals := h.Values[name]
		pts := make([]pt, len(vals))
		for i, v := range vals {
			pts[i] = pt{xs.pixel(h.Epochs[i]), ys.pixel(v)}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				pts[i] = pt{math.NaN(), math.NaN()}
			}
		}
		strokePolyline(img, pts, 2.2, ink)
		if len(pts) <= 40 {
			for _, q := range pts {
				if !math.IsNaN(q.y) {
					fillDisc(img, q, 3.2, ink)
				}
			}
		}
	}
}

// drawLegend names the series at the top right of a panel; a lone metric
// with no validation twin (a learning rate) needs none.
func drawLegend(img *image.RGBA, right, y int, p panel) {
	if len(p.series) == 1 && !strings.HasPrefix(p.series[0], "val_") {
		return
	}
	st := textStyle{size: 12, color: softInk}
	x := right
	for i := len(p.series) - 1; i >= 0; i-- {
		name, ink := "train", trainInk
		if strings.HasPrefix(p.series[i], "val_") {
			name, ink = "validation", valInk
		}
		x -= textWidth(name, st)
		drawText(img, name, x, y, alignLeft, st)
		x -= 24
		cy := float64(y + textHeight(st)/2)
		strokePolyline(img, []pt{{float64(x), cy}, {float64(x + 18), cy}}, 2.2, ink)
		x -= 14
	}
}

// phaseStrip is the height kept free for phase names: none with one phase.
func phaseStrip(h *History) int {
	if len(distinctPhases(h)) < 2 {
		return 0
	}
	return 16
}

func distinctPhases(h *History) map[string]bool {
	distinct := map[string]bool{}
	for _, ph := range h.Phases {
		distinct[ph] = true
	}
	return distinct
}

// drawPhases marks where the phase changes with a dashed line and names
// each phase at its start, when the history has more than one.
func drawPhases(img *image.RGBA, plot image.Rectangle, h *History, xs axisScale) {
	st := textStyle{size: 11, color: phaseInk}
	if len(distinctPhases(h)) < 2 {
		return
	}
	start := plot.Min.X + 4
	for i, ph := range h.Phases {
		if i > 0 && ph != h.Phases[i-1] {
			bx := int(math.Round((xs.pixel(h.Epochs[i-1]) + xs.pixel(h.Epochs[i])) / 2))
			vline(img, bx, plot.Min.Y, plot.Max.Y, phaseInk, 4)
			start = bx + 4
		}
		if i == 0 || ph != h.Phases[i-1] {
			drawText(img, ph, start, plot.Min.Y+2, alignLeft, st)
		}
	}
}

// valueScale fits the finite values with 5% headroom and round ticks; a
// positive series spanning 20× or more (a learning-rate schedule) gets a
// log axis.
func valueScale(vals []float64, p0, p1 float64) axisScale {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0, 1
	}
	s := axisScale{p0: p0, p1: p1}
	if lo > 0 && hi/lo >= 20 {
		s.log = true
		s.lo, s.hi = math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
		for t := s.lo; t <= s.hi; t++ {
			s.ticks = append(s.ticks, t)
		}
		return s
	}
	if hi == lo {
		pad := math.Max(math.Abs(lo)*0.1, 0.05)
		lo, hi = lo-pad, hi+pad
	}
	pad := (hi - lo) * 0.05
	s.lo, s.hi = lo-pad, hi+pad
	step := niceStep((s.hi - s.lo) / 6)
	s.decimals = max(0, -int(math.Floor(math.Log10(step)+1e-9)))
	s.ticks = ticks(s.lo, s.hi, step)
	return s
}

// ticks are the multiples of step in [lo, hi], computed from integers so
// that no rounding drift prints "-0.00" or skips the last one.
func ticks(lo, hi, step float64) []float64 {
	var out []float64
	for i := math.Ceil(lo/step - 1e-9); i*step <= hi+step*1e-9; i++ {
		out = append(out, i*step+0) // +0 turns -0 into 0
	}
	return out
}

// epochScale spans the epochs with integer ticks.
func epochScale(x []float64, p0, p1 float64) axisScale {
	lo, hi := x[0], x[len(x)-1]
	if hi == lo {
		lo, hi = lo-1, hi+1
	}
	pad := (hi - lo) * 0.03
	s := axisScale{lo: lo - pad, hi: hi + pad, p0: p0, p1: p1}
	step := math.Max(1, niceStep((hi-lo)/8))
	s.decimals = max(0, -int(math.Floor(math.Log10(step)+1e-9)))
	s.ticks = ticks(lo, hi, step)
	return s
}

// niceStep rounds a raw tick step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*e {
			return m * e
		}
	}
	return 10 * e
}
