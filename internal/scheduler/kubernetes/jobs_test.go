package kubernetes

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/openeas/openeas/internal/modelsource"
	"github.com/openeas/openeas/internal/plugin"
)

// playJob waits for the plugin Job, checks it runs the plugin's image and command under the
// plugin contract, then does what its pod would: read the input from the object store, write
// an output and a report there, and finish the Job with the given outcome.
func playJob(t *testing.T, ns string, store dirStore, name string, succeed bool) <-chan error {
	errc := make(chan error, 1)
	go func() {
		ctx := context.Background()
		var j *batchv1.Job
		deadline := time.Now().Add(time.Minute)
		for {
			var err error
			if name == "" { // the first plugin Job to appear
				var list *batchv1.JobList
				if list, err = suiteClient.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelRole + "=plugin"}); err == nil && len(list.Items) > 0 {
					j = &list.Items[0]
					break
				}
			} else if j, err = suiteClient.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
				break
			}
			if time.Now().After(deadline) {
				errc <- err
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		errc <- func() error {
			if name == "" {
				return finishJob(t, ns, store, j, nil, true)
			}
			spec := j.Spec.Template.Spec
			if len(spec.InitContainers) != 2 || len(spec.Containers) != 1 {
				t.Errorf("Job pod: %d init containers, %d containers", len(spec.InitContainers), len(spec.Containers))
				return nil
			}
			p := spec.InitContainers[1]
			if p.Image != "example.com/optimizer:1" || !slices.Equal(p.Command, []string{"optimize", "--level", "2"}) {
				t.Errorf("plugin container runs %s %v", p.Image, p.Command)
			}
			env := map[string]string{}
			for _, e := range p.Env {
				env[e.Name] = e.Value
			}
			if env[plugin.EnvInput] != jobInput || env[plugin.EnvOutput] != jobOutput || env[plugin.EnvDevice] != "gpu" ||
				env[plugin.EnvConfig] != jobConfig+"/config.json" || env[plugin.EnvReport] != jobReport+"/report.json" {
				t.Errorf("plugin env %v", env)
			}
			for _, m := range p.VolumeMounts {
				if m.MountPath == jobInput && !m.ReadOnly {
					t.Errorf("input mounted writable")
				}
			}
			if q := p.Resources.Limits[GPUResource]; q.String() != "1" {
				t.Errorf("gpu plugin without a GPU: %v", p.Resources)
			}
			if *j.Spec.BackoffLimit != 0 || len(j.OwnerReferences) != 1 || j.OwnerReferences[0].Kind != "Secret" {
				t.Errorf("Job backoff %d owners %+v", *j.Spec.BackoffLimit, j.OwnerReferences)
			}
			return finishJob(t, ns, store, j, func(in, out string) error {
				b, err := os.ReadFile(filepath.Join(in, "m.onnx"))
				if err != nil {
					return err
				}
				return os.WriteFile(filepath.Join(out, "m.onnx"), append(b, "-optimized"...), 0o644)
			}, succeed)
		}()
	}()
	return errc
}

// finishJob does the Job pod's work: transform (nil: copy) the input from the object store
// into an output there, with a report, then sets the Job's final status.
func finishJob(t *testing.T, ns string, store dirStore, j *batchv1.Job, transform func(in, out string) error, succeed bool) error {
	ctx := context.Background()
	prefix := j.Annotations["openeas.io/plugin-key"]
	in := filepath.Join(store.root, prefix, "input")
	if _, err := os.Stat(filepath.Join(store.root, prefix, "config", "config.json")); err != nil {
		return err
	}
	out, rep := t.TempDir(), t.TempDir()
	if transform == nil {
		os.Remove(out)
		if err := modelsource.CopyTree(ctx, in, out); err != nil {
			return err
		}
	} else if err := transform(in, out); err != nil {
		return err
	}
	os.WriteFile(filepath.Join(rep, "report.json"), []byte(`{"overall":{"speedup":"1.5"}}`), 0o644)
	{
		{
			if succeed {
				store.PutTree(ctx, prefix+"output/", out)
				store.PutTree(ctx, prefix+"report/", rep)
			}
			now := metav1.Now()
			cond := func(typ batchv1.JobConditionType, reason, msg string) batchv1.JobCondition {
				return batchv1.JobCondition{Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now}
			}
			j.Status.StartTime = &now
			if succeed {
				j.Status.Succeeded = 1
				j.Status.CompletionTime = &now
				j.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobSuccessCriteriaMet, "CompletionsReached", "Reached expected number of succeeded pods"),
					cond(batchv1.JobComplete, "CompletionsReached", "Reached expected number of succeeded pods")}
			} else {
				j.Status.Failed = 1
				j.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobFailureTarget, "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
					cond(batchv1.JobFailed, "BackoffLimitExceeded", "Job has reached the specified backoff limit")}
			}
			_, err := suiteClient.BatchV1().Jobs(ns).UpdateStatus(ctx, j, metav1.UpdateOptions{})
			return err
		}
	}
}

func TestPluginRunsAsJob(t *testing.T) {
	needCluster(t)
	ns := newNamespace(t)
	store := newDirStore(t.TempDir())
	b, _ := startBackend(t, ns, restrictedClient(t, ns), func(o *Options) { o.Plugins.Trees = store })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	run := func(t *testing.T, key string, succeed bool) (plugin.Result, string, error) {
		in := t.TempDir()
		os.WriteFile(filepath.Join(in, "m.onnx"), []byte("model-bytes"), 0o644)
		cfg := filepath.Join(t.TempDir(), "config.json")
		if err := plugin.WriteConfig(cfg, []byte(`{"level":2}`), "onnxruntime_cpu", nil); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "output")
		played := playJob(t, ns, store, plugin.ID(key), succeed)
		res, err := b.RunPlugin(ctx, "opt_svc", key, plugin.Spec{Image: "example.com/optimizer:1", Command: "optimize --level 2", Device: "gpu"},
			plugin.RunOptions{Args: []string{"optimize", "--level", "2"}, InputDir: in, OutputDir: out, ConfigFile: cfg,
				ReportFile: filepath.Join(t.TempDir(), "report.json"), Device: "gpu", Timeout: time.Minute})
		if perr := <-played; perr != nil {
			t.Fatalf("playing the Job: %v", perr)
		}
		return res, out, err
	}

	t.Run("success", func(t *testing.T) {
		res, out, err := run(t, "sha256:1111111111111111111111111111111111111111111111111111111111111111", true)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(filepath.Join(out, "m.onnx"))
		if string(got) != "model-bytes-optimized" || !strings.Contains(string(res.Report), `"speedup":"1.5"`) {
			t.Errorf("output %q report %s", got, res.Report)
		}
		// The result lives on in the pipeline's cache; the Job is removed.
		waitFor(t, "finished Job deleted", func() bool {
			_, err := suiteClient.BatchV1().Jobs(ns).Get(ctx, plugin.ID("sha256:1111"), metav1.GetOptions{})
			return err != nil
		})
	})

	t.Run("failure quotes the reason", func(t *testing.T) {
		_, _, err := run(t, "sha256:2222222222222222222222222222222222222222222222222222222222222222", false)
		t.Logf("MESSAGE %v", err)
		if err == nil || !strings.Contains(err.Error(), "plugin Job eas-plugin-22222222 failed: BackoffLimitExceeded: Job has reached the specified backoff limit") {
			t.Fatalf("RunPlugin: %v", err)
		}
	})

	t.Run("local images are refused", func(t *testing.T) {
		_, err := b.RunPlugin(ctx, "opt_svc", "sha256:33", plugin.Spec{Image: "local:///bin/true"}, plugin.RunOptions{Args: []string{"true"}})
		if err == nil || !strings.Contains(err.Error(), "runs container images only") {
			t.Fatalf("RunPlugin: %v", err)
		}
	})
}
