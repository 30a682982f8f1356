package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/xcept/xcept/configs"
	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/pyenv"
)

// Globals are the flags every command shares, and the writers it prints to.
type Globals struct {
	ConfigFile string
	Verbose    bool
	cli.Output // --json, --quiet; Stdout for data (results, JSON), Stderr for people (progress, warnings)
	// keyFlags are the configuration keys the verb's flags set (Config's
	// bindings), for naming the flag in an error about a setting.
	keyFlags map[string]string
}

// NewRootCmd builds the command tree. Each verb lives in its own file as an
// Options struct, a NewXxxCmd that alone touches cobra and viper, and a run
// function that sees only the Options.
func NewRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root, _ := newRoot(stdout, stderr)
	return root
}

// newRoot is NewRootCmd and the Globals its verbs share.
func newRoot(stdout, stderr io.Writer) (*cobra.Command, *Globals) {
	g := &Globals{Output: cli.Output{Stdout: stdout, Stderr: stderr}, keyFlags: map[string]string{}}
	root := &cobra.Command{
		Use:   "xcept",
		Short: "Turn a folder of labelled images into a verified, deployable Xception classifier",
		Long: `xcept audits and prepares an image folder, trains a Keras Xception classifier
through the TensorFlow C API, evaluates it, and exports models that are checked
against the trained one. Run "xcept COMMAND --help" for each step.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			graph.SetVerbose(g.Verbose)
			pyenv.Verbose = g.Verbose
			// An unreadable --config is the same usage error for every
			// command, those that read no key of it included.
			_, err := g.Config(nil, nil)
			return err
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return cli.Usagef("%v (see --help)", err)
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.ConfigFile, "config", "", "YAML configuration file (layered over the defaults)")
	pf.BoolVar(&g.JSON, "json", false, "print machine-readable JSON results on stdout")
	pf.BoolVarP(&g.Quiet, "quiet", "q", false, "print only results and errors")
	pf.BoolVarP(&g.Verbose, "verbose", "v", false, "print more detail, including TensorFlow's own logs")

	for _, add := range verbs {
		root.AddCommand(add(g))
	}
	root.InitDefaultCompletionCmd()
	root.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	usageArgs(root)
	return root, g
}

// usageArgs makes every command's check of its positional arguments a usage
// error (exit 2) that says which arguments the command takes; cobra's own
// ("unknown command ...") would exit 1, the code for a bug.
func usageArgs(cmd *cobra.Command) {
	check := cmd.Args
	if check == nil {
		check = cobra.NoArgs
	}
	cmd.Args = func(c *cobra.Command, args []string) error {
		err := check(c, args)
		switch {
		case err == nil:
			return nil
		case !c.HasParent():
			var names []string
			for _, sub := range c.Commands() {
				if sub.IsAvailableCommand() {
					names = append(names, sub.Name())
				}
			}
			return cli.Usagef("unknown command %q: the commands are %s (see xcept --help)", args[0], strings.Join(names, ", "))
		case strings.HasPrefix(err.Error(), "unknown command"): // cobra.NoArgs
			return cli.Usagef("%s takes no arguments, only flags, but got %q (usage: %s; see --help)", c.CommandPath(), args[0], c.UseLine())
		}
		return cli.Usagef("%s: %v (usage: %s; see --help)", c.CommandPath(), err, c.UseLine())
	}
	for _, sub := range cmd.Commands() {
		usageArgs(sub)
	}
}

// verbs lists the command constructors; each verb file appends itself in init.
var verbs []func(*Globals) *cobra.Command

// Config loads the layered configuration: embedded defaults < --config file <
// XCEPT_* environment < the given flags, bound to keys by bind (key -> flag name).
// Unknown keys in the file are usage errors, so a typo never silently does nothing.
func (g *Globals) Config(flags *pflag.FlagSet, bind map[string]string) (*viper.Viper, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(configs.Default)); err != nil {
		return nil, fmt.Errorf("embedded default configuration: %w", err)
	}
	known := map[string]bool{}
	for _, k := range v.AllKeys() {
		known[k] = true
	}
	if g.ConfigFile != "" {
		data, err := os.ReadFile(g.ConfigFile)
		if err != nil {
			return nil, cli.Usagef("--config %s: %v", g.ConfigFile, err)
		}
		file := viper.New()
		file.SetConfigType("yaml")
		if err := file.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, cli.Usagef("--config %s: not valid YAML: %v", g.ConfigFile, oneLine(err.Error()))
		}
		var unknown []string
		for _, k := range file.AllKeys() {
			if !known[k] {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return nil, cli.Usagef("--config %s: unknown key %s (see configs/default.yaml for the keys)", g.ConfigFile, strings.Join(unknown, ", "))
		}
		if err := v.MergeConfigMap(file.AllSettings()); err != nil {
			return nil, cli.Usagef("--config %s: %v", g.ConfigFile, err)
		}
	}
	v.SetEnvPrefix("XCEPT")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for key, name := range bind {
		f := flags.Lookup(name)
		if f == nil {
			return nil, fmt.Errorf("internal: flag --%s for key %s does not exist", name, key)
		}
		if err := v.BindPFlag(key, f); err != nil {
			return nil, err
		}
		if g.keyFlags == nil {
			g.keyFlags = map[string]string{}
		}
		g.keyFlags[key] = name
	}
	return v, nil
}

// decodeSection decodes the flat section prefix (e.g. "augment") into dst,
// whose fields carry mapstructure tags. It reads each key through v.Get so
// that XCEPT_* environment values count: viper's UnmarshalKey ignores them
// for nested keys.
func decodeSection(v *viper.Viper, prefix string, dst any) error {
	values := map[string]any{}
	for _, k := range v.AllKeys() {
		if rest, ok := strings.CutPrefix(k, prefix+"."); ok {
			values[rest] = v.Get(k)
		}
	}
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{Result: dst, WeaklyTypedInput: true})
	if err != nil {
		return err
	}
	if err := dec.Decode(values); err != nil {
		return cli.Usagef("%s: %v", prefix, oneLine(err.Error()))
	}
	return nil
}
