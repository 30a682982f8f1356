package report

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"strconv"
	"strings"

	"github.com/xcept/xcept/internal/metrics"
)

// blues is ColorBrewer's 9-class "Blues" ramp, light to dark: a sequential
// scale that prints in grey and reads for colour-blind people.
var blues = []color.RGBA{
	rgb(0xf7fbff), rgb(0xdeebf7), rgb(0xc6dbef), rgb(0x9ecae1), rgb(0x6baed6),
	rgb(0x4292c6), rgb(0x2171b5), rgb(0x08519c), rgb(0x08306b),
}

// shade is the colour of a row share v. The square root spreads the small
// shares where mistakes live: on a linear scale one error in fifty is as
// white as none.
func shade(v float64) color.RGBA { return ramp(math.Sqrt(math.Max(0, v))) }

// ramp maps v in [0, 1] to a colour of blues by linear interpolation.
func ramp(v float64) color.RGBA {
	v = math.Max(0, math.Min(1, v))
	f := v * float64(len(blues)-1)
	i := int(f)
	if i >= len(blues)-1 {
		return blues[len(blues)-1]
	}
	t := f - float64(i)
	a, b := blues[i], blues[i+1]
	mix := func(x, y uint8) uint8 { return uint8(math.Round(float64(x) + t*(float64(y)-float64(x)))) }
	return color.RGBA{mix(a.R, b.R), mix(a.G, b.G), mix(a.B, b.B), 255}
}

var (
	ink      = rgb(0x222222)
	softInk  = rgb(0x666666)
	gridInk  = color.RGBA{0, 0, 0, 28}
	frameInk = rgb(0x999999)
)

// heatmapLayout holds the sizes that scale with the number of classes, so
// that 2 classes get big annotated cells and 100 still get legible labels.
type heatmapLayout struct {
	cell       int       // cell side in pixels
	label      textStyle // class names
	count      textStyle // the count in a cell
	share      textStyle // the row share under the count
	annotate   bool      // counts fit in cells
	showShare  bool      // row shares fit too
	short      []string  // class names shortened to fit, still distinct
	labelWidth int       // longest short name in pixels
	rotateCols bool      // column labels run bottom to top
}

func layoutFor(k int, names []string) heatmapLayout {
	var l heatmapLayout
	l.cell = clampInt(int(math.Round(760/float64(k))), 15, 110)
	l.label = textStyle{size: math.Min(15, float64(l.cell)*0.72), color: ink}
	l.count = textStyle{size: clampFloat(float64(l.cell)*0.3, 10, 22), bold: true}
	l.share = textStyle{size: clampFloat(float64(l.cell)*0.18, 9, 14)}
	l.annotate = l.cell >= 28
	l.showShare = l.cell >= 60
	l.short = shortLabels(names, labelLimit(k, l.label), l.label)
	for _, n := range l.short {
		l.labelWidth = max(l.labelWidth, textWidth(n, l.label))
		if textWidth(n, l.label) > l.cell-6 {
			l.rotateCols = true
		}
	}
	return l
}

// labelLimit is how wide a class name may be: what 32 average characters
// take with few classes, 18 with many, where labels would dwarf the matrix.
func labelLimit(k int, st textStyle) int {
	chars := 32
	switch {
	case k > 30:
		chars = 18
	case k > 10:
		chars = 24
	}
	return textWidth(strings.Repeat("n", chars), st)
}

// RenderConfusion draws the confusion matrix as an annotated heatmap: rows
// are true classes, columns predicted ones, colour is the share of the true
// class (row-normalised, so small classes show as clearly as big ones) and
// the numbers are counts.
func RenderConfusion(cm *metrics.Confusion) *image.RGBA {
	k := len(cm.Classes)
	l := layoutFor(k, cm.Classes)
	norm := cm.Normalized()
	short := l.short

	title := textStyle{size: 17, bold: true, color: ink}
	note := textStyle{size: 12.5, color: softInk}
	axis := textStyle{size: 14, bold: true, color: ink}
	const margin = 18
	matrix := l.cell * k
	colLabelsH := textHeight(l.label) + 6
	if l.rotateCols {
		colLabelsH = l.labelWidth + 8
	}
	subtitle := fmt.Sprintf("%d samples, %d classes. Colour: share of the true class (square-root scale); numbers: counts.", cm.Total(), k)
	top := margin + textHeight(title) + 4 + textHeight(note) + 14
	left := margin + textHeight(axis) + 8 + l.labelWidth + 8
	barW := 16
	barLabel := textWidth("100%", note)
	width := max(left+matrix+24+barW+6+barLabel+margin, margin+textWidth(subtitle, note)+margin)
	height := top + matrix + colLabelsH + textHeight(axis) + 8 + margin
	img := newCanvas(width, height)

	drawText(img, "Confusion matrix", margin, margin, alignLeft, title)
	drawText(img, subtitle, margin, margin+textHeight(title)+4, alignLeft, note)

	for t := range k {
		for p := range k {
			r := image.Rect(left+p*l.cell, top+t*l.cell, left+(p+1)*l.cell, top+(t+1)*l.cell)
			fillRect(img, r, shade(norm[t][p]))
			if l.annotate {
				annotateCell(img, r, cm.Counts[t][p], norm[t][p], l)
			}
		}
	}
	drawGrid(img, left, top, k, l.cell)

	// Row labels, right-aligned against the matrix, centred on their row.
	for t := range k {
		y := top + t*l.cell + (l.cell-textHeight(l.label))/2
		drawText(img, short[t], left-8, y, alignRight, l.label)
	}
	// Column labels under the matrix.
	for p := range k {
		cx := left + p*l.cell + l.cell/2
		if l.rotateCols {
			drawTextUp(img, short[p], cx-textHeight(l.label)/2, top+matrix+6+textWidth(short[p], l.label), l.label)
		} else {
			drawText(img, short[p], cx, top+matrix+6, alignCenter, l.label)
		}
	}
	drawText(img, "Predicted class", left+matrix/2, top+matrix+colLabelsH+4, alignCenter, axis)
	trueTitle := "True class"
	drawTextUp(img, trueTitle, margin, top+matrix/2+textWidth(trueTitle, axis)/2, axis)
	drawColourBar(img, left+matrix+24, top, barW, min(matrix, 320), note)
	return img
}

// annotateCell writes the count (and the row share when there is room),
// white on dark cells; zero counts are faint so the eye finds the mistakes.
func annotateCell(img *image.RGBA, r image.Rectangle, n int64, share float64, l heatmapLayout) {
	fg := color.Color(ink)
	if math.Sqrt(share) > 0.6 {
		fg = color.White
	}
	if n == 0 {
		fg = color.RGBA{0, 0, 0, 60}
	}
	count := l.count
	count.color = fg
	s := strconv.FormatInt(n, 10)
	for count.size > 8 && textWidth(s, count) > r.Dx()-4 {
		count.size--
	}
	if textWidth(s, count) > r.Dx()-2 {
		return // even the smallest size overflows: leave the colour to speak
	}
	cy := r.Min.Y + r.Dy()/2
	if l.showShare && n > 0 {
		sh := l.share
		sh.color = fg
		h := textHeight(count) + textHeight(sh)
		drawText(img, s, r.Min.X+r.Dx()/2, cy-h/2, alignCenter, count)
		drawText(img, fmt.Sprintf("%.0f%%", share*100), r.Min.X+r.Dx()/2, cy-h/2+textHeight(count), alignCenter, sh)
		return
	}
	drawText(img, s, r.Min.X+r.Dx()/2, cy-textHeight(count)/2, alignCenter, count)
}

// drawGrid separates cells with faint lines (white cells would merge) and
// frames the matrix.
func drawGrid(img *image.RGBA, left, top, k, cell int) {
	side := k * cell
	for i := 1; i < k; i++ {
		hline(img, left, left+side-1, top+i*cell, gridInk, 0)
		vline(img, left+i*cell, top, top+side-1, gridInk, 0)
	}
	hline(img, left-1, left+side, top-1, frameInk, 0)
	hline(img, left-1, left+side, top+side, frameInk, 0)
	vline(img, left-1, top-1, top+side, frameInk, 0)
	vline(img, left+side, top-1, top+side, frameInk, 0)
}

// drawColourBar is the legend of the colour scale, 0% at the bottom, with
// ticks where shade puts them.
func drawColourBar(img *image.RGBA, x, y, w, h int, st textStyle) {
	for j := 0; j < h; j++ {
		fillRect(img, image.Rect(x, y+j, x+w, y+j+1), ramp(1-float64(j)/float64(h-1)))
	}
	hline(img, x-1, x+w, y-1, frameInk, 0)
	hline(img, x-1, x+w, y+h, frameInk, 0)
	vline(img, x-1, y-1, y+h, frameInk, 0)
	vline(img, x+w, y-1, y+h, frameInk, 0)
	for _, v := range []float64{0, 0.05, 0.25, 0.5, 1} {
		ty := y + int(math.Round((1-math.Sqrt(v))*float64(h-1)))
		hline(img, x+w, x+w+3, ty, frameInk, 0)
		drawText(img, fmt.Sprintf("%.0f%%", v*100), x+w+6, ty-textHeight(st)/2, alignLeft, st)
	}
}

func clampInt(v, lo, hi int) int { return max(lo, min(hi, v)) }

func clampFloat(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }
