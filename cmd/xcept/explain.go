package main

import (
	"github.com/spf13/cobra"

	"github.com/xcept/xcept/internal/explain"
)

func init() { verbs = append(verbs, NewExplainCmd) }

// NewExplainCmd builds `xcept explain`.
func NewExplainCmd(g *Globals) *cobra.Command {
	o := &explain.Options{}
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
			if err := o.Validate(); err != nil {
				return err
			}
			return explain.Run(cmd.Context(), *o)
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
