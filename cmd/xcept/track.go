package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/xcept/xcept/internal/cli"
	runs "github.com/xcept/xcept/internal/run"
	"github.com/xcept/xcept/internal/track"
)

func init() { verbs = append(verbs, NewTrackCmd) }

// TrackOptions are the inputs of `xcept track`.
type TrackOptions struct {
	*Globals
	Run      string
	Settings track.Settings
}

// NewTrackCmd builds `xcept track`.
func NewTrackCmd(g *Globals) *cobra.Command {
	o := &TrackOptions{Globals: g}
	cmd := &cobra.Command{
		Use:   "track --run runs/NAME [--mlflow-uri URL]",
		Short: "Send a run folder to an MLflow tracking server (idempotent)",
		Long: `track mirrors a run folder into MLflow through its REST API: the resolved
configuration as parameters, every epoch of history.csv as metrics (step = epoch),
the figures of evaluate and export as metrics, and the run's files (history,
reports, curves, confusion matrix, exports; not checkpoints) as artifacts. It
sends only what the server lacks, so running it again sends nothing twice.

train, finetune, evaluate and export do the same on their own while they run
when tracking.mlflow_uri (or MLflow's MLFLOW_TRACKING_URI) is set; a server that
is down or slow never stops them, and this command catches up afterwards.
Exit codes: 0 sent, 2 bad flags, 4 not a run folder or the server unreachable.`,
		Example: `  MLFLOW_TRACKING_URI=http://127.0.0.1:5000 xcept track --run runs/flowers`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := g.Config(cmd.Flags(), map[string]string{"tracking.mlflow_uri": "mlflow-uri", "tracking.experiment": "experiment"})
			if err != nil {
				return err
			}
			if o.Run == "" {
				return cli.Usagef("--run DIR is required")
			}
			s, err := g.trackingSettings(v)
			if err != nil {
				return err
			}
			if s.URI == "" {
				return cli.Usagef("no tracking server: pass --mlflow-uri http://HOST:PORT, set tracking.mlflow_uri or MLFLOW_TRACKING_URI")
			}
			o.Settings = s
			return runTrack(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Run, "run", "", "run folder to send (required)")
	cmd.Flags().String("mlflow-uri", "", "http(s)://HOST:PORT of the MLflow server (tracking.mlflow_uri; default $MLFLOW_TRACKING_URI)")
	cmd.Flags().String("experiment", "", "MLflow experiment (tracking.experiment; default $MLFLOW_EXPERIMENT_NAME, else xcept)")
	return cmd
}

func runTrack(ctx context.Context, o *TrackOptions) error {
	if _, err := runs.Open(o.Run); err != nil {
		return err
	}
	// track records its MLflow state in the run folder: one writer at a time.
	lock, err := runs.Acquire(o.Run, "track")
	if err != nil {
		return err
	}
	defer lock.Release()
	sum, err := track.Sync(ctx, o.Run, o.Settings)
	if err != nil {
		return cli.Dataf("--run %s: tracking at %s failed: %v", o.Run, o.Settings.URI, err)
	}
	return o.Result(sum, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "tracked %s as MLflow run %s at %s: sent %d parameters, %d metric values, %d artifacts\n",
			o.Run, sum.RunID, o.Settings.URI, sum.Params, sum.Metrics, sum.Artifacts)
		return err
	})
}

// trackingSettings reads tracking.* and MLflow's own environment; a value
// that only comes from the environment and cannot be used is a warning.
func (g *Globals) trackingSettings(v *viper.Viper) (track.Settings, error) {
	s, warning, err := track.Resolve(v.GetString("tracking.mlflow_uri"), v.GetString("tracking.experiment"), os.Getenv)
	if err != nil {
		return s, cli.Usagef("%v", err)
	}
	if warning != "" {
		fmt.Fprintf(g.Stderr, "warning: %s\n", warning)
	}
	return s, nil
}

// trackAfter mirrors a run folder into MLflow after evaluate or export wrote
// into it (out: where they wrote). Failures are one warning line: tracking
// never changes a verb's outcome.
func (g *Globals) trackAfter(ctx context.Context, runDir, out string) {
	if runDir == "" || !inside(out, runDir) {
		return
	}
	v, err := g.Config(nil, nil)
	if err != nil {
		return
	}
	s, err := g.trackingSettings(v)
	if err != nil {
		fmt.Fprintf(g.Stderr, "warning: %v; not tracking\n", err)
		return
	}
	live := track.NewLive(runDir, s, func(format string, args ...any) {
		fmt.Fprintf(g.Stderr, "warning: "+format+"\n", args...)
	})
	live.Finish(30 * time.Second)
}

// inside reports whether path is dir or below it ("" counts as dir: the default).
func inside(path, dir string) bool {
	if path == "" {
		return true
	}
	a, err1 := filepath.Abs(path)
	b, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	return a == b || strings.HasPrefix(a, b+string(filepath.Separator))
}
