// Package explain is `xcept explain`: Grad-CAM with a run's best
// checkpoint over image files, one overlay PNG and one printed line per
// image. The command only turns flags into Options.
package explain

import (
	"context"
	"os"
	"strconv"
	"strings"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/device"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/infer"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/run"
)

// Options is everything an explanation needs. Validate checks them.
type Options struct {
	cli.Output // where and how it prints: text, JSON Lines or quiet
	Run        string
	Paths      []string // image files and folders
	Class      string   // class to explain, by name or index; "" for the predicted one
	Out        string   // folder of the overlays; "" for RUN/explain
	Batch      int      // images per model call
	Session    graph.SessionOptions
	Limits     infer.Limits
}

// OverlayMaxSide bounds the overlay PNG: a 12-megapixel photo's overlay
// would be tens of megabytes and show nothing more.
const OverlayMaxSide = 1024

// Validate checks the options, naming the option at fault (fault.Option:
// the command layer names its flag).
func (o *Options) Validate() error {
	switch {
	case o.Run == "":
		return fault.New(fault.BadValue, "%s runs/NAME is required", fault.Option("run"))
	case len(o.Paths) == 0:
		return fault.New(fault.BadValue, "no images: give image files or folders after the flags")
	case o.Batch < 1:
		return fault.New(fault.BadValue, "%s %d: want 1 or more", fault.Option("batch"), o.Batch)
	}
	return nil
}

// Run explains every image of o.Paths, o.Batch at a time, writing the
// overlays and printing one line per image. An image that cannot be read
// is printed with its reason and makes Run fail at the end.
func Run(ctx context.Context, o Options) error {
	if _, err := device.Check(o.Session); err != nil { // the runtime.device guard
		return err
	}
	r, err := run.Open(o.Run)
	if err != nil {
		return err
	}
	info, err := model.ReadInfo(r.Info.Model)
	if err != nil {
		return err
	}
	class, err := ParseClass(o.Class, info.Classes)
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
		return fault.About(fault.CannotWrite, fault.OutFolder, out, "%v", err)
	}
	x := &explainer{o: o, m: m, class: class, fit: resizePolicy(r, o.Output), out: out, names: map[string]bool{}}
	inputs := infer.ExpandPaths(o.Paths)
	for start := 0; start < len(inputs); start += o.Batch {
		if ctx.Err() != nil {
			return fault.ErrInterrupted
		}
		if err := x.batch(inputs[start:min(start+o.Batch, len(inputs))]); err != nil {
			return err
		}
	}
	switch {
	case x.total == 0:
		return fault.New(fault.BadData, "no images in %s", strings.Join(o.Paths, ", "))
	case x.failed > 0:
		return fault.New(fault.BadData, "%d of %d images could not be read (listed with their reasons above)", x.failed, x.total)
	}
	return nil
}

// ParseClass reads --class as a class name or index; "" is the predicted
// class (infer.PredictedClass).
func ParseClass(s string, classes []string) (int32, error) {
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
	return 0, fault.New(fault.BadValue, "%s %s: not a class of the model (want a name or an index 0-%d: %s)",
		fault.Option("class"), s, len(classes)-1, strings.Join(classes, ", "))
}

// resizePolicy is how the run's dataset resized its images; squash (the
// default, and the serving graph's own) when the dataset is gone.
func resizePolicy(r *run.Run, out cli.Output) imageio.Fit {
	ds, err := dataset.ReadManifest(r.Info.Dataset)
	if err == nil {
		if fit, err := imageio.ParseFit(ds.Image.Resize); err == nil {
			return fit
		}
	}
	out.Notef("the run's dataset %s cannot be read: resizing images with squash, the default", r.Info.Dataset)
	return imageio.Squash
}
