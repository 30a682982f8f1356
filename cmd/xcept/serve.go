package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/device"
	"github.com/xcept/xcept/internal/export"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/infer"
	"github.com/xcept/xcept/internal/ort"
	"github.com/xcept/xcept/internal/serve"
	"github.com/xcept/xcept/internal/versions"
)

func init() { verbs = append(verbs, NewServeCmd) }

// ServeOptions is everything `xcept serve` needs, already validated.
type ServeOptions struct {
	cli.Output // where and how it prints: text, JSON Lines or quiet
	Server     serve.Config
	Host       string
	Port       int
	// GRPCPort answers TF Serving's gRPC API there too; 0: no gRPC.
	GRPCPort int
	Grace    time.Duration // how long requests in flight may take after SIGTERM
	Session  graph.SessionOptions
	// Engine is what runs the versions (runtime.engine, --engine) and
	// onnxruntime's options.
	Engine infer.EngineOptions
	// AllowUntrusted loads versions trust.Check refuses.
	AllowUntrusted bool
	// Reject adds the "unknown" and "class" outputs to serving_default's
	// answer (serve.Rejecting), from each version's export manifest.
	Reject       bool
	Verbose      bool
	Listener     net.Listener     // tests: listen here instead of Host:Port
	GRPCListener net.Listener     // tests: answer gRPC here instead of Host:GRPCPort
	Ready        func(url string) // tests: called once the server answers
	Loader       serve.Loader     // tests: nil loads SavedModels with the C API
	Context      context.Context  // cancelled by SIGTERM or Ctrl-C
}

// serveKeys binds configuration keys to flags.
var serveKeys = map[string]string{
	"runtime.device":              deviceFlag,
	"runtime.engine":              "engine",
	"serve.name":                  "name",
	"serve.host":                  "host",
	"serve.port":                  "port",
	"serve.grpc_port":             "grpc-port",
	"serve.max_batch":             "max-batch",
	"serve.batch_timeout":         "batch-timeout",
	"serve.workers":               "workers",
	"serve.timeout":               "timeout",
	"serve.max_body_mb":           "max-body-mb",
	"serve.max_pixels":            "max-pixels",
	"serve.max_request_pixels":    "max-request-pixels",
	"serve.max_batch_pixels":      "max-batch-pixels",
	"serve.poll":                  "poll",
	"serve.allow_untrusted_model": "allow-untrusted-model",
	"serve.reject":                "reject",
}

// NewServeCmd builds `xcept serve`.
func NewServeCmd(g *Globals) *cobra.Command {
	var o ServeOptions
	cmd := &cobra.Command{
		Use:   "serve --model DIR [--name NAME] [--port 8501] [--max-batch 32] [--batch-timeout 5ms]",
		Short: "Answer TF Serving's REST API from an exported model, with dynamic batching and hot reload",
		Long: `serve answers the REST requests of TensorFlow Serving from an export in its
layout, DIR/<version>/ (integer versions, each a SavedModel): clients written
for TF Serving work unchanged, and the same export can move to TF Serving later.

  GET  /v1/models/NAME[/versions/V]            version status
  GET  /v1/models/NAME[/versions/V]/metadata   signatures
  POST /v1/models/NAME[/versions/V]:predict    {"instances": [...]} or {"inputs": ...}
  GET  /healthz                                200 while a version is served
  GET  /metrics                                Prometheus metrics

serving_default takes encoded images (JPEG, PNG, GIF, BMP, WebP, TIFF) as
{"b64": "..."} and returns probabilities and class names; predict_images
takes pixel values 0..255. Images are fed as xcept predict feeds them: an
EXIF-rotated photo is seen upright. The newest complete version folder is served;
a new one is loaded and warmed up while the old one serves, then swapped in
without dropping a request. Concurrent requests are joined into batches of
up to --max-batch images. Models are programs: a version that xcept did not
export, or whose graph holds an op xcept's models do not need (a file,
process or Python op), is refused (and on hot reload not served) unless
--allow-untrusted-model. SIGTERM or Ctrl-C stops accepting, lets requests
in flight finish and exits 0.

With --reject (serve.reject), serving_default's answer also has, per image,
"unknown" (true when the calibrated top probability is below the version's
"unknown" threshold, from its assets.extra/xcept_export.json, compared as
log-odds) and "class" (the
top class's name, or "unknown"); probabilities and classes are unchanged. A
version exported without a threshold is not served.

With --engine onnxruntime (runtime.engine) the versions run on onnxruntime:
an ONNX export (DIR/<version>/NAME.onnx and labels.txt) as it is, a SavedModel
through its conversion, made once and cached in xcept's cache folder.
The server listens on 127.0.0.1 unless --host says otherwise.`,
		Example: `  xcept serve --model export/flowers
  xcept serve --model export/flowers --host 0.0.0.0 --port 8501 --max-batch 16 --batch-timeout 2ms
  curl -d '{"instances": [{"b64": "'"$(base64 -w0 rose.jpg)"'"}]}' localhost:8501/v1/models/flowers:predict`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Output, o.Verbose = g.Output, g.Verbose
			o.Context = cmd.Context()
			v, err := g.Config(cmd.Flags(), serveKeys)
			if err != nil {
				return err
			}
			if err := o.fromConfig(v); err != nil {
				return err
			}
			return runServe(o)
		},
	}
	f := cmd.Flags()
	addDeviceFlag(f)
	f.StringVar(&o.Server.Dir, "model", "", "export folder holding version folders DIR/<version>/saved_model.pb (required)")
	engineFlag(f)
	f.String("name", "", "model name in URLs, /v1/models/NAME (serve.name; default: the --model folder's name)")
	f.String("host", "", "address to listen on; 0.0.0.0 for every interface (serve.host)")
	f.Int("port", 0, "port to listen on; 0 picks a free one (serve.port)")
	f.Int("grpc-port", 0, "also answer TF Serving's gRPC API (PredictionService, ModelService, grpc.health.v1) on this port, e.g. 8500; 0: no gRPC (serve.grpc_port)")
	f.Int("max-batch", 0, "most images per model run when batching concurrent requests; 0 turns batching off (serve.max_batch)")
	f.Duration("batch-timeout", 0, "how long the first request of a batch waits for more (serve.batch_timeout)")
	f.Int("workers", 0, "model runs in flight at once (serve.workers)")
	f.Duration("timeout", 0, "per-request time limit; 504 after it (serve.timeout)")
	f.Float64("max-body-mb", 0, "request body limit in MB; 413 above it (serve.max_body_mb)")
	f.Int64("max-pixels", 0, "most pixels (width × height) an image may have; 400 above it (serve.max_pixels)")
	f.Int64("max-request-pixels", 0, "most pixels of all a request's images together, from their headers; 413 above it (serve.max_request_pixels)")
	f.Int64("max-batch-pixels", 0, "most pixels of the images of one model run, and of the images being decoded at once (serve.max_batch_pixels)")
	f.Duration("poll", 0, "how often --model is checked for a new version folder; 0 never (serve.poll)")
	f.Bool("reject", false, "add \"unknown\" (bool) and \"class\" (the top class or \"unknown\") to serving_default's answer, by each version's calibrated threshold (serve.reject)")
	f.Bool("allow-untrusted-model", false, "serve versions xcept did not export or whose graph holds ops inference does not need (models are programs: only ones you trust) (serve.allow_untrusted_model)")
	return cmd
}

// fromConfig reads and validates the serve section, naming the key and flag
// of a bad value.
func (o *ServeOptions) fromConfig(v *viper.Viper) error {
	if o.Server.Dir == "" {
		return cli.Usagef("--model DIR is required: an export folder holding version folders (DIR/1/saved_model.pb), as xcept export writes")
	}
	st, err := os.Stat(o.Server.Dir)
	if err != nil {
		return fault.New(fault.BadData, "--model %s: %v", o.Server.Dir, fault.Bare(err))
	}
	if !st.IsDir() {
		return fault.New(fault.BadData, "--model %s is a file: give the export folder holding version folders (DIR/1/saved_model.pb)", o.Server.Dir)
	}
	dur := func(key, flag string) (time.Duration, error) {
		d, err := castDuration(v.Get(key))
		if err != nil {
			return 0, cli.Usagef("%s (--%s) %q: %v (write e.g. 5ms, 2s, 1m)", key, flag, v.GetString(key), err)
		}
		return d, nil
	}
	c := &o.Server
	c.Name = v.GetString("serve.name")
	if c.Name == "" {
		c.Name = filepath.Base(filepath.Clean(o.Server.Dir))
	}
	o.Host, o.Port, o.GRPCPort = v.GetString("serve.host"), v.GetInt("serve.port"), v.GetInt("serve.grpc_port")
	c.Batch = serve.BatchConfig{MaxBatch: v.GetInt("serve.max_batch"), Workers: v.GetInt("serve.workers"), MaxQueue: v.GetInt("serve.max_queue")}
	if c.Batch.Timeout, err = dur("serve.batch_timeout", "batch-timeout"); err != nil {
		return err
	}
	if c.Timeout, err = dur("serve.timeout", "timeout"); err != nil {
		return err
	}
	if c.Poll, err = dur("serve.poll", "poll"); err != nil {
		return err
	}
	if o.Grace, err = dur("serve.shutdown_timeout", "config"); err != nil {
		return err
	}
	c.MaxBodyBytes = int64(v.GetFloat64("serve.max_body_mb") * 1e6)
	c.Limits.MaxPixels = v.GetInt64("serve.max_pixels")
	c.Limits.MaxRequestPixels = v.GetInt64("serve.max_request_pixels")
	c.Batch.MaxBatchPixels = v.GetInt64("serve.max_batch_pixels")
	if o.Engine, err = engineConfig(v); err != nil {
		return err
	}
	o.Session = o.Engine.Session
	o.AllowUntrusted = v.GetBool("serve.allow_untrusted_model")
	o.Reject = v.GetBool("serve.reject")
	switch {
	case c.Name == "." || c.Name == string(filepath.Separator) || strings.ContainsAny(c.Name, "/: ") || c.Name == "":
		return cli.Usagef("serve.name (--name) %q: a model name cannot be empty or hold '/', ':' or spaces (it is part of the URL)", c.Name)
	case o.Port < 0 || o.Port > 65535:
		return cli.Usagef("serve.port (--port) %d: want 0 to 65535", o.Port)
	case o.GRPCPort < 0 || o.GRPCPort > 65535:
		return cli.Usagef("serve.grpc_port (--grpc-port) %d: want 1 to 65535, or 0 for no gRPC", o.GRPCPort)
	case c.Batch.MaxBatch < 0:
		return cli.Usagef("serve.max_batch (--max-batch) %d: want 0 (no batching) or more", c.Batch.MaxBatch)
	case c.Batch.Timeout < 0:
		return cli.Usagef("serve.batch_timeout (--batch-timeout) %v: want 0 or more", c.Batch.Timeout)
	case c.Batch.Workers < 1:
		return cli.Usagef("serve.workers (--workers) %d: want 1 or more", c.Batch.Workers)
	case c.Batch.MaxQueue < 1:
		return cli.Usagef("serve.max_queue %d: want 1 or more", c.Batch.MaxQueue)
	case c.Timeout <= 0:
		return cli.Usagef("serve.timeout (--timeout) %v: want more than 0", c.Timeout)
	case c.MaxBodyBytes < 1000:
		return cli.Usagef("serve.max_body_mb (--max-body-mb) %g: want at least 0.001", v.GetFloat64("serve.max_body_mb"))
	case c.Limits.MaxPixels < 1:
		return cli.Usagef("serve.max_pixels (--max-pixels) %d: want 1 or more", c.Limits.MaxPixels)
	case c.Limits.MaxRequestPixels < c.Limits.MaxPixels:
		return cli.Usagef("serve.max_request_pixels (--max-request-pixels) %d: want at least serve.max_pixels (%d), or no image could be sent", c.Limits.MaxRequestPixels, c.Limits.MaxPixels)
	case c.Batch.MaxBatchPixels < c.Limits.MaxPixels:
		return cli.Usagef("serve.max_batch_pixels (--max-batch-pixels) %d: want at least serve.max_pixels (%d), so that every image fits a run", c.Batch.MaxBatchPixels, c.Limits.MaxPixels)
	case c.Poll < 0:
		return cli.Usagef("serve.poll (--poll) %v: want 0 (never) or more", c.Poll)
	case o.Grace <= 0:
		return cli.Usagef("serve.shutdown_timeout %v: want more than 0", o.Grace)
	}
	return nil
}

// castDuration reads a duration from YAML, the environment or a flag:
// "5ms" style strings, or a number of seconds.
func castDuration(x any) (time.Duration, error) {
	switch d := x.(type) {
	case time.Duration:
		return d, nil
	case int:
		return time.Duration(d) * time.Second, nil
	case float64:
		return time.Duration(d * float64(time.Second)), nil
	case string:
		if secs, err := strconv.ParseFloat(d, 64); err == nil {
			return time.Duration(secs * float64(time.Second)), nil
		}
		return time.ParseDuration(d)
	}
	return 0, fmt.Errorf("not a duration")
}

// onnxLoader is serve's loader on onnxruntime when runtime.engine asks for
// it (nil: TensorFlow's), having said which engine serves in one line:
// onnxruntime must load, auto falls back to TensorFlow when it does not.
// It takes ONNX exports as they are and SavedModel exports through their
// cached conversion.
func onnxLoader(o ServeOptions, log io.Writer) (serve.Loader, error) {
	switch o.Engine.Engine {
	case infer.EngineTensorFlow:
		return nil, nil
	case infer.EngineAuto:
		if err := ort.Load(); err != nil {
			fmt.Fprintf(log, "engine: tensorflow (runtime.engine auto, onnxruntime not used: %v)\n", err)
			return nil, nil
		}
	}
	if err := ort.Load(); err != nil {
		return nil, cli.Modelf("%v", err)
	}
	fmt.Fprintf(log, "engine: onnxruntime %s (runtime.engine %s: ONNX exports as they are, SavedModels through their cached conversion in %s)\n",
		ort.Version(), o.Engine.Engine, export.ONNXCacheDir())
	convert := func(ctx context.Context, dir string) (string, error) {
		path, _, err := export.CachedSavedModelONNX(ctx, dir, log)
		if err != nil {
			return "", fmt.Errorf("converting %s to ONNX: %v", dir, oneLine(err.Error()))
		}
		return path, nil
	}
	return serve.ONNXLoader(o.Context, o.Engine.ORT(), convert, o.AllowUntrusted), nil
}

// runServe loads the newest version and answers until the context ends.
func runServe(o ServeOptions) error {
	log := o.Stderr
	if o.Quiet {
		log = io.Discard
	}
	o.Server.Log = log
	if o.Verbose {
		o.Server.AccessLog = o.Stderr
	}
	load := o.Loader
	var place *device.Placement
	if load == nil {
		var err error
		if load, err = onnxLoader(o, log); err != nil {
			return err
		}
		if load != nil {
			o.Server.Complete = versions.CompleteAny // ONNX exports too
		}
	}
	if load == nil {
		if err := graph.Load(); err != nil {
			return cli.Modelf("%v", err)
		}
		var err error
		if place, err = device.Check(o.Session); err != nil {
			return err
		}
		load = serve.SavedModelLoader(o.Session, o.AllowUntrusted)
	}
	if o.Reject {
		load = serve.Rejecting(load, versionThreshold)
	}
	srv, err := serve.New(o.Server, load)
	if err != nil {
		return cli.Modelf("%v", err) // serve names the folder and the version
	}
	if place != nil {
		place.Use(export.ReadPrecision(filepath.Join(o.Server.Dir, versions.Name(srv.Version()))))
		place.Announce(o.Stderr, o.Quiet)
	}
	ln := o.Listener
	if ln == nil {
		addr := net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
		if ln, err = net.Listen("tcp", addr); err != nil {
			srv.Close()
			return cli.Usagef("--host %s --port %d: %v (choose another port)", o.Host, o.Port, unwrapListenError(err))
		}
	}
	gln := o.GRPCListener
	if gln == nil && o.GRPCPort > 0 {
		addr := net.JoinHostPort(o.Host, strconv.Itoa(o.GRPCPort))
		if gln, err = net.Listen("tcp", addr); err != nil {
			ln.Close()
			srv.Close()
			return cli.Usagef("--host %s --grpc-port %d: %v (choose another port)", o.Host, o.GRPCPort, unwrapListenError(err))
		}
	}
	url := "http://" + ln.Addr().String()
	grpcAddr := ""
	if gln != nil {
		grpcAddr = gln.Addr().String()
	}
	if o.Reject {
		if c, err := export.ReadCalibration(filepath.Join(o.Server.Dir, versions.Name(srv.Version()))); err == nil && c != nil && c.Reject != nil {
			o.Notef("answering \"unknown\" below %s (version %d's threshold; accepts %.0f%% of its validation images)",
				c.Reject.Describe(), srv.Version(), 100*c.Reject.Accept)
		}
	}
	if err := announce(o, url, grpcAddr, srv.Version(), place); err != nil {
		ln.Close()
		if gln != nil {
			gln.Close()
		}
		srv.Close()
		return err
	}
	if o.Ready != nil {
		o.Ready(url)
	}
	ctx := o.Context
	if ctx == nil {
		ctx = context.Background()
	}
	grpcDone := make(chan error, 1)
	if gln != nil {
		go func() { grpcDone <- srv.ServeGRPC(ctx, gln, o.Grace) }()
	} else {
		grpcDone <- nil
	}
	err = srv.Serve(ctx, ln, o.Grace)
	if gerr := <-grpcDone; err == nil {
		err = gerr
	}
	fmt.Fprintf(log, "%s serve: stopped\n", time.Now().Format("2006-01-02 15:04:05"))
	if err != nil {
		return cli.Modelf("serve: %v", err)
	}
	return nil
}

// versionThreshold is a version folder's "unknown" threshold, from its
// export manifest; a version without one cannot be served with serve.reject.
func versionThreshold(dir string) (*calibrate.Rejection, error) {
	c, err := export.ReadCalibration(dir)
	if err != nil {
		return nil, err
	}
	if c == nil || c.Reject == nil {
		return nil, fmt.Errorf("%s records no \"unknown\" threshold (exported before thresholds, or not by xcept): export the run again, or serve without serve.reject (--reject)",
			filepath.Join(dir, export.SavedModelManifest))
	}
	return c.Reject, nil
}

func unwrapListenError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// announce says where the server listens: a line for people on stderr,
// and with --json a JSON line on stdout for scripts (the port, when --port 0).
func announce(o ServeOptions, url, grpcAddr string, version int64, place *device.Placement) error {
	c := o.Server
	also := ""
	if grpcAddr != "" {
		also = ", gRPC on " + grpcAddr
	}
	o.Notef("serving model %q version %d on %s/v1/models/%s%s (%s; request timeout %v)",
		c.Name, version, url, c.Name, also, c.Batch, c.Timeout)
	if !o.JSON {
		return nil
	}
	event := map[string]any{
		"event": "listening", "url": url, "model": c.Name, "version": version,
		"predict": url + "/v1/models/" + c.Name + ":predict",
	}
	if place != nil {
		event["device"] = place
	}
	if grpcAddr != "" {
		event["grpc"] = grpcAddr
	}
	return o.Line(event)
}
