package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/demodata"
	"github.com/xcept/xcept/internal/fault"
)

func init() { verbs = append(verbs, NewDemoDataCmd) }

// DemoDataOptions is everything `xcept demo-data` needs.
type DemoDataOptions struct {
	Out string
	Gen demodata.Options
}

// demoMarker marks a folder made by demo-data, the only kind of non-empty
// folder demo-data replaces. Hidden, so prepare ignores it.
const demoMarker = ".xcept-demo"

// NewDemoDataCmd builds `xcept demo-data`.
func NewDemoDataCmd(g *Globals) *cobra.Command {
	o := DemoDataOptions{Gen: demodata.Defaults()}
	var size string
	var seed int64
	cmd := &cobra.Command{
		Use:   "demo-data --out DIR",
		Short: "Write a small deterministic image folder of learnable classes, for demos and tests",
		Long: `demo-data writes --per-class images for each of --classes classes: a shape in a
colour (circle/red, square/green, triangle/blue, ...) at a random position, size
and angle on a noisy background. The same flags give the same bytes everywhere.
With --quadrant the shape stays inside one quadrant, named in the file name
(..._q0 top-left, q1 top-right, q2 bottom-left, q3 bottom-right).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w, h, err := parseSize(size)
			if err != nil {
				return cli.Usagef("--size %q: %v", size, err)
			}
			if seed < 0 {
				return cli.Usagef("--seed %d: choose 0 or more", seed)
			}
			o.Gen.Width, o.Gen.Height, o.Gen.Seed = w, h, uint64(seed)
			return runDemoData(g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Out, "out", "", "folder to write (required; must be new, empty, or made by demo-data)")
	f.IntVar(&o.Gen.Classes, "classes", o.Gen.Classes, fmt.Sprintf("number of classes, 2 to %d", len(demodata.Shapes)))
	f.IntVar(&o.Gen.PerClass, "per-class", o.Gen.PerClass, "images per class")
	f.StringVar(&size, "size", "128", "image size: N for N×N, or WxH such as 640x480")
	f.Int64Var(&seed, "seed", int64(o.Gen.Seed), "seed of the images")
	f.StringVar(&o.Gen.Format, "format", o.Gen.Format, "jpeg | png | mixed (every fourth image PNG)")
	f.BoolVar(&o.Gen.Quadrant, "quadrant", false, "keep each image's shape inside one quadrant, named in the file name")
	return cmd
}

// parseSize reads "128" or "640x480".
func parseSize(s string) (int, int, error) {
	ws, hs, two := strings.Cut(strings.ToLower(s), "x")
	w, err := strconv.Atoi(ws)
	if err != nil {
		return 0, 0, fmt.Errorf("want N or WxH")
	}
	if !two {
		return w, w, nil
	}
	h, err := strconv.Atoi(hs)
	if err != nil {
		return 0, 0, fmt.Errorf("want N or WxH")
	}
	return w, h, nil
}

func runDemoData(g *Globals, o DemoDataOptions) error {
	if o.Out == "" {
		return cli.Usagef("--out is required: the folder to write the demo images to")
	}
	if err := o.Gen.Validate(); err != nil {
		return err
	}
	if err := clearDemoDir(o.Out); err != nil {
		return err
	}
	if err := demodata.Generate(o.Out, o.Gen); err != nil {
		return fault.New(fault.CannotWrite, "--out %s: %v: choose a folder you can write to", o.Out, fault.Bare(err))
	}
	if err := os.WriteFile(filepath.Join(o.Out, demoMarker), []byte("made by xcept demo-data\n"), 0o644); err != nil {
		return fault.New(fault.CannotWrite, "--out %s: %v", o.Out, fault.Bare(err))
	}
	classes := demodata.ClassNames(o.Gen.Classes)
	g.Progressf("wrote %d images (%s × %d, %dx%d) to %s", o.Gen.Classes*o.Gen.PerClass,
		strings.Join(classes, ", "), o.Gen.PerClass, o.Gen.Width, o.Gen.Height, o.Out)
	return g.Result(map[string]any{"out": o.Out, "classes": classes, "images": o.Gen.Classes * o.Gen.PerClass}, nil)
}

// clearDemoDir makes out ready: absent or empty is fine, a previous demo
// folder is removed so no stale image survives, anything else is refused.
func clearDemoDir(out string) error {
	entries, err := os.ReadDir(out)
	if os.IsNotExist(err) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return cli.Usagef("--out %s: %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(out, demoMarker)); err != nil {
		return cli.Usagef("--out %s is not empty and was not made by demo-data: choose a new folder", out)
	}
	if err := os.RemoveAll(out); err != nil {
		return fault.New(fault.CannotWrite, "--out %s: %v: choose a folder you can write to", out, fault.Bare(err))
	}
	return nil
}
