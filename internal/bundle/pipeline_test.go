package bundle_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/modelsource"
	"github.com/openeas/openeas/internal/plugin"
	"github.com/openeas/openeas/internal/plugin/plugintest"
)

func modelTarGz(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range map[string]string{"m.onnx": "onnx-model", "labels.txt": "cat\ndog\n"} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// TestPipeline runs what the deploy pipeline does with these packages: fetch a model over HTTP,
// cache it, run a plugin on it, cache the plugin result, and seal a bundle; then deploys the
// same service again and checks that the plugin result and the bundle are reused.
func TestPipeline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	exe, err := plugintest.Build(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	archive := modelTarGz(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(archive) }))
	defer srv.Close()
	root := filepath.Join(t.TempDir(), "data")
	store, err := bundle.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { modelsource.RemoveAll(root) }) // sealed entries are read-only
	quiet := slog.New(slog.DiscardHandler)

	deploy := func() (digest string, cached bool) {
		f, err := modelsource.Fetch(ctx, srv.URL+"/models/m.tar.gz", modelsource.Options{Dir: store.TmpDir(), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		modelDigest, modelDir, err := store.PutModel(ctx, f.Dir)
		if err != nil {
			t.Fatal(err)
		}
		entry, err := modelsource.ResolveEntry(modelDir, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		image := "local://" + exe
		command := "scale-plugin --mode eas_plugin --optimize_for cpu"
		spec := plugin.Spec{Image: image, Command: command, Config: json.RawMessage(`{"intra_op_threads": 2}`), Device: plugin.DeviceOf(command)}
		meta := json.RawMessage(`{"instance": 1}`)
		key := plugin.Key(modelDigest, spec, []byte(`"onnxruntime_cpu"`), meta, "test")

		outDir, report, cached := store.CachedPlugin(key)
		var dur time.Duration
		if !cached {
			resolved, err := plugin.Resolver{}.Resolve(image)
			if err != nil {
				t.Fatal(err)
			}
			args, err := plugin.Split(command)
			if err != nil {
				t.Fatal(err)
			}
			work, err := os.MkdirTemp(store.TmpDir(), "run-")
			if err != nil {
				t.Fatal(err)
			}
			defer modelsource.RemoveAll(work)
			cfg := filepath.Join(work, "config.json")
			if err := plugin.WriteConfig(cfg, spec.Config, "onnxruntime_cpu", meta); err != nil {
				t.Fatal(err)
			}
			res, err := plugin.Run(ctx, plugin.RunOptions{
				Exe: resolved, Args: args, InputDir: modelDir, OutputDir: filepath.Join(work, "out"),
				ConfigFile: cfg, ReportFile: filepath.Join(work, "report.json"), Device: spec.Device, Logger: quiet,
				InputDigest: modelDigest,
			})
			if err != nil {
				t.Fatal(err)
			}
			if outDir, err = store.PutPlugin(ctx, key, filepath.Join(work, "out"), res.Report); err != nil {
				t.Fatal(err)
			}
			report, dur = res.Report, res.Duration
		}
		rt, ok, err := plugin.ReadRuntime(outDir)
		if err != nil || !ok {
			t.Fatalf("runtime.json: %v %v", ok, err)
		}
		outEntry, err := plugin.OutputEntry(outDir, entry)
		if err != nil {
			t.Fatal(err)
		}
		m := bundle.Manifest{
			Processor: "onnxruntime_cpu", ModelEntry: outEntry, Runtime: rt,
			ModelDigest: modelDigest, ModelPath: f.Source,
			Plugins: []bundle.PluginRun{{ID: plugin.ID(key), Image: image, Command: command, Key: key,
				Cached: cached, Report: "reports/plugin-0.json", Duration: dur}},
		}
		digest, err = store.Seal(ctx, outDir, m, map[string][]byte{"plugin-0.json": report})
		if err != nil {
			t.Fatal(err)
		}

		// The bundle holds what the plugin did to the model it was given.
		if err := store.Verify(digest); err != nil {
			t.Fatal(err)
		}
		got, dir, err := store.Open(digest)
		if err != nil {
			t.Fatal(err)
		}
		var applied struct {
			InputDigest string `json:"input_digest"`
		}
		b, err := os.ReadFile(filepath.Join(dir, "model", "plugin-applied.json"))
		if err != nil {
			t.Fatal(err)
		}
		json.Unmarshal(b, &applied)
		if applied.InputDigest != modelDigest || applied.InputDigest != f.Digest {
			t.Errorf("plugin saw %s, the fetched model is %s", applied.InputDigest, modelDigest)
		}
		if got.Runtime.IntraOpThreads != 2 || got.ModelEntry != "m.onnx" {
			t.Errorf("manifest = %+v", got)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "model", "m.onnx")); string(b) != "onnx-model" {
			t.Errorf("bundle model = %q", b)
		}
		return digest, cached
	}

	d1, cached1 := deploy()
	d2, cached2 := deploy()
	if cached1 || !cached2 {
		t.Errorf("plugin cache: first run cached=%v, second cached=%v; want false, true", cached1, cached2)
	}
	if d1 != d2 {
		t.Errorf("redeploying the same service made a new bundle: %s vs %s", d1, d2)
	}
	if ents, _ := os.ReadDir(store.TmpDir()); len(ents) != 0 {
		t.Errorf("pipeline left %d entries in tmp", len(ents))
	}
}
