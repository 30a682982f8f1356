package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/export"
)

func init() { verbs = append(verbs, NewExportCmd) }

// ExportOptions is everything `xcept export` needs.
type ExportOptions struct {
	cli.Output // where and how it prints: text, JSON Lines or quiet
	Export     export.Options
}

// exportKeys binds configuration keys to flags.
var exportKeys = map[string]string{
	"runtime.device":       deviceFlag,
	"export.format":        "format",
	"export.quantize":      "quantize",
	"export.out":           "out",
	"export.verify_images": "images",
	"export.batch_size":    "batch-size",
}

// NewExportCmd builds `xcept export`.
func NewExportCmd(g *Globals) *cobra.Command {
	var o ExportOptions
	var minAgreement float64
	cmd := &cobra.Command{
		Use:   "export --run runs/NAME [--format savedmodel|tflite|onnx] [--quantize none|float16|dynamic|int8]",
		Short: "Export the run's best model for TF Serving, TFLite or ONNX, verified against the trained model",
		Long: `export writes the run's best checkpoint as a deployable artefact and proves it
before publishing it: the artefact runs in its own runtime (the C API for a
SavedModel, the TFLite interpreter, onnxruntime) on --images held-out images
(export.verify_splits: test, then val) next to the trained model, and the
command reports top-1 agreement, max |Δprobability|, both accuracies, size on
disk and mean latency per image. Below --min-agreement it fails with exit 3 and
publishes nothing.

  savedmodel  OUT/NAME/VERSION/ in TF Serving's layout (model_base_path OUT/NAME);
              serving_default takes encoded image bytes ({"b64": ...} over REST)
              and returns probabilities and class names; predict_images takes
              float32 pixels 0..255. Labels in assets/labels.txt. No Python needed.
  tflite      OUT/NAME-tflite/VERSION/NAME_QUANT.tflite + labels.txt + export.json:
              float32 [batch, S, S, 3] pixels 0..255 in, probabilities out;
              --quantize int8 takes uint8 pixels and gives uint8 probabilities
              (p = q/256), calibrated on training images.
  onnx        OUT/NAME-onnx/VERSION/NAME.onnx (tf2onnx) + labels.txt + export.json:
              input "images" float32 [batch, S, S, 3] pixels 0..255.

Versions count up from 1; an export never replaces one. OUT defaults to
RUN/export and NAME to the run folder's name. Agreement is gated at 0.99 for
float32 and float16 (export.min_agreement); dynamic and int8 are reported and
gated only with --min-agreement or export.min_agreement_quantized.
Exit codes: 0 exported, 2 bad flags, 3 agreement below the threshold, 4 dataset,
--run or output folder unusable, 5 no checkpoint, model or converter failure,
6 another process is writing the run (an export into the run folder needs its
lock), 130 interrupted; on any failure nothing is left behind.`,
		Example: `  xcept export --run runs/flowers
  xcept export --run runs/flowers --format tflite --quantize int8 --min-agreement 0.95
  xcept export --run runs/flowers --format onnx --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.fromConfig(g, cmd, minAgreement); err != nil {
				return err
			}
			err := runExport(cmd.Context(), o)
			if err == nil {
				g.trackAfter(cmd.Context(), o.Export.RunDir, o.Export.Out)
			}
			return err
		},
	}
	f := cmd.Flags()
	addDeviceFlag(f)
	f.StringVar(&o.Export.RunDir, "run", "", "run folder whose best checkpoint to export (required)")
	f.String("format", "", "savedmodel | tflite | onnx (export.format)")
	f.String("quantize", "", "tflite only: none | float16 | dynamic | int8 (export.quantize)")
	f.String("out", "", "folder the exports go in (export.out; default RUN/export)")
	f.StringVar(&o.Export.Name, "name", "", "export name (default: the run folder's name)")
	f.Int("images", 0, "held-out images to verify the export on (export.verify_images)")
	f.Int("batch-size", 0, "images per inference call while verifying, in every runtime (export.batch_size)")
	f.Float64Var(&minAgreement, "min-agreement", 0, "fail (exit 3) when top-1 agreement with the trained model is below this fraction; 0 reports only")
	return cmd
}

// fromConfig resolves flags and configuration into the options.
func (o *ExportOptions) fromConfig(g *Globals, cmd *cobra.Command, minAgreement float64) error {
	v, err := g.Config(cmd.Flags(), exportKeys)
	if err != nil {
		return err
	}
	e := &o.Export
	e.Format = v.GetString("export.format")
	e.Quantize = v.GetString("export.quantize")
	e.Out = v.GetString("export.out")
	e.Images = v.GetInt("export.verify_images")
	e.BatchSize = v.GetInt("export.batch_size")
	e.RepresentativeImages = v.GetInt("export.representative_images")
	e.ONNXOpset = v.GetInt("export.onnx_opset")
	e.Splits = splitList(v.GetString("export.verify_splits"))
	if e.Session, err = sessionOptions(v); err != nil {
		return err
	}
	switch {
	case cmd.Flags().Changed("min-agreement"):
		e.MinAgreement = minAgreement
	case export.GatedByDefault(e.Quantize):
		e.MinAgreement = v.GetFloat64("export.min_agreement")
	default:
		e.MinAgreement = v.GetFloat64("export.min_agreement_quantized")
	}
	o.Output = g.Output
	e.Progress = o.Progress()
	return e.Validate()
}

// splitList reads a comma-separated list, ignoring blanks.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func runExport(ctx context.Context, o ExportOptions) error {
	res, err := export.Run(ctx, o.Export)
	if err != nil {
		return err
	}
	return o.Result(res, func(w io.Writer) error { return printExport(w, res) })
}

// printExport writes the result for people: where the export is, the
// comparison table and the gate.
func printExport(w io.Writer, r *export.Result) error {
	v := r.Verification
	fmt.Fprintf(w, "exported %s (version %d, %s, %s) from %s, epoch %d\n", r.Path, r.Version, exportKind(r), byteSize(r.SizeBytes), r.Checkpoint, r.Epoch)
	if r.Format != export.SavedModel {
		fmt.Fprintf(w, "model: %s\nlabels: %s\n", r.Artefact, r.Labels)
	}
	for _, s := range r.Signatures {
		fmt.Fprintf(w, "signature %s:\n", s.Name)
		for _, t := range s.Inputs {
			fmt.Fprintf(w, "  in  %s %s%v: %s\n", t.Name, t.DType, t.Shape, t.Meaning)
		}
		for _, t := range s.Outputs {
			fmt.Fprintf(w, "  out %s %s%v: %s\n", t.Name, t.DType, t.Shape, t.Meaning)
		}
	}
	fmt.Fprintf(w, "\nverified on %d images (%s), %d per call:\n", v.Images, strings.Join(v.Splits, "+"), v.BatchSize)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  model\truntime\tinput\tsize\tms/image\taccuracy\tagreement\tmax |Δp|")
	row := func(c export.Check) {
		agreement, diff := "-", "-"
		if a := c.Agreement; a != nil {
			agreement, diff = fmt.Sprintf("%.2f%%", 100*a.Agreement), fmt.Sprintf("%.2g", a.MaxAbsDiff)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%.1f\t%.2f%%\t%s\t%s\n", c.Name, c.Runtime, c.Input, byteSize(c.SizeBytes), c.LatencyMS, 100*c.Accuracy, agreement, diff)
	}
	row(v.Reference)
	for _, c := range v.Candidates {
		row(c)
	}
	tw.Flush()
	if v.MinAgreement > 0 {
		fmt.Fprintf(w, "gate pass: agreement %.2f%% >= %.2f%%\n", 100*v.Worst().Agreement.Agreement, 100*v.MinAgreement)
	} else {
		fmt.Fprintln(w, "agreement reported, not gated: pass --min-agreement to gate it")
	}
	return nil
}

func exportKind(r *export.Result) string {
	if r.Format == export.TFLite {
		return "tflite " + r.Quantize
	}
	return r.Format
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
