package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/model"
)

func init() { verbs = append(verbs, NewBuildModelCmd) }

// BuildModelOptions are the inputs of `xcept build-model`.
type BuildModelOptions struct {
	*Globals
	Out       string
	Labels    string
	Classes   []string
	Spec      model.Spec
	Overwrite bool
}

// modelFlags are the flags shared by every verb that builds a model, bound to
// their configuration keys.
var modelFlags = map[string]string{
	"model.arch":           "arch",
	"model.image_size":     "image-size",
	"model.weights":        "weights",
	"model.precision":      "precision",
	"model.unfreeze_from":  "unfreeze-from",
	"model.feature_blocks": "feature-blocks",
}

// addModelFlags declares the flags of modelFlags on cmd.
func addModelFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	addArchFlag(f)
	f.Int("image-size", 0, "square input size in pixels; default: the architecture's (Xception 299, at least 71) (model.image_size)")
	f.String("weights", "", "base weights: imagenet, none or a Keras notop .h5 file of the architecture (model.weights)")
	f.String("precision", "", "float32, mixed_bfloat16 (CPU) or mixed_float16 (GPU) (model.precision)")
	f.String("unfreeze-from", "", "first block or layer fine-tuning trains; auto: the architecture's (model.unfreeze_from)")
	f.String("feature-blocks", "", "auto (train chooses on the validation split) or taps of the architecture, shallowest first, whose pooled outputs the head reads, e.g. block14 for Xception (model.feature_blocks)")
}

// addArchFlag declares --arch (model.arch).
func addArchFlag(f *pflag.FlagSet) {
	f.String("arch", "", "backbone: "+strings.Join(model.ArchNames(), ", ")+" (model.arch)")
}

// modelSpec reads the model section of the resolved configuration, with the
// architecture's defaults filled in (an unknown architecture is left for
// Spec.ValidateOptions to report).
func modelSpec(v *viper.Viper, classes []string) model.Spec {
	s := model.Spec{
		Arch:              v.GetString("model.arch"),
		Classes:           classes,
		ImageSize:         v.GetInt("model.image_size"),
		Weights:           v.GetString("model.weights"),
		Precision:         v.GetString("model.precision"),
		DenseUnits:        v.GetInt("model.dense_units"),
		Dropout:           v.GetFloat64("model.dropout"),
		UnfreezeFrom:      v.GetString("model.unfreeze_from"),
		FeatureBlocks:     model.ParseBlocks(v.GetString("model.feature_blocks")),
		Seed:              v.GetInt64("seed"),
		HeadOptimizer:     v.GetString("train.optimizer"),
		FinetuneOptimizer: v.GetString("finetune.optimizer"),
		JitCompile:        v.GetBool("runtime.jit_compile"),
	}
	s.GradientCheckpointing = v.GetBool("finetune.gradient_checkpointing")
	if r, err := s.Resolve(); err == nil {
		s = r
	}
	return s
}

// NewBuildModelCmd builds `xcept build-model`.
func NewBuildModelCmd(g *Globals) *cobra.Command {
	o := &BuildModelOptions{Globals: g}
	cmd := &cobra.Command{
		Use:   "build-model --out DIR (--labels FILE | --classes a,b,...)",
		Short: "Build the Keras Xception trainer and serving models for a class list",
		Long: `build-model runs xcept's embedded Keras builder with the project's Python to
write DIR/trainer (training signatures), DIR/serving (inference only, same
checkpoint keys) and DIR/model.json. prepare runs it for you; use this verb to
rebuild a model with other options.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := g.Config(cmd.Flags(), modelFlags)
			if err != nil {
				return err
			}
			if (o.Labels == "") == (len(o.Classes) == 0) {
				return cli.Usagef("give exactly one of --labels FILE and --classes a,b,...")
			}
			if o.Out == "" {
				return cli.Usagef("--out DIR is required")
			}
			classes := o.Classes
			if o.Labels != "" {
				if classes, err = contract.ReadLabels(o.Labels); err != nil {
					return fmt.Errorf("--labels: %w", err)
				}
			}
			o.Spec = modelSpec(v, classes)
			return runBuildModel(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Out, "out", "", "model folder to write")
	cmd.Flags().StringVar(&o.Labels, "labels", "", "labels.txt: one class name per line")
	cmd.Flags().StringSliceVar(&o.Classes, "classes", nil, "class names, comma-separated")
	cmd.Flags().BoolVar(&o.Overwrite, "overwrite", false, "replace DIR if it holds a model")
	addModelFlags(cmd)
	return cmd
}

func runBuildModel(ctx context.Context, o *BuildModelOptions) error {
	info, err := model.Build(ctx, o.Out, o.Spec, o.Overwrite, o.Progress())
	if err != nil {
		return err
	}
	return o.Result(info, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "built %s in %s\n", info, o.Out)
		return err
	})
}
