package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/cluster"
	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/device"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/infer"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/train"
)

func init() { verbs = append(verbs, NewTrainCmd, NewFinetuneCmd) }

// TrainOptions are the inputs of `xcept train` and `xcept finetune`.
type TrainOptions struct {
	*Globals
	Job train.Job

	cluster       string
	task          int
	workerTimeout time.Duration
}

// trainKeys binds configuration keys to the flags both phases share.
func trainKeys(phase string) map[string]string {
	keys := map[string]string{
		phase + ".epochs":        "epochs",
		phase + ".learning_rate": "lr",
		phase + ".optimizer":     "optimizer",
		"train.batch_size":       "batch-size",
		"train.feature_cache":    "feature-cache",
		"seed":                   "seed",
		"runtime.device":         deviceFlag,
		"runtime.engine":         "engine",
	}
	if phase == train.PhaseFinetune {
		keys["finetune.gradient_checkpointing"] = gradientCheckpointingFlag
	}
	return keys
}

// gradientCheckpointingFlag is finetune's --gradient-checkpointing.
const gradientCheckpointingFlag = "gradient-checkpointing"

func addTrainFlags(cmd *cobra.Command, o *TrainOptions) {
	f := cmd.Flags()
	f.StringVar(&o.Job.RunDir, "run", "", "run folder (runs/NAME): checkpoints, history, TensorBoard events (required)")
	f.Int("epochs", 0, "most epochs of this phase (train.epochs, finetune.epochs)")
	f.Int("batch-size", 0, "images per step (train.batch_size)")
	f.Float64("lr", 0, "learning rate (train.learning_rate, finetune.learning_rate)")
	f.String("optimizer", "", "adam | adamw[:weight_decay=W] | sgd[:momentum=M,nesterov=true]; a model built with another is rebuilt for the run (train.optimizer, finetune.optimizer)")
	f.Bool("feature-cache", true, "train the frozen phase on cached base features (train.feature_cache)")
	f.Int64("seed", 0, "seed of shuffling, augmentation and dropout (seed)")
	addDeviceFlag(f)
	f.String("engine", "", "tensorflow | onnxruntime | auto: the engine that computes the frozen phase's feature cache (runtime.engine; default tensorflow); training runs on TensorFlow")
	f.BoolVar(&o.Job.Resume, "resume", false, "continue the run from its last checkpoint (after Ctrl-C, a crash or kill -9)")
	f.StringVar(&o.cluster, "cluster", "", "train data-parallel with these workers, host:port,host:port,... (default: $TF_CONFIG's cluster; none: one process)")
	f.IntVar(&o.task, "task", 0, "this process's index in --cluster (0 is the chief, which writes the run)")
	f.DurationVar(&o.workerTimeout, "worker-timeout", defaultWorkerTimeout, "in a cluster: the longest one step (or the wait for the slowest worker) may take before the workers give up")
}

// defaultWorkerTimeout bounds every TensorFlow run of a cluster worker: the
// watchdog notices a killed peer in seconds, this catches a peer that is up
// but stuck, and must exceed the slowest step and the workers' skew.
const defaultWorkerTimeout = 10 * time.Minute

// NewTrainCmd builds `xcept train`.
func NewTrainCmd(g *Globals) *cobra.Command {
	o := &TrainOptions{Globals: g}
	cmd := &cobra.Command{
		Use:   "train --data DIR --run runs/NAME",
		Short: "Train the new head on the frozen Xception base (feature extraction)",
		Long: `train starts a run: Xception's base stays frozen and the new head is trained
with Adam, checkpointing the best epoch (by val_accuracy) and the last one, early
stopping and reducing the learning rate on plateaus. --data is a prepared dataset
(xcept prepare) or a raw image folder, which is then prepared into RUN/dataset.
The frozen base's features are computed once and cached (per view of an augmented
image), which makes each epoch take seconds on a CPU.

Ctrl-C finishes the step underway, saves the last checkpoint and exits with 130;
--resume continues exactly where the run stopped, after Ctrl-C, a crash or kill -9.
With --cluster host:port,host:port,... --task I (or TF_CONFIG, as tf.distribute
and Kubeflow's TFJob set it) every worker trains the same run data-parallel on
its share of every global batch, the gradients all-reduced by TensorFlow's
collective ops; task 0 (the chief) alone writes the run folder (README,
"Multi-worker training").
Exit codes: 0 done, 2 bad flags or configuration (or workers that differ), 4
unusable data or --run, 5 model or TensorFlow failure, 6 another process is
writing the run (the message names it), 7 another worker of the cluster died or
cannot be reached (the message names it), 130 interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.fromConfig(cmd, train.PhaseTrain); err != nil {
				return err
			}
			return runTrain(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Job.Dataset, "data", "", "prepared dataset, or a folder of images with one sub-folder per class (required)")
	cmd.Flags().StringVar(&o.Job.Precision, "precision", "", "float32 | mixed_bfloat16 (CPU) | mixed_float16 (GPU); default: the dataset model's (model.precision)")
	addTrainFlags(cmd, o)
	return cmd
}

// NewFinetuneCmd builds `xcept finetune`.
func NewFinetuneCmd(g *Globals) *cobra.Command {
	o := &TrainOptions{Globals: g}
	cmd := &cobra.Command{
		Use:   "finetune --run runs/NAME [--unfreeze-from BLOCK|LAYER]",
		Short: "Fine-tune the top Xception blocks from the run's best checkpoint",
		Long: `finetune continues a run as a second phase: it starts from the best checkpoint,
unfreezes Xception from --unfreeze-from upward (a block such as block11, or any
layer name; BatchNorm layers stay frozen and in inference mode) and trains at a
lower learning rate, appending to the same history. Another boundary than the
model's own rebuilds the trainer with the best weights, without any Python from you.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.fromConfig(cmd, train.PhaseFinetune); err != nil {
				return err
			}
			return runTrain(cmd.Context(), o)
		},
	}
	cmd.Flags().Bool(gradientCheckpointingFlag, false, "recompute the trained blocks' activations in the backward pass instead of keeping them: "+
		"less memory, more CPU per image; a model built otherwise is rebuilt, and with --resume this switches a run's fine-tuning (finetune.gradient_checkpointing; README, Memory)")
	cmd.Flags().StringVar(&o.Job.UnfreezeFrom, "unfreeze-from", "", "first block (Xception: block1..block14; see README, Backbones) or layer to train; default: the model's own (model.unfreeze_from)")
	addTrainFlags(cmd, o)
	return cmd
}

// fromConfig resolves the configuration into the job, validating it fully
// before anything is written.
func (o *TrainOptions) fromConfig(cmd *cobra.Command, phase string) error {
	v, err := o.Config(cmd.Flags(), trainKeys(phase))
	if err != nil {
		return err
	}
	if o.Job.RunDir == "" {
		return cli.Usagef("--run DIR is required")
	}
	if phase == train.PhaseTrain && o.Job.Dataset == "" && !o.Job.Resume {
		return cli.Usagef("--data DIR is required (a prepared dataset or an image folder)")
	}
	if p := o.Job.Precision; p != "" && !slices.Contains(model.Precisions, p) {
		return cli.Usagef("--precision %q: choose %s", p, strings.Join(model.Precisions, ", "))
	}
	if o.Job.Cfg, err = trainConfig(v, phase); err != nil {
		return err
	}
	if err := o.Job.Cfg.Validate(); err != nil {
		return err
	}
	if o.Job.Track, err = o.trackingSettings(v); err != nil {
		return err
	}
	if o.Job.Session, err = sessionOptions(v); err != nil {
		return err
	}
	o.Job.JitCompile = v.GetBool("runtime.jit_compile")
	if phase == train.PhaseFinetune && (!o.Job.Resume || cmd.Flags().Changed(gradientCheckpointingFlag)) {
		// --resume keeps the run's own unless the flag says otherwise.
		on := v.GetBool("finetune.gradient_checkpointing")
		o.Job.GradientCheckpointing = &on
	}
	o.Job.Session.LogDevicePlacement = o.Verbose // where each op runs: the first thing to check on a GPU
	eo, err := engineConfig(v)
	if err != nil {
		return err
	}
	eo.Session = o.Job.Session
	if !o.Quiet {
		eo.Progress = o.Stderr
	}
	o.Job.Features = func(ctx context.Context, m *model.Model, _ int) (train.Extractor, error) {
		f, err := infer.OpenFeatures(ctx, m, eo)
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	spec, err := cluster.Resolve(o.cluster, o.task, cmd.Flags().Changed("task"), os.Getenv(cluster.EnvVar))
	if err != nil {
		return err
	}
	if spec != nil {
		if o.workerTimeout <= 0 {
			return cli.Usagef("--worker-timeout %v: must be positive", o.workerTimeout)
		}
		o.Job.Cluster = &train.Worker{Spec: spec, Lost: func(err error) { o.lost(cmd, err) }}
	}
	if o.Job.ConfigYAML, err = yaml.Marshal(v.AllSettings()); err != nil {
		return err
	}
	o.Job.Out = o.Output
	return nil
}

// trainConfig reads one phase's configuration.
func trainConfig(v *viper.Viper, phase string) (train.Config, error) {
	c := train.Config{
		Phase:             phase,
		Epochs:            v.GetInt(phase + ".epochs"),
		BatchSize:         v.GetInt("train.batch_size"),
		LearningRate:      v.GetFloat64(phase + ".learning_rate"),
		LabelSmoothing:    v.GetFloat64("train.label_smoothing"),
		ClassWeight:       v.GetString("train.class_weight"),
		Seed:              v.GetInt64("seed"),
		FeatureCache:      v.GetBool("train.feature_cache"),
		CacheViews:        v.GetInt("train.cache_views"),
		Workers:           v.GetInt("train.workers"),
		ShuffleBuffer:     v.GetInt("train.shuffle_buffer"),
		CheckpointMonitor: v.GetString("callbacks.checkpoint_monitor"),
		Optimizer:         v.GetString(phase + ".optimizer"),
	}
	for key, dst := range map[string]any{
		"callbacks.early_stopping": &c.EarlyStopping,
		"callbacks.reduce_lr":      &c.ReduceLR,
	} {
		if err := decodeSection(v, key, dst); err != nil {
			return c, err
		}
	}
	if v.GetBool("augment.enabled") {
		if err := decodeSection(v, "augment", &c.Augment); err != nil {
			return c, err
		}
	}
	return c, nil
}

// deviceFlag is runtime.device's flag on every command that runs a model.
const deviceFlag = "device"

func addDeviceFlag(f *pflag.FlagSet) {
	f.String(deviceFlag, "", "auto | cpu | gpu: gpu exits 5 when TensorFlow sees no GPU, cpu hides the GPUs (runtime.device)")
}

// sessionOptions reads the runtime section.
func sessionOptions(v *viper.Viper) (graph.SessionOptions, error) {
	mode, err := device.ParseMode(v.GetString("runtime.device"))
	return graph.SessionOptions{
		IntraOpThreads:  v.GetInt("runtime.intra_op_threads"),
		InterOpThreads:  v.GetInt("runtime.inter_op_threads"),
		GPUMemoryGrowth: v.GetBool("runtime.gpu_memory_growth"),
		VisibleDevices:  v.GetString("runtime.visible_devices"),
		Device:          mode,
	}, err
}

// lost ends a cluster worker whose peer is gone: the collective it waits in
// cannot be cancelled, so the process exits with the error's code (7),
// its message naming cmd's flags as main's does.
func (o *TrainOptions) lost(cmd *cobra.Command, err error) {
	err = o.Globals.nameFlags(cmd, err)
	fmt.Fprintln(o.Output.Stderr, "xcept: "+oneLine(err.Error()))
	os.Exit(cli.ExitCode(err))
}

func runTrain(ctx context.Context, o *TrainOptions) error {
	if w := o.Job.Cluster; w != nil {
		if o.Job.Cfg.Phase == train.PhaseTrain && !o.Job.Resume {
			if _, err := os.Stat(filepath.Join(o.Job.Dataset, dataset.ManifestFile)); err != nil {
				return cli.Usagef("--data %s: in a cluster every worker reads one prepared dataset (xcept prepare) on shared storage; prepare it first", o.Job.Dataset)
			}
		}
		var err error
		if o.Job.Session, err = w.Spec.Start(o.Job.Session, o.workerTimeout); err != nil {
			return err
		}
	}
	if o.Job.Cfg.Phase == train.PhaseTrain && !o.Job.Resume {
		ds, err := preparedDataset(ctx, o)
		if err != nil {
			return err
		}
		o.Job.Dataset = ds
	}
	res, err := o.Job.Run(ctx)
	if err != nil {
		return err
	}
	return o.Result(res, func(w io.Writer) error {
		fmt.Fprintf(w, "%s: %d epochs, best %s %.4f at epoch %d; checkpoint %s\n",
			res.Phase, res.Epochs, res.Monitor, res.Best, res.BestEpoch, res.Checkpoint)
		if res.Hint != "" {
			fmt.Fprintln(w, res.Hint)
		}
		return nil
	})
}

// preparedDataset returns --data when it is a prepared dataset; a raw image
// folder is prepared (with its model) into RUN/dataset first, once.
func preparedDataset(ctx context.Context, o *TrainOptions) (string, error) {
	data := o.Job.Dataset
	if _, err := os.Stat(filepath.Join(data, dataset.ManifestFile)); err == nil {
		return data, nil
	}
	st, err := os.Stat(data)
	if err != nil || !st.IsDir() {
		return "", cli.Dataf("--data %s: no such folder", data)
	}
	out := filepath.Join(o.Job.RunDir, "dataset")
	if _, err := os.Stat(filepath.Join(out, dataset.ManifestFile)); err == nil {
		return out, nil
	}
	o.Notef("%s is an image folder: preparing it into %s first", data, out)
	p, err := prepareOptionsFor(o.Globals, data, out)
	if err != nil {
		return "", err
	}
	if err := runPrepare(ctx, p); err != nil {
		return "", err
	}
	return out, nil
}
