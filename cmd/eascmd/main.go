// Command eascmd is the OpenEAS command-line client, command-compatible with Alibaba
// PAI-EAS's eascmd. Run `eascmd --help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// version is set at build time: -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := Options{
		Args:        os.Args[1:],
		Stdin:       os.Stdin,
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
		EnvEndpoint: os.Getenv("EAS_ENDPOINT"),
		EnvToken:    os.Getenv("EAS_ADMIN_TOKEN"),
		EnvOSS: OSSEnv{
			Endpoint: os.Getenv("EAS_OSS_ENDPOINT"), Bucket: os.Getenv("EAS_OSS_BUCKET"),
			AccessKeyID: os.Getenv("OSS_ACCESS_KEY_ID"), AccessKeySecret: os.Getenv("OSS_ACCESS_KEY_SECRET"),
		},
		Location: time.Local,
		Version:  version,
	}
	if home, err := os.UserHomeDir(); err == nil {
		opts.ConfigPath = filepath.Join(home, ".eascmd", "config.json")
	}
	err := Run(ctx, opts)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.As(err, new(*usageError)):
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(2)
	case errors.As(err, new(*reportedError)):
		os.Exit(1) // already printed as a [FAILED] line
	default:
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
