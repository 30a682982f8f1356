package explain

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"io"
	"path/filepath"
	"strings"

	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/infer"
	"github.com/xcept/xcept/internal/metrics"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/report"
	"github.com/xcept/xcept/internal/run"
)

// Line is one image in --json output.
type Line struct {
	File                 string           `json:"file"`
	Class                string           `json:"class,omitempty"`
	ClassIndex           *int             `json:"class_index,omitempty"`
	Probability          float64          `json:"probability"`
	Predicted            string           `json:"predicted,omitempty"`
	PredictedProbability float64          `json:"predicted_probability"`
	GradCAM              string           `json:"gradcam,omitempty"`
	Error                *infer.FileError `json:"error,omitempty"`
}

// errorLine is an image that could not be read, in --json output: the
// file and the error, as predict prints it.
type errorLine struct {
	File  string           `json:"file"`
	Error *infer.FileError `json:"error"`
}

// explainer explains batches of images and writes their overlays.
type explainer struct {
	o             Options
	m             *model.Model
	class         int32
	fit           imageio.Fit
	out           string
	names         map[string]bool // overlay names used, so two photo.jpg do not overwrite each other
	total, failed int
}

// decoded is an image read and placed in the model's square input.
type decoded struct {
	in    infer.Input
	img   *image.RGBA
	place infer.Placement
}

func (x *explainer) batch(inputs []infer.Input) error {
	size := x.m.Info.ImageSize
	var images []uint8
	var classes []int32
	var ok []decoded
	for _, in := range inputs {
		img, ferr := infer.Decode(in, x.o.Limits)
		if ferr != nil {
			if in.Skippable(ferr) {
				continue
			}
			x.total++
			x.failed++
			if err := x.print(Line{File: in.Path, Error: ferr}); err != nil {
				return err
			}
			continue
		}
		images = append(images, infer.Square(img, size, x.fit)...)
		classes = append(classes, x.class)
		ok = append(ok, decoded{in, img, infer.Place(img.Rect.Dx(), img.Rect.Dy(), size, x.fit)})
	}
	if len(ok) == 0 {
		return nil
	}
	exps, err := infer.Explain(x.m, images, classes)
	if err != nil {
		return fault.New(fault.ToolFailed, "explain with %s: %v", x.m.Dir, err)
	}
	for i, d := range ok {
		if err := x.write(d, exps[i]); err != nil {
			return err
		}
	}
	return nil
}

// write writes one image's overlay and prints its line.
func (x *explainer) write(d decoded, e infer.Explanation) error {
	overlay := report.GradCAMOverlay(d.img, OverlayMaxSide, func(px, py float64) (float64, bool) { return e.HeatAt(d.place, px, py) })
	path := x.overlayPath(d.in.Path)
	if err := run.WriteFile(path, encodePNG(overlay)); err != nil {
		return fault.About(fault.CannotWrite, fault.OutFolder, x.out, "%v", err)
	}
	x.total++
	pred := metrics.Argmax(infer.Rows(e.Probs, 1)[0])
	ci := e.Class
	return x.print(Line{File: d.in.Path, Class: x.m.Info.Classes[e.Class], ClassIndex: &ci, Probability: float64(e.Probs[e.Class]),
		Predicted: x.m.Info.Classes[pred], PredictedProbability: float64(e.Probs[pred]), GradCAM: path})
}

// overlayPath is OUT/NAME.gradcam.png, or NAME-2, NAME-3... when this
// command already wrote NAME (two photo.jpg in different folders).
func (x *explainer) overlayPath(src string) string {
	base := strings.TrimSuffix(filepath.Base(src), filepath.Ext(src))
	name := base
	for n := 2; x.names[name]; n++ {
		name = fmt.Sprintf("%s-%d", base, n)
	}
	x.names[name] = true
	return filepath.Join(x.out, name+".gradcam.png")
}

func encodePNG(img image.Image) []byte {
	var buf bytes.Buffer
	png.Encode(&buf, img) // an in-memory RGBA cannot fail to encode
	return buf.Bytes()
}

func (x *explainer) print(l Line) error {
	if x.o.JSON {
		if l.Error != nil { // no probabilities of 0 that were never computed
			return x.o.Line(errorLine{File: l.File, Error: l.Error})
		}
		return x.o.Line(l)
	}
	var s string
	switch {
	case l.Error != nil:
		s = fmt.Sprintf("%s: error: %s (%s)\n", l.File, l.Error.Reason, l.Error.Detail)
	case l.Class == l.Predicted:
		s = fmt.Sprintf("%s: %s %.4f -> %s\n", l.File, l.Class, l.Probability, l.GradCAM)
	default:
		s = fmt.Sprintf("%s: explained %s %.4f (predicted %s %.4f) -> %s\n", l.File, l.Class, l.Probability, l.Predicted, l.PredictedProbability, l.GradCAM)
	}
	_, err := io.WriteString(x.o.Stdout, s)
	return err
}
