package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/modelsource"
	"github.com/openeas/openeas/internal/objstore"
)

// envBundleStore names the shared store, as for easd (the pods get it from the object-store Secret).
const envBundleStore = "EASD_BUNDLE_STORE"

const storeEnvHelp = `
Environment (the pods get it from easd's --object-store-secret):
  EASD_BUNDLE_STORE      the shared store: a directory, oss://bucket/prefix or s3://bucket/prefix
                         (overridden by --bundle-store)
  EAS_OSS_ENDPOINT, OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_SESSION_TOKEN   for oss://
  AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
  AWS_SESSION_TOKEN, AWS_REGION                                                    for s3://
`

// storeFlags are the flags that say where the shared store is, as easd's of the same names.
type storeFlags struct {
	spec                     string
	ossEndpoint, ossAddress  string
	s3Endpoint, s3Addressing string
}

func (f *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.spec, "bundle-store", "", "the shared store easd seals bundles into: a directory, oss://bucket/prefix or s3://bucket/prefix (default $"+envBundleStore+")")
	fs.StringVar(&f.ossEndpoint, "oss-endpoint", "", "endpoint for oss:// (default $EAS_OSS_ENDPOINT)")
	fs.StringVar(&f.ossAddress, "oss-addressing", objstore.AddressingAuto, "oss:// request style: auto, path or virtual")
	fs.StringVar(&f.s3Endpoint, "s3-endpoint", "", "endpoint for s3:// (default $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else s3.amazonaws.com)")
	fs.StringVar(&f.s3Addressing, "s3-addressing", objstore.AddressingAuto, "s3:// request style: auto, path or virtual")
}

// open opens the shared store exactly as easd does (bundle.OpenShared); only here does the
// environment come in.
func (f *storeFlags) open(ctx context.Context, getenv func(string) string, log *slog.Logger) (*bundle.Shared, error) {
	spec := f.spec
	if spec == "" {
		spec = getenv(envBundleStore)
	}
	if spec == "" || spec == "local" {
		return nil, fmt.Errorf("no shared store: set $%s or --bundle-store to the store easd was started with (--bundle-store)", envBundleStore)
	}
	oss, s3 := objstore.ConfigFromEnv(getenv)
	if f.ossEndpoint != "" {
		oss.Endpoint = f.ossEndpoint
	}
	if f.s3Endpoint != "" {
		s3.Endpoint = f.s3Endpoint
	}
	oss.Addressing, s3.Addressing = f.ossAddress, f.s3Addressing
	return bundle.OpenShared(ctx, spec, oss, s3, log)
}

// runFetchBundle is `eas-worker fetch-bundle`: the worker pod's init container.
func runFetchBundle(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("eas-worker fetch-bundle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	digest := fs.String("digest", "", "the sealed bundle's digest, sha256:<64 hex digits>; required")
	dir := fs.String("dir", "", "directory to unpack it into (made when missing; must be empty or hold this bundle already); required")
	var sf storeFlags
	sf.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: eas-worker fetch-bundle --digest sha256:… --dir DIR [flags]\n\n"+
			"Copies a sealed bundle from the shared store, checks that it hashes to its digest and unpacks it into DIR.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), storeEnvHelp)
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *digest == "" || *dir == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "eas-worker fetch-bundle: --digest and --dir are required, and nothing else")
		fs.Usage()
		return 2
	}
	if _, err := modelsource.ParseDigest(*digest); err != nil {
		fmt.Fprintf(stderr, "eas-worker fetch-bundle: --digest: %v\n", err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	shared, err := sf.open(ctx, getenv, log)
	if err == nil {
		err = bundle.FetchBundle(ctx, shared.Bundles, *digest, *dir)
		if errors.Is(err, bundle.ErrNotFound) {
			err = fmt.Errorf("bundle %s is not in the shared store %s (is easd using the same --bundle-store?): %w", *digest, shared.Location, err)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "eas-worker fetch-bundle:", err)
		return 1
	}
	log.Info("bundle fetched and verified", "digest", *digest, "dir", *dir, "store", shared.Location)
	return 0
}

// runObjstore is `eas-worker objstore get|put`: the data mover of plugin Jobs. Prefixes are
// relative to the shared store's jobs/ area, as easd's side of the Job uses them.
func runObjstore(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("eas-worker objstore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: eas-worker objstore [flags] get PREFIX DIR [PREFIX DIR…]\n"+
			"       eas-worker objstore [flags] put DIR PREFIX [DIR PREFIX…]\n\n"+
			"Copies directory trees from (get) or to (put) the jobs/ area of the shared store, one\n"+
			"object or file per file, keyed PREFIX + relative path. get of a PREFIX with nothing under it\n"+
			"leaves DIR empty.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), storeEnvHelp)
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rest := fs.Args()
	if len(rest) < 3 || len(rest)%2 != 1 || (rest[0] != "get" && rest[0] != "put") {
		fmt.Fprintln(stderr, "eas-worker objstore: want get PREFIX DIR [PREFIX DIR…] or put DIR PREFIX [DIR PREFIX…]")
		fs.Usage()
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	shared, err := sf.open(ctx, getenv, log)
	if err != nil {
		fmt.Fprintln(stderr, "eas-worker objstore:", err)
		return 1
	}
	op, pairs := rest[0], rest[1:]
	for i := 0; i < len(pairs); i += 2 {
		var prefix, dir string
		if op == "get" {
			prefix, dir = pairs[i], pairs[i+1]
			err = shared.Jobs.GetTree(ctx, prefix, dir)
		} else {
			dir, prefix = pairs[i], pairs[i+1]
			err = shared.Jobs.PutTree(ctx, prefix, dir)
		}
		if err != nil {
			fmt.Fprintf(stderr, "eas-worker objstore %s: %v\n", op, err)
			return 1
		}
		log.Info("tree copied", "op", op, "prefix", prefix, "dir", dir, "store", shared.Location)
	}
	return 0
}
