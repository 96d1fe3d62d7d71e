// Package plugintest builds the test plugin testdata/plugins/scale-plugin for tests of the
// plugin runner and of the deploy pipeline.
package plugintest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
)

// ScalePluginName is the file name Build gives the test plugin.
const ScalePluginName = "scale-plugin"

// Build compiles testdata/plugins/scale-plugin into dir and returns the executable's path.
// It needs the go command on PATH.
func Build(ctx context.Context, dir string) (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("build scale-plugin: cannot locate the module")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	exe := filepath.Join(dir, ScalePluginName)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", exe, "./testdata/plugins/scale-plugin")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build scale-plugin: %v\n%s", err, out)
	}
	return exe, nil
}
