package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/device"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/pyenv"
)

// version is set by the Makefile (-ldflags -X main.version=...).
var version = "dev"

func init() { verbs = append(verbs, NewVersionCmd) }

// VersionInfo is what `xcept version` reports.
type VersionInfo struct {
	Xcept      string `json:"xcept"`
	Go         string `json:"go"`
	TensorFlow string `json:"tensorflow,omitempty"`
	Library    string `json:"library,omitempty"`
	// Build is what the library's wheel says of its build (CUDA, cuDNN);
	// absent for a library that says nothing (an official tarball).
	Build *graph.BuildInfo `json:"build,omitempty"`
	// Devices are the devices TensorFlow itself lists for a session.
	Devices []graph.Device `json:"devices,omitempty"`
	Python  string         `json:"python,omitempty"`
	Error   string         `json:"error,omitempty"`
}

// NewVersionCmd builds `xcept version`.
func NewVersionCmd(g *Globals) *cobra.Command {
	var requireGPU bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the xcept and TensorFlow versions, the library loaded and the devices TensorFlow sees",
		Long: `version prints xcept's version, the TensorFlow library loaded (and the CUDA and
cuDNN versions it was built for, when its wheel says), and the devices
TensorFlow lists for a session (TF_SessionListDevices).

--require-gpu exits 5 with one line, naming the library and where it looked for
the CUDA libraries, when TensorFlow sees no GPU: the GPU image runs it first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVersion(g, requireGPU)
		},
	}
	cmd.Flags().BoolVar(&requireGPU, "require-gpu", false, "exit 5 when TensorFlow sees no GPU")
	return cmd
}

func runVersion(g *Globals, requireGPU bool) error {
	info := VersionInfo{Xcept: version, Go: runtime.Version()}
	if py, err := pyenv.Python(); err == nil {
		info.Python = py
	}
	var loadErr error
	if info.TensorFlow, loadErr = graph.Version(); loadErr == nil {
		info.Library, loadErr = graph.LibraryPath()
	}
	var guardErr error
	if loadErr == nil {
		info.Build = graph.ReadBuildInfo(info.Library)
		// Memory growth: listing must not reserve a GPU's memory.
		opts := graph.SessionOptions{GPUMemoryGrowth: true}
		check := device.Check
		if requireGPU {
			check = device.RequireGPU
		}
		var p *device.Placement
		if p, guardErr = check(opts); p != nil {
			info.Devices = p.Devices
		} else if info.Devices, loadErr = graph.ListDevices(opts); loadErr != nil {
			loadErr = fmt.Errorf("listing TensorFlow's devices: %w", loadErr)
		}
	}
	if loadErr != nil {
		info.Error = loadErr.Error()
	} else if guardErr != nil {
		info.Error = guardErr.Error()
	}
	err := g.Result(info, func(w io.Writer) error {
		printVersion(w, info)
		return nil
	})
	if err != nil {
		return err
	}
	if loadErr != nil {
		return cli.Modelf("%v", loadErr)
	}
	return guardErr
}

func printVersion(w io.Writer, info VersionInfo) {
	fmt.Fprintf(w, "xcept %s (%s)\n", info.Xcept, info.Go)
	if info.TensorFlow != "" {
		build := ""
		switch b := info.Build; {
		case b == nil:
		case b.CUDABuild:
			build = fmt.Sprintf(", built for CUDA %s and cuDNN %s", b.CUDA, b.CuDNN)
		default:
			build = ", a CPU-only build"
		}
		fmt.Fprintf(w, "tensorflow %s (%s%s)\n", info.TensorFlow, info.Library, build)
	}
	for _, d := range info.Devices {
		mem := ""
		if d.Type != "CPU" {
			mem = fmt.Sprintf(", %.1f GiB", float64(d.MemoryBytes)/(1<<30))
		}
		fmt.Fprintf(w, "device %s (%s%s)\n", d.Type, d.Name, mem)
	}
	if info.Python != "" {
		fmt.Fprintf(w, "python %s\n", info.Python)
	}
}
