package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/xcept/xcept/internal/cli"
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
	Python     string `json:"python,omitempty"`
	Error      string `json:"error,omitempty"`
}

// NewVersionCmd builds `xcept version`.
func NewVersionCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the xcept and TensorFlow versions and the library loaded",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVersion(g)
		},
	}
}

func runVersion(g *Globals) error {
	info := VersionInfo{Xcept: version, Go: runtime.Version()}
	if py, err := pyenv.Python(); err == nil {
		info.Python = py
	}
	var loadErr error
	if info.TensorFlow, loadErr = graph.Version(); loadErr == nil {
		info.Library, loadErr = graph.LibraryPath()
	}
	if loadErr != nil {
		info.Error = loadErr.Error()
	}
	err := g.Result(info, func(w io.Writer) error {
		fmt.Fprintf(w, "xcept %s (%s)\n", info.Xcept, info.Go)
		if loadErr == nil {
			fmt.Fprintf(w, "tensorflow %s (%s)\n", info.TensorFlow, info.Library)
		}
		if info.Python != "" {
			fmt.Fprintf(w, "python %s\n", info.Python)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if loadErr != nil {
		return cli.Modelf("%v", loadErr)
	}
	return nil
}
