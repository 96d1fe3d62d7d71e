package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/openeas/openeas/internal/api"
)

// Options is everything eascmd takes from its process; main fills it.
type Options struct {
	Args           []string // command line without the program name
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// ConfigPath is the default config file (main: ~/.eascmd/config.json); --config overrides.
	ConfigPath string
	// EnvEndpoint and EnvToken come from EAS_ENDPOINT and EAS_ADMIN_TOKEN; non-empty
	// values override the config file.
	EnvEndpoint, EnvToken string
	// EnvOSS comes from EAS_OSS_ENDPOINT, EAS_OSS_BUCKET, OSS_ACCESS_KEY_ID and
	// OSS_ACCESS_KEY_SECRET; non-empty values override the config file (for upload).
	EnvOSS     OSSEnv
	HTTPClient *http.Client   // nil: a client without timeout (events stream)
	Location   *time.Location // for printed times; nil: UTC
	Version    string         // the client's version
	// ReconnectDelay is the pause before following events again when the server ended
	// the stream before the service settled. Default 1s.
	ReconnectDelay time.Duration
}

// usageError is a bad command line (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// reportedError is a failure already shown to the user (a "[FAILED] …" line).
type reportedError struct{ msg string }

func (e *reportedError) Error() string { return e.msg }

// command documents one eascmd subcommand; runners holds its code (kept apart so the
// commands' own help can read this table without an initialization cycle).
type command struct{ name, args, summary string }

var commands = []command{
	{"config", "-e ENDPOINT -k TOKEN", "save the server endpoint and admin token"},
	{"create", "FILE", "create a service from a service.json and follow it until it runs"},
	{"list", "", "list services"},
	{"desc", "NAME [-o json]", "describe a service"},
	{"modify", "NAME [-s FILE] [-Dkey=value]...", "change a service and follow it until it settles"},
	{"start", "NAME", "start a stopped service"},
	{"stop", "NAME", "stop a service"},
	{"delete", "NAME [-y]", "delete a service"},
	{"events", "NAME", "show a service's events"},
	{"upload", "FILE|DIR [--bucket B] [--key K]", "upload a model to object storage and print its oss:// path"},
	{"version", "", "show client and server versions"},
	{"bench", "NAME -c CONC (-n N | -d DURATION) --data FILE [--content-type T] [-o json]", "load-test a service: throughput, latency percentiles, errors by status"},
}

type runner func(ctx context.Context, c *cli, args []string) error

func runners() map[string]runner {
	return map[string]runner{
		"config": runConfig, "create": runCreate, "list": runList, "desc": runDesc,
		"modify": runModify, "start": runStart, "stop": runStop, "delete": runDelete,
		"events": runEvents, "version": runVersion, "upload": runUpload, "bench": runBench,
	}
}

const envHelp = `Environment:
  EAS_ENDPOINT     server address (e.g. http://127.0.0.1:8080); overrides the config file
  EAS_ADMIN_TOKEN  admin token; overrides the config file
  EAS_OSS_ENDPOINT, EAS_OSS_BUCKET, OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET
                   object storage for upload; override the config file
`

// cli is the state one Run shares with the commands.
type cli struct {
	opts       Options
	configPath string
	client     *api.Client // set by connect
}

// Run executes the command line in opts.Args.
func Run(ctx context.Context, opts Options) error {
	if opts.Stdin == nil {
		opts.Stdin = strings.NewReader("")
	}
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.ReconnectDelay <= 0 {
		opts.ReconnectDelay = time.Second
	}
	c := &cli{opts: opts, configPath: opts.ConfigPath}

	top := flag.NewFlagSet("eascmd", flag.ContinueOnError)
	top.SetOutput(opts.Stderr)
	top.StringVar(&c.configPath, "config", c.configPath, "config `file`")
	top.Usage = func() { c.topUsage(opts.Stderr) }
	if err := top.Parse(opts.Args); err != nil {
		return err
	}
	args := top.Args()
	if len(args) == 0 {
		c.topUsage(opts.Stderr)
		return usagef("no command given")
	}
	name, args := args[0], args[1:]
	if name == "help" {
		if len(args) == 0 {
			c.topUsage(opts.Stdout)
			return nil
		}
		name, args = args[0], []string{"--help"}
	}
	if run, ok := runners()[name]; ok {
		return run(ctx, c, args)
	}
	return usagef("unknown command %q (see eascmd --help)", name)
}

func (c *cli) topUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: eascmd [--config FILE] COMMAND [ARGS]\n\nCommands:\n")
	for _, cmd := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprintf(w, "\nRun 'eascmd COMMAND --help' for a command's arguments.\n\n")
	fmt.Fprintf(w, "Flags:\n  --config FILE    config file (default %s)\n\n", c.opts.ConfigPath)
	io.WriteString(w, envHelp)
}

// flags returns the FlagSet of a command, with the shared --config flag and a usage text.
func (c *cli) flags(name string) *flag.FlagSet {
	var cmd command
	for _, cm := range commands {
		if cm.name == name {
			cmd = cm
		}
	}
	fs := flag.NewFlagSet("eascmd "+name, flag.ContinueOnError)
	fs.SetOutput(c.opts.Stderr)
	fs.StringVar(&c.configPath, "config", c.configPath, "config `file`")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: eascmd %s %s\n\n%s.\n\nFlags:\n", cmd.name, cmd.args, capitalize(cmd.summary))
		fs.PrintDefaults()
		fmt.Fprintln(w)
		io.WriteString(w, envHelp)
	}
	return fs
}

// parse parses flags placed anywhere among the positional arguments (eascmd users write
// `modify NAME -s FILE`), expands "-Dkey=value" into "-D key=value", and checks the
// number of positional arguments.
func parse(fs *flag.FlagSet, args []string, npos int) ([]string, error) {
	var expanded []string
	for _, a := range args {
		if len(a) > 2 && strings.HasPrefix(a, "-D") {
			expanded = append(expanded, "-D", a[2:])
			continue
		}
		expanded = append(expanded, a)
	}
	var pos []string
	rest := expanded
	for {
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		rest = rest[1:]
	}
	if len(pos) != npos {
		want := "no arguments"
		if npos == 1 {
			want = "one argument"
		}
		return nil, usagef("%s takes %s, got %d (see %s --help)", fs.Name(), want, len(pos), fs.Name())
	}
	return pos, nil
}

// connect makes the API client from the config file and the environment.
func (c *cli) connect() error {
	cfg, err := loadConfig(c.configPath)
	if err != nil {
		return err
	}
	if c.opts.EnvEndpoint != "" {
		cfg.Endpoint = c.opts.EnvEndpoint
	}
	if c.opts.EnvToken != "" {
		cfg.Token = c.opts.EnvToken
	}
	if cfg.Endpoint == "" {
		return errors.New("no server endpoint: run 'eascmd config -e http://HOST:PORT -k TOKEN' or set EAS_ENDPOINT")
	}
	c.client = api.NewClient(cfg.Endpoint, cfg.Token, c.opts.HTTPClient)
	return nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
