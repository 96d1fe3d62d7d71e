package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/modelsource"
	"github.com/openeas/openeas/internal/plugin"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/spec"
	"github.com/openeas/openeas/internal/store"
)

// modelExts are the model file extensions ResolveEntry looks for, by processor family.
var modelExts = map[string][]string{
	"onnx":       {".onnx"},
	"pytorch":    {".pt", ".pth", ".torchscript"},
	"tensorflow": {".pb"},
}

// build turns a stored version into a sealed bundle: fetch, plugins, seal. Every step is
// cached by content, so running build again after a crash redoes nothing that finished.
func (m *Manager) build(ctx context.Context, name string, version int) (string, error) {
	m.builds.RLock()
	defer m.builds.RUnlock()
	vr, err := m.store.GetVersion(ctx, name, version)
	if err != nil {
		return "", fmt.Errorf("load version %d: %w", version, err)
	}
	if vr.BundleDigest != "" {
		if err := m.opts.Bundles.VerifyContext(ctx, vr.BundleDigest); err == nil {
			return vr.BundleDigest, nil
		}
	}
	svc, err := spec.Parse(vr.Spec)
	if err != nil {
		return "", fmt.Errorf("stored service.json of version %d: %w", version, err)
	}
	proc, err := spec.ResolveProcessor(svc.Processor)
	if err != nil {
		return "", err
	}
	proc, fallback, err := m.place(proc)
	if err != nil {
		return "", err
	}
	if fallback != "" {
		m.event(ctx, name, api.EventWarning, fallback, "", "")
	}
	if err := m.store.UpdateVersion(ctx, name, version, func(v *store.VersionRecord) error {
		v.Status = store.VersionBuilding
		return nil
	}); err != nil {
		return "", err
	}

	// Fetch.
	m.okEvent(ctx, name, fmt.Sprintf("Downloading model from %s", modelsource.Redact(svc.ModelPath)))
	scratch, err := os.MkdirTemp(filepath.Join(m.opts.DataDir, "tmp"), "fetch-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(scratch)
	t0 := time.Now()
	ossCfg := m.opts.OSS
	if svc.OSSEndpoint != "" {
		ossCfg.Endpoint = svc.OSSEndpoint
	}
	fetched, err := modelsource.Fetch(ctx, svc.ModelPath, modelsource.Options{
		Dir: scratch, MaxBytes: m.opts.MaxModelBytes, MaxFiles: m.opts.MaxModelFiles, Logger: m.log,
		OSS: ossCfg, S3: m.opts.S3, ObjectCache: filepath.Join(m.opts.DataDir, "objects"), ObjectCacheMaxBytes: m.opts.ObjectCacheMaxBytes,
	})
	if err != nil {
		return "", fmt.Errorf("fetch model_path: %w", err)
	}
	// Keep the fetched tree once per digest: plugins and seals read it from the cache.
	modelDigest, modelDir, err := m.opts.Bundles.PutModel(ctx, fetched.Dir)
	if err != nil {
		return "", err
	}
	entry, err := modelsource.ResolveEntry(modelDir, svc.ModelEntry, modelExts[proc.Family])
	if err != nil {
		return "", fmt.Errorf("model_entry: %w", err)
	}
	from := ""
	if fetched.Objects > 0 && fetched.CachedObjects == fetched.Objects {
		from = ", from the object cache: nothing downloaded"
	} else if fetched.Objects > 0 {
		from = fmt.Sprintf(", %d object(s) downloaded, %d from the object cache", fetched.Objects-fetched.CachedObjects, fetched.CachedObjects)
	}
	m.okEvent(ctx, name, fmt.Sprintf("Model fetched: %d file(s), model %s, digest %s (%s%s)",
		len(fetched.Files), entry, short(modelDigest), time.Since(t0).Round(time.Millisecond), from))

	// Warm-up requests travel in the bundle; workers replay them before taking traffic and
	// fail their load (so the deploy) when one cannot be decoded or is rejected.
	warmUpDir := ""
	if svc.WarmUpDataPath != "" {
		w, err := modelsource.Fetch(ctx, svc.WarmUpDataPath, modelsource.Options{
			Dir: scratch, MaxBytes: m.opts.MaxModelBytes, MaxFiles: m.opts.MaxModelFiles, Logger: m.log,
		})
		if err != nil {
			return "", fmt.Errorf("fetch warm_up_data_path: %w", err)
		}
		warmUpDir = w.Dir
		m.okEvent(ctx, name, fmt.Sprintf("Warm-up data fetched from %s: %d file(s)", w.Source, len(w.Files)))
	}

	// Plugins, in order; each one's output is the next one's input.
	cur, curDigest := modelDir, modelDigest
	// TensorFlow: convert the GraphDef to ONNX first (cached per content), then the plugins
	// see the ONNX model, their configs re-keyed from the GraphDef's name (docs/tensorflow.md).
	var tfModel *bundle.TFModel
	if proc.Family == spec.FamilyTensorFlow {
		tfEntry := entry
		if cur, entry, tfModel, err = m.convertTF(ctx, name, svc, modelDir, modelDigest, entry); err != nil {
			return "", err
		}
		if curDigest, err = modelsource.TreeDigest(cur); err != nil {
			return "", err
		}
		for i := range svc.Plugins {
			if svc.Plugins[i].Config, err = tfPluginConfig(svc.Plugins[i].Config, tfEntry); err != nil {
				return "", fmt.Errorf("plugins[%d].config: %w", i, err)
			}
		}
	}
	var runtime processor.Runtime
	var runs []bundle.PluginRun
	reports := map[string][]byte{}
	procJSON, _ := json.Marshal(svc.Processor)
	metaJSON, _ := json.Marshal(svc.Metadata)
	for i, p := range svc.Plugins {
		ps := plugin.Spec{Index: i, Image: p.Image, Command: p.Command, Config: p.Config, Device: plugin.DeviceOf(p.Command)}
		if fallback != "" {
			// The plugin learns where the model will really run (docs/plugins.md).
			ps.Device = "cpu"
		}
		key := plugin.Key(curDigest, ps, procJSON, metaJSON, m.opts.RuntimeVersion)
		id := plugin.ID(key)
		run := bundle.PluginRun{ID: id, Image: p.Image, Command: p.Command, Key: key}
		out, report, cached := m.opts.Bundles.CachedPluginContext(ctx, key)
		if cached {
			run.Cached = true
			m.okEvent(ctx, name, fmt.Sprintf("Executing plugin %s: %s (result cached for this model and config: not run again)", id, p.Image))
		} else {
			m.okEvent(ctx, name, fmt.Sprintf("Executing plugin %s: %s", id, p.Image))
			out, report, run.Duration, err = m.runPlugin(ctx, ps, p.Config, cur, curDigest, key, svc)
			if err != nil {
				return "", fmt.Errorf("plugin %s (plugins[%d]): %w", id, i, err)
			}
			m.okEvent(ctx, name, fmt.Sprintf("Plugin %s finished in %s%s", id, run.Duration.Round(time.Millisecond), reportSummary(report)))
		}
		if len(report) > 0 {
			run.Report = fmt.Sprintf("reports/plugin-%d.json", i)
			reports[fmt.Sprintf("plugin-%d.json", i)] = report
		}
		runs = append(runs, run)
		if rt, ok, err := plugin.ReadRuntime(out); err != nil {
			return "", fmt.Errorf("plugin %s: %w", id, err)
		} else if ok {
			runtime = rt
		}
		// The plugin keeps the model's file name when it can; otherwise its single model file.
		if entry, err = plugin.OutputEntry(out, entry); err != nil {
			return "", fmt.Errorf("plugin %s: %w", id, err)
		}
		cur = out
		if curDigest, err = modelsource.TreeDigest(out); err != nil {
			return "", err
		}
	}

	// Seal.
	digest, err := m.opts.Bundles.SealWarmUp(ctx, cur, warmUpDir, bundle.Manifest{
		Schema: 1, Processor: servedBy(proc.Name, tfModel), ModelEntry: entry, Runtime: runtime, TensorFlow: tfModel,
		ModelDigest: modelDigest, ModelPath: fetched.Source, Plugins: runs, Created: time.Now().UTC(),
	}, reports)
	if err != nil {
		return "", fmt.Errorf("seal bundle: %w", err)
	}
	if err := m.store.UpdateVersion(ctx, name, version, func(v *store.VersionRecord) error {
		v.BundleDigest = digest
		v.Status = store.VersionReady
		return nil
	}); err != nil {
		return "", err
	}
	m.okEvent(ctx, name, fmt.Sprintf("Bundle sealed: %s", digest))
	return digest, nil
}

func (m *Manager) runPlugin(ctx context.Context, ps plugin.Spec, config json.RawMessage, input, inputDigest, key string, svc *spec.Service) (string, []byte, time.Duration, error) {
	var exe string
	var err error
	if m.opts.RunPlugin == nil {
		if exe, err = m.opts.Plugins.Resolve(ps.Image); err != nil {
			return "", nil, 0, err
		}
	}
	args, err := plugin.Split(ps.Command)
	if err != nil {
		return "", nil, 0, fmt.Errorf("command: %w", err)
	}
	work, err := os.MkdirTemp(filepath.Join(m.opts.DataDir, "tmp"), "plugin-")
	if err != nil {
		return "", nil, 0, err
	}
	defer os.RemoveAll(work)
	outDir := filepath.Join(work, "output")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		return "", nil, 0, err
	}
	metaJSON, _ := json.Marshal(svc.Metadata)
	cfgFile := filepath.Join(work, "config.json")
	if err := plugin.WriteConfig(cfgFile, config, svc.Processor, metaJSON); err != nil {
		return "", nil, 0, err
	}
	ro := plugin.RunOptions{
		Exe: exe, Args: args, InputDir: input, OutputDir: outDir, ConfigFile: cfgFile,
		ReportFile: filepath.Join(work, "report.json"), Device: ps.Device, InputDigest: inputDigest,
		Env: m.opts.PluginEnv, Timeout: m.opts.PluginTimeout, Logger: m.log,
	}
	var res *plugin.Result
	if m.opts.RunPlugin != nil {
		var r plugin.Result
		r, err = m.opts.RunPlugin(ctx, svc.Name, key, ps, ro)
		res = &r
	} else {
		res, err = plugin.Run(ctx, ro)
	}
	if err != nil {
		return "", nil, 0, err
	}
	dir, err := m.opts.Bundles.PutPlugin(ctx, key, outDir, res.Report)
	if err != nil {
		return "", nil, 0, fmt.Errorf("cache plugin result: %w", err)
	}
	return dir, res.Report, res.Duration, nil
}

func short(digest string) string {
	d := strings.TrimPrefix(digest, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return "sha256:" + d
}

// reportSummary quotes a Blade-shaped report's overall figures (", baseline 1.26 ms →
// optimized 1.14 ms, speedup 1.10"); empty for reports without them.
func reportSummary(report []byte) string {
	var r struct {
		Overall struct {
			Baseline  string `json:"baseline"`
			Optimized string `json:"optimized"`
			Speedup   string `json:"speedup"`
		} `json:"overall"`
	}
	if json.Unmarshal(report, &r) != nil || r.Overall.Speedup == "" {
		return ""
	}
	return fmt.Sprintf(": baseline %s → optimized %s, speedup %s", r.Overall.Baseline, r.Overall.Optimized, r.Overall.Speedup)
}
