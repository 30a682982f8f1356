package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/device"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/infer"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/report"
	runs "github.com/xcept/xcept/internal/run"
)

func init() { verbs = append(verbs, NewExplainCmd) }

// ExplainOptions is everything `xcept explain` needs, already validated.
type ExplainOptions struct {
	cli.Output // where and how it prints: text, JSON Lines or quiet
	Run        string
	Paths      []string
	Class      string // class to explain, by name or index; "" for the predicted one
	Out        string // folder of the overlays; "" for RUN/explain
	Batch      int
	Session    graph.SessionOptions
	Limits     infer.Limits
}

// overlayMaxSide bounds the overlay PNG: a 12-megapixel photo's overlay
// would be tens of megabytes and show nothing more.
const overlayMaxSide = 1024

// NewExplainCmd builds `xcept explain`.
func NewExplainCmd(g *Globals) *cobra.Command {
	o := &ExplainOptions{}
	cmd := &cobra.Command{
		Use:   "explain --run runs/NAME IMAGE... [--class C] [--out DIR]",
		Short: "Show where the model looks: a Grad-CAM heatmap over each image",
		Long: `explain computes Grad-CAM in the model graph (the gradient of a class's score
weighted over Xception's last convolutional block, block14_sepconv2_act) with the
run's best checkpoint, and writes NAME.gradcam.png per image to --out (default
RUN/explain): the image with the heatmap laid over it as a colour map, red where
the evidence for the class is, dark blue where there is none. Parts of the image
the model never saw (cut off by a center-crop resize) are greyed.

Images are decoded and resized as prepare did for the run's dataset. --class
explains that class (a name or an index) instead of the predicted one; the
predicted and explained class and their probabilities are printed per image.

Exit codes: 0 done, 2 bad flags or unknown --class, 4 a file could not be read
or a path does not exist, 5 the model failed, 130 interrupted.`,
		Example: `  xcept explain --run runs/flowers photo.jpg
  xcept explain --run runs/flowers --class tulip --out cams photos/`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Paths, o.Output = args, g.Output
			eo, lim, err := inferConfig(g, cmd.Flags())
			if err != nil {
				return err
			}
			o.Session, o.Limits = eo.Session, lim
			switch {
			case o.Run == "":
				return cli.Usagef("--run runs/NAME is required")
			case len(o.Paths) == 0:
				return cli.Usagef("no images: give image files or folders after the flags")
			case o.Batch < 1:
				return cli.Usagef("--batch %d: want 1 or more", o.Batch)
			}
			return runExplain(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	addDeviceFlag(f)
	f.StringVar(&o.Run, "run", "", "run folder (runs/NAME): explain its best checkpoint (required)")
	f.StringVar(&o.Class, "class", "", "class to explain, by name or index (default: the predicted class)")
	f.StringVar(&o.Out, "out", "", "folder for the NAME.gradcam.png overlays (default RUN/explain)")
	f.IntVar(&o.Batch, "batch", 8, "images per model call (Grad-CAM keeps gradients: smaller than predict's)")
	return cmd
}

// explainLine is one image in --json output.
type explainLine struct {
	File                 string           `json:"file"`
	Class                string           `json:"class,omitempty"`
	ClassIndex           *int             `json:"class_index,omitempty"`
	Probability          float64          `json:"probability"`
	Predicted            string           `json:"predicted,omitempty"`
	PredictedProbability float64          `json:"predicted_probability"`
	GradCAM              string           `json:"gradcam,omitempty"`
	Error                *infer.FileError `json:"error,omitempty"`
}

func runExplain(ctx context.Context, o *ExplainOptions) error {
	if _, err := device.Check(o.Session); err != nil { // the runtime.device guard
		return err
	}
	r, err := runs.Open(o.Run)
	if err != nil {
		return err
	}
	info, err := model.ReadInfo(r.Info.Model)
	if err != nil {
		return err
	}
	class, err := parseClass(o.Class, info.Classes)
	if err != nil {
		return err
	}
	m, err := infer.OpenTrainer(r, o.Session)
	if err != nil {
		return err
	}
	defer m.Close()
	out := o.Out
	if out == "" {
		out = r.Path("explain")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return cli.Dataf("--out %s: %v", out, err)
	}
	x := &explainer{o: o, m: m, class: class, fit: resizePolicy(r, o), out: out, names: map[string]bool{}}
	inputs := infer.ExpandPaths(o.Paths)
	for start := 0; start < len(inputs); start += o.Batch {
		if ctx.Err() != nil {
			return cli.Interrupted
		}
		if err := x.batch(inputs[start:min(start+o.Batch, len(inputs))]); err != nil {
			return err
		}
	}
	switch {
	case x.total == 0:
		return cli.Dataf("no images in %s", strings.Join(o.Paths, ", "))
	case x.failed > 0:
		return cli.Dataf("%d of %d images could not be read (listed with their reasons above)", x.failed, x.total)
	}
	return nil
}

// parseClass reads --class as a class name or index.
func parseClass(s string, classes []string) (int32, error) {
	if s == "" {
		return infer.PredictedClass, nil
	}
	for i, c := range classes {
		if c == s {
			return int32(i), nil
		}
	}
	if i, err := strconv.Atoi(s); err == nil && i >= 0 && i < len(classes) {
		return int32(i), nil
	}
	return 0, cli.Usagef("--class %s: not a class of the model (want a name or an index 0-%d: %s)",
		s, len(classes)-1, strings.Join(classes, ", "))
}

// resizePolicy is how the run's dataset resized its images; squash (the
// default, and the serving graph's own) when the dataset is gone.
func resizePolicy(r *runs.Run, o *ExplainOptions) imageio.Fit {
	ds, err := dataset.ReadManifest(r.Info.Dataset)
	if err == nil {
		if fit, err := imageio.ParseFit(ds.Image.Resize); err == nil {
			return fit
		}
	}
	o.Notef("the run's dataset %s cannot be read: resizing images with squash, the default", r.Info.Dataset)
	return imageio.Squash
}

// explainer explains batches of images and writes their overlays.
type explainer struct {
	o             *ExplainOptions
	m             *model.Model
	class         int32
	fit           imageio.Fit
	out           string
	names         map[string]bool // overlay names used, so two photo.jpg do not overwrite each other
	total, failed int
}

func (x *explainer) batch(inputs []infer.Input) error {
	size := x.m.Info.ImageSize
	var images []uint8
	var classes []int32
	type decoded struct {
		in    infer.Input
		img   *image.RGBA
		place infer.Placement
	}
	var ok []decoded
	for _, in := range inputs {
		img, ferr := infer.Decode(in, x.o.Limits)
		if ferr != nil {
			if in.Skippable(ferr) {
				continue
			}
			x.total++
			x.failed++
			if err := x.print(explainLine{File: in.Path, Error: ferr}); err != nil {
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
		return cli.Modelf("explain with %s: %v", x.m.Dir, err)
	}
	for i, d := range ok {
		e := exps[i]
		overlay := report.GradCAMOverlay(d.img, overlayMaxSide, func(px, py float64) (float64, bool) { return e.HeatAt(d.place, px, py) })
		path := x.overlayPath(d.in.Path)
		if err := runs.WriteFile(path, encodePNG(overlay)); err != nil {
			return cli.Dataf("--out %s: %v", x.out, err)
		}
		x.total++
		pred := infer.Argmax(infer.Rows(e.Probs, 1)[0])
		ci := e.Class
		line := explainLine{File: d.in.Path, Class: x.m.Info.Classes[e.Class], ClassIndex: &ci, Probability: float64(e.Probs[e.Class]),
			Predicted: x.m.Info.Classes[pred], PredictedProbability: float64(e.Probs[pred]), GradCAM: path}
		if err := x.print(line); err != nil {
			return err
		}
	}
	return nil
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

func (x *explainer) print(l explainLine) error {
	if x.o.JSON {
		if l.Error != nil { // no probabilities of 0 that were never computed
			return x.o.Line(predictLine{File: l.File, Error: l.Error})
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
