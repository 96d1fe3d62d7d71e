// Package plugin runs deploy-time plugins under the OpenEAS plugin contract (docs/plugins.md):
// it resolves a plugin image to a local executable, computes the content key that caches a
// plugin's result, writes the plugin's config file, and runs the plugin as a child process in
// its own process group.
package plugin

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Environment variables of the plugin contract.
const (
	EnvInput  = "EAS_PLUGIN_INPUT"  // read-only input model directory
	EnvOutput = "EAS_PLUGIN_OUTPUT" // empty directory for the resulting model
	EnvConfig = "EAS_PLUGIN_CONFIG" // JSON file {"config":…, "processor":…, "metadata":…}
	EnvReport = "EAS_PLUGIN_REPORT" // where the plugin writes its JSON report
	EnvDevice = "EAS_PLUGIN_DEVICE" // "cpu" or "gpu": where the service will run (docs/plugins.md)
)

// RuntimeFile is the optional file a plugin writes into its output directory to choose the
// bundle's processor.Runtime settings.
const RuntimeFile = "runtime.json"

// LocalScheme prefixes images that name a local executable: local:///abs/path.
const LocalScheme = "local://"

// bladeImage matches the Blade deploy images on any registry host or region, e.g.
// registry.cn-shanghai.aliyuncs.com/eas/pai-blade-deploy:cpu_latest.
var bladeImage = regexp.MustCompile(`^(?:[A-Za-z0-9][A-Za-z0-9.-]*(?::[0-9]+)?/)?eas/pai-blade-deploy:(cpu|gpu)_latest$`)

// IsBladeImage reports whether image is one of the Blade deploy images.
func IsBladeImage(image string) bool { return bladeImage.MatchString(strings.TrimSpace(image)) }

// Resolver maps a plugin image to an executable for the local backend.
type Resolver struct {
	// BladeBinary is the path of the blade executable shipped with OpenEAS; "" when absent.
	BladeBinary string
}

// Resolve returns the executable that runs image: the Blade images resolve to BladeBinary,
// local:///abs/path to that executable; anything else is refused, since the local backend
// cannot run container images.
func (r Resolver) Resolve(image string) (string, error) {
	image = strings.TrimSpace(image)
	switch {
	case IsBladeImage(image):
		if r.BladeBinary == "" {
			return "", fmt.Errorf("image %q: blade is not installed: build it with make build", image)
		}
		if err := checkExecutable(r.BladeBinary); err != nil {
			return "", fmt.Errorf("image %q: blade is not installed (%v): build it with make build", image, err)
		}
		return r.BladeBinary, nil
	case strings.HasPrefix(image, LocalScheme):
		p := strings.TrimPrefix(image, LocalScheme)
		if !filepath.IsAbs(p) {
			return "", fmt.Errorf("image %q: want local:///absolute/path/to/executable", image)
		}
		p = filepath.Clean(p)
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("image %q: %w", image, err)
		}
		return p, nil
	default:
		return "", fmt.Errorf("image %q cannot run on the local backend: only the Blade images and local:///path are supported", image)
	}
}

func checkExecutable(p string) error {
	info, err := os.Stat(p)
	if err != nil {
		if os.IsNotExist(err) {
			return fmt.Errorf("%s does not exist", p)
		}
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", p)
	}
	if info.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", p)
	}
	return nil
}

// DeviceOf returns the device a plugin command targets: the value of --optimize_for
// ("--optimize_for gpu" or "--optimize_for=gpu"), lower-cased, or "cpu" when absent.
func DeviceOf(command string) string {
	words, err := Split(command)
	if err != nil {
		return "cpu"
	}
	for i, w := range words {
		if v, ok := strings.CutPrefix(w, "--optimize_for="); ok {
			return strings.ToLower(v)
		}
		if w == "--optimize_for" && i+1 < len(words) {
			return strings.ToLower(words[i+1])
		}
	}
	return "cpu"
}
