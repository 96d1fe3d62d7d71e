package kubernetes

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	klabels "k8s.io/apimachinery/pkg/labels"

	"github.com/openeas/openeas/internal/plugin"
)

// TreeStore moves directory trees between easd and pods through the object store. The Job's
// own containers run TreeCommand ("get"/"put") against the same store.
type TreeStore interface {
	// PutTree uploads every file under dir to keys prefix+relative/path (replacing what is there).
	PutTree(ctx context.Context, prefix, dir string) error
	// GetTree downloads every object under prefix into dir; a prefix with no objects leaves dir
	// empty and is no error.
	GetTree(ctx context.Context, prefix, dir string) error
}

// Paths inside a plugin Job's pod (an emptyDir each).
const (
	jobInput  = "/eas/input"
	jobOutput = "/eas/output"
	jobConfig = "/eas/config"
	jobReport = "/eas/report"

	pluginContainer = "plugin"
	labelJobName    = "batch.kubernetes.io/job-name"
	maxLogEvents    = 200 // plugin log lines turned into service events per run
)

// PluginOptions configure how plugins run as Jobs.
type PluginOptions struct {
	// Trees is the object store the Job's data moves through. Required for RunPlugin.
	Trees TreeStore
	// TreeCommand is the data mover in Image: "get PREFIX DIR [PREFIX DIR…]" downloads trees,
	// "put DIR PREFIX [DIR PREFIX…]" uploads them. Default ["eas-worker", "objstore"].
	TreeCommand []string
	// ImageFor maps a plugin image from service.json to the image and program the Job runs;
	// default: the Blade images run `blade` from Image, local:// images are refused, any other
	// image runs as written with its command as written.
	ImageFor func(image string, args []string) (string, []string, error)
}

// RunPlugin runs one plugin as a Kubernetes Job under the plugin contract and returns what
// plugin.Run returns for a local run: the output tree lands in o.OutputDir and the report is
// returned, so the deploy pipeline caches it by content key exactly as for a local run.
//
// The Job's pod: an init container downloads the input model and the config file from the
// object store; a second init container is the plugin itself (its image and command, the
// EAS_PLUGIN_* environment, the input mounted read-only); the main container uploads the
// output and the report. So the Job succeeds only once the result is in the object store.
// The plugin's log lines become service events; a failed Job's reason is quoted.
func (b *Backend) RunPlugin(ctx context.Context, service, key string, ps plugin.Spec, o plugin.RunOptions) (plugin.Result, error) {
	po := b.opts.Plugins
	if po.Trees == nil {
		return plugin.Result{}, errors.New("plugins on Kubernetes need an object store (none configured)")
	}
	if err := b.waitStarted(ctx); err != nil {
		return plugin.Result{}, err
	}
	image, args, err := po.imageFor(b.opts.Image, ps.Image, o.Args)
	if err != nil {
		return plugin.Result{}, err
	}
	id := plugin.ID(key)
	prefix := "plugins/" + strings.TrimPrefix(key, "sha256:") + "/"
	if err := po.Trees.PutTree(ctx, prefix+"input/", o.InputDir); err != nil {
		return plugin.Result{}, fmt.Errorf("upload plugin input: %w", err)
	}
	cfgDir, err := os.MkdirTemp("", "eas-plugin-config-")
	if err != nil {
		return plugin.Result{}, err
	}
	defer os.RemoveAll(cfgDir)
	if err := copyFile(o.ConfigFile, filepath.Join(cfgDir, "config.json")); err != nil {
		return plugin.Result{}, fmt.Errorf("plugin config: %w", err)
	}
	if err := po.Trees.PutTree(ctx, prefix+"config/", cfgDir); err != nil {
		return plugin.Result{}, fmt.Errorf("upload plugin config: %w", err)
	}

	root, err := b.ensureRoot(ctx, service, nil)
	if err != nil {
		return plugin.Result{}, err
	}
	job := b.pluginJob(service, id, prefix, image, args, o, root)
	jobs := b.c.BatchV1().Jobs(b.ns)
	// A Job of the same name is this same run (same content key) from an easd that stopped
	// while it ran: follow it when it is still going or finished well, replace a failed one.
	if cur, err := jobs.Get(ctx, job.Name, metav1.GetOptions{}); err == nil {
		if _, failed := jobFinished(cur); failed {
			if err := b.deleteJob(ctx, job.Name); err != nil {
				return plugin.Result{}, err
			}
		} else {
			b.event(service, "Normal", fmt.Sprintf("plugin %s: adopting Job %s from an earlier run", id, job.Name))
			job = nil
		}
	}
	if job != nil {
		if err := b.waitJobGone(ctx, job.Name); err != nil {
			return plugin.Result{}, err
		}
		if _, err := jobs.Create(ctx, job, metav1.CreateOptions{}); err != nil {
			return plugin.Result{}, refused("create Job "+job.Name, err)
		}
		b.event(service, "Normal", fmt.Sprintf("plugin %s: Job %s created (image %s)", id, job.Name, image))
	}
	name := jobName(id)
	res, err := b.followJob(ctx, service, id, name)
	if err != nil {
		if ctx.Err() != nil {
			// Abandoned (delete, shutdown): the Job must not keep a GPU busy.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			_ = b.deleteJob(dctx, name)
			cancel()
		}
		return res, err
	}
	if err := po.Trees.GetTree(ctx, prefix+"output/", o.OutputDir); err != nil {
		return plugin.Result{}, fmt.Errorf("download plugin output: %w", err)
	}
	repDir, err := os.MkdirTemp("", "eas-plugin-report-")
	if err != nil {
		return plugin.Result{}, err
	}
	defer os.RemoveAll(repDir)
	if err := po.Trees.GetTree(ctx, prefix+"report/", repDir); err != nil {
		return plugin.Result{}, fmt.Errorf("download plugin report: %w", err)
	}
	if data, err := os.ReadFile(filepath.Join(repDir, "report.json")); err == nil {
		res.Report = data
		if o.ReportFile != "" {
			if err := os.WriteFile(o.ReportFile, data, 0o644); err != nil {
				return plugin.Result{}, err
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return plugin.Result{}, err
	}
	// The result is cached by the pipeline now; the finished Job is only clutter.
	if err := b.deleteJob(ctx, name); err != nil {
		b.log.Warn("delete finished plugin Job", "job", name, "err", err)
	}
	return res, nil
}

// RunsPlugins reports whether RunPlugin can work: an object store for the Jobs' data is set.
func (b *Backend) RunsPlugins() bool { return b.opts.Plugins.Trees != nil }

func jobName(id string) string { return id } // plugin.ID: "eas-plugin-" + 8 hex digits

func (po PluginOptions) imageFor(own, image string, args []string) (string, []string, error) {
	if po.ImageFor != nil {
		return po.ImageFor(image, args)
	}
	if len(args) == 0 {
		return "", nil, fmt.Errorf("plugin image %q: empty command", image)
	}
	image = strings.TrimSpace(image)
	switch {
	case plugin.IsBladeImage(image):
		// The OpenEAS image ships blade, which speaks the plugin contract.
		return own, append([]string{"blade"}, args[1:]...), nil
	case strings.HasPrefix(image, plugin.LocalScheme):
		return "", nil, fmt.Errorf("plugin image %q names a file on the easd machine: the Kubernetes backend runs container images only", image)
	case image == "":
		return "", nil, errors.New("plugin image is empty")
	}
	return image, args, nil
}

func (b *Backend) pluginJob(service, id, prefix, image string, args []string, o plugin.RunOptions, root *corev1.Secret) *batchv1.Job {
	obj := ObjectName(service)
	tool := b.opts.Plugins.TreeCommand
	if len(tool) == 0 {
		tool = []string{"eas-worker", "objstore"}
	}
	var storeEnv []corev1.EnvFromSource
	if b.opts.ObjectStoreSecret != "" {
		storeEnv = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: b.opts.ObjectStoreSecret}}}}
	}
	device := o.Device
	if device == "" {
		device = "cpu"
	}
	var rr corev1.ResourceRequirements
	if device == "gpu" {
		one := corev1.ResourceList{GPUResource: *resource.NewQuantity(1, resource.DecimalSI)}
		rr = corev1.ResourceRequirements{Requests: one, Limits: one.DeepCopy()}
	}
	mount := func(name, path string, ro bool) corev1.VolumeMount {
		return corev1.VolumeMount{Name: name, MountPath: path, ReadOnly: ro}
	}
	vols := []corev1.Volume{}
	for _, v := range []string{"input", "output", "config", "report"} {
		vols = append(vols, corev1.Volume{Name: v, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	}
	lbl := labels(obj, "plugin")
	var deadline *int64
	if o.Timeout > 0 {
		deadline = new(int64(o.Timeout.Seconds()))
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: jobName(id), Namespace: b.ns, Labels: lbl,
			Annotations:     map[string]string{AnnotationService: service, "openeas.io/plugin-key": prefix},
			OwnerReferences: ownerRef(root),
		},
		Spec: batchv1.JobSpec{
			BackoffLimit:            new(int32(0)), // a plugin that fails fails the deploy; no blind retries
			ActiveDeadlineSeconds:   deadline,
			TTLSecondsAfterFinished: new(int32(3600)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbl, Annotations: map[string]string{AnnotationService: service}},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					AutomountServiceAccountToken: new(false),
					ServiceAccountName:           b.opts.WorkerServiceAccount,
					InitContainers: []corev1.Container{
						{
							Name: "fetch-input", Image: b.opts.Image, ImagePullPolicy: b.opts.ImagePullPolicy,
							Command:      append(append([]string{}, tool...), "get", prefix+"input/", jobInput, prefix+"config/", jobConfig),
							EnvFrom:      storeEnv,
							VolumeMounts: []corev1.VolumeMount{mount("input", jobInput, false), mount("config", jobConfig, false)},
						},
						{
							Name: pluginContainer, Image: image, ImagePullPolicy: b.opts.ImagePullPolicy, Command: args,
							Env: []corev1.EnvVar{
								{Name: plugin.EnvInput, Value: jobInput},
								{Name: plugin.EnvOutput, Value: jobOutput},
								{Name: plugin.EnvConfig, Value: jobConfig + "/config.json"},
								{Name: plugin.EnvReport, Value: jobReport + "/report.json"},
								{Name: plugin.EnvDevice, Value: device},
							},
							Resources: rr,
							// The contract says the input is read-only; here it really is.
							VolumeMounts: []corev1.VolumeMount{mount("input", jobInput, true), mount("output", jobOutput, false),
								mount("config", jobConfig, true), mount("report", jobReport, false)},
							TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						},
					},
					Containers: []corev1.Container{{
						Name: "upload-output", Image: b.opts.Image, ImagePullPolicy: b.opts.ImagePullPolicy,
						Command:      append(append([]string{}, tool...), "put", jobOutput, prefix+"output/", jobReport, prefix+"report/"),
						EnvFrom:      storeEnv,
						VolumeMounts: []corev1.VolumeMount{mount("output", jobOutput, true), mount("report", jobReport, true)},
					}},
					Volumes: vols,
				},
			},
		},
	}
}

// jobFinished reads a Job's terminal conditions.
func jobFinished(j *batchv1.Job) (complete, failed bool) {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			complete = true
		case batchv1.JobFailed:
			failed = true
		}
	}
	return complete, failed
}

// followJob waits for the Job to finish, tailing the plugin's log into events meanwhile.
func (b *Backend) followJob(ctx context.Context, service, id, name string) (plugin.Result, error) {
	logs := &jobLogs{b: b, service: service, id: id, started: map[string]bool{}}
	defer logs.wait()
	lctx, stopLogs := context.WithCancel(ctx)
	defer stopLogs()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		wake := b.wake()
		j, err := b.jobs.Jobs(b.ns).Get(name)
		switch {
		case apierrors.IsNotFound(err):
			// Not in the cache yet, or deleted under us; the API says which.
			if _, gerr := b.c.BatchV1().Jobs(b.ns).Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(gerr) {
				return plugin.Result{}, fmt.Errorf("plugin Job %s was deleted before it finished", name)
			}
		case err != nil:
			return plugin.Result{}, err
		default:
			for _, p := range b.jobPods(name) {
				logs.follow(lctx, p)
			}
			complete, failed := jobFinished(j)
			if failed {
				stopLogs()
				logs.wait()
				return plugin.Result{}, b.jobError(j, logs.tail())
			}
			if complete {
				var d time.Duration
				if j.Status.StartTime != nil && j.Status.CompletionTime != nil {
					d = j.Status.CompletionTime.Sub(j.Status.StartTime.Time)
				}
				stopLogs()
				logs.wait()
				return plugin.Result{Duration: d, StderrTail: logs.tail()}, nil
			}
		}
		select {
		case <-wake:
		case <-tick.C:
		case <-ctx.Done():
			return plugin.Result{}, ctx.Err()
		}
	}
}

func (b *Backend) jobPods(job string) []*corev1.Pod {
	pods, _ := b.pods.Pods(b.ns).List(klabels.SelectorFromSet(klabels.Set{labelJobName: job}))
	return pods
}

// jobError quotes the Job's failure condition and, when a pod reports it, how the plugin
// container ended.
func (b *Backend) jobError(j *batchv1.Job, tail []string) error {
	var msg string
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			msg = fmt.Sprintf("plugin Job %s failed: %s: %s", j.Name, c.Reason, c.Message)
		}
	}
	for _, p := range b.jobPods(j.Name) {
		for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			if why := containerWhy(cs); why != "" {
				msg += "; pod " + p.Name + " " + why
			}
		}
	}
	if len(tail) > 0 {
		msg += "; last log lines:\n  " + strings.Join(tail, "\n  ")
	}
	return errors.New(msg)
}

func (b *Backend) deleteJob(ctx context.Context, name string) error {
	bg := metav1.DeletePropagationBackground
	err := b.c.BatchV1().Jobs(b.ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg})
	if err != nil && !apierrors.IsNotFound(err) {
		return refused("delete Job "+name, err)
	}
	return nil
}

// waitJobGone waits until a deleted Job of that name has left the API (its finalizers done).
func (b *Backend) waitJobGone(ctx context.Context, name string) error {
	for {
		_, err := b.c.BatchV1().Jobs(b.ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return refused("read Job "+name, err)
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// jobLogs streams the plugin container's log of each pod into events, once per pod, and keeps
// the last lines for error messages. Without a kubelet (or with no log access) it stays quiet.
type jobLogs struct {
	b       *Backend
	service string
	id      string
	wg      sync.WaitGroup
	mu      sync.Mutex
	started map[string]bool
	lines   []string
	sent    int
}

func (l *jobLogs) follow(ctx context.Context, p *corev1.Pod) {
	running := false
	for _, cs := range p.Status.InitContainerStatuses {
		if cs.Name == pluginContainer && (cs.State.Running != nil || cs.State.Terminated != nil) {
			running = true
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !running || l.started[p.Name] {
		return
	}
	l.started[p.Name] = true
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		req := l.b.c.CoreV1().Pods(l.b.ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: pluginContainer, Follow: true})
		rc, err := req.Stream(ctx)
		if err != nil {
			l.b.log.Debug("plugin logs unavailable", "pod", p.Name, "err", err)
			return
		}
		defer rc.Close()
		sc := bufio.NewScanner(rc)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l.add(sc.Text())
		}
	}()
}

func (l *jobLogs) add(line string) {
	l.mu.Lock()
	l.lines = append(l.lines, line)
	if len(l.lines) > plugin.TailLines {
		l.lines = l.lines[len(l.lines)-plugin.TailLines:]
	}
	l.sent++
	n := l.sent
	l.mu.Unlock()
	switch {
	case n <= maxLogEvents:
		l.b.event(l.service, "Normal", fmt.Sprintf("plugin %s: %s", l.id, line))
	case n == maxLogEvents+1:
		l.b.event(l.service, "Normal", fmt.Sprintf("plugin %s: … (more log lines in the Job's pod log)", l.id))
	}
}

func (l *jobLogs) wait() { l.wg.Wait() }

func (l *jobLogs) tail() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o600)
}
