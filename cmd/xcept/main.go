// Command xcept turns a folder of labelled images into a verified, deployable
// Keras Xception image classifier, driven from Go through the TensorFlow C API.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/fault"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code. It is the
// only place where errors become exit codes and one-line messages, and where
// a domain error about a path names the flag that gave it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root, g := newRoot(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return cli.ExitOK
	}
	if cmd != nil {
		err = g.nameFlags(cmd, err)
	}
	if ctx.Err() != nil && cli.KindOf(err) == cli.KindInternal {
		err = fault.ErrInterrupted
	}
	err = cli.AsWriteFailure(err)
	fmt.Fprintln(stderr, "xcept: "+oneLine(err.Error()))
	return cli.ExitCode(err)
}

// nameFlags is err naming cmd's flags where it names a path they gave, a
// setting they set or an option (cli.NameFlags).
func (g *Globals) nameFlags(cmd *cobra.Command, err error) error {
	return cli.NameFlags(err, func(name string) (string, bool) {
		if f := cmd.Flags().Lookup(name); f != nil {
			return f.Value.String(), true
		}
		return "", false
	}, g.keyFlags)
}

// oneLine keeps an error message on a single line so that scripts can grep it.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
