package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/scheduler"
	"github.com/openeas/openeas/internal/spec"
	"github.com/openeas/openeas/internal/store"
)

// Create validates a service.json, stores the service (Creating) and its version 1, and
// deploys it in the background. The answer carries the token and endpoints at once.
func (m *Manager) Create(ctx context.Context, doc []byte) (*api.Service, error) {
	if err := m.waitStarted(ctx); err != nil {
		return nil, err
	}
	svc, err := spec.Parse(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := m.validateCreate(svc); err != nil {
		return nil, err
	}
	token := svc.Token
	if svc.WantsGeneratedToken() {
		token = newToken()
	}
	norm, err := svc.Marshal()
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	rec := store.ServiceRecord{
		Name: svc.Name, Token: token, Status: api.StatusCreating, CurrentVersion: 1,
		DesiredInstances: svc.Metadata.Instance, Created: now, Updated: now,
	}
	ver := store.VersionRecord{Service: svc.Name, Version: 1, Spec: norm, Status: store.VersionPending, Created: now}
	if err := m.store.CreateService(ctx, rec, ver); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, fmt.Errorf("%w: %s", ErrExists, svc.Name)
		}
		return nil, err
	}
	m.tokenChanged(svc.Name, token, true)
	m.event(ctx, svc.Name, api.EventNormal, "Service is now creating", api.StatusCreating, "")
	m.background(svc.Name, func(ctx context.Context) { m.deployVersion(ctx, svc.Name, 1, false) })
	return m.Describe(ctx, svc.Name)
}

// deployVersion builds version and rolls the service onto it. update is true when another
// version may be serving; a failed update leaves that version serving and says so.
func (m *Manager) deployVersion(ctx context.Context, name string, version int, update bool) {
	digest, err := m.build(ctx, name, version)
	if err == nil {
		err = m.apply(ctx, name, version, digest)
	}
	if err == nil {
		_ = m.store.UpdateService(ctx, name, func(r *store.ServiceRecord) error {
			r.CurrentVersion = version
			return nil
		})
		m.event(ctx, name, api.EventNormal, "Service is running", api.StatusRunning, "")
		return
	}
	if ctx.Err() != nil {
		return // deleted or shutting down: the next start resumes from the store
	}
	_ = m.store.UpdateVersion(context.WithoutCancel(ctx), name, version, func(v *store.VersionRecord) error {
		v.Status = store.VersionFailed
		v.Message = err.Error()
		return nil
	})
	rec, gerr := m.store.GetService(ctx, name)
	if update && gerr == nil && rec.CurrentVersion != version && m.opts.Scheduler.Status(name).Ready > 0 {
		msg := fmt.Sprintf("update to version %d failed, version %d keeps serving: %v", version, rec.CurrentVersion, err)
		m.event(ctx, name, api.EventWarning, msg, api.StatusRunning, msg)
		return
	}
	m.event(ctx, name, api.EventWarning, "Service failed: "+err.Error(), api.StatusFailed, err.Error())
}

// apply starts the service's instances from a bundle (a rolling update when another version runs).
func (m *Manager) apply(ctx context.Context, name string, version int, digest string) error {
	rec, err := m.store.GetService(ctx, name)
	if err != nil {
		return err
	}
	dir, err := m.opts.Bundles.PathContext(ctx, digest)
	if err != nil {
		return err
	}
	n := rec.DesiredInstances
	vr, err := m.store.GetVersion(ctx, name, version)
	if err != nil {
		return err
	}
	svc, err := spec.Parse(vr.Spec)
	if err != nil {
		return err
	}
	if m.opts.RateLimitChanged != nil {
		m.opts.RateLimitChanged(name, svc.Metadata.RPC.RateLimit)
	}
	m.okEvent(ctx, name, fmt.Sprintf("Waiting [Total: %d, Pending: %d, Running: 0]", n, n))
	d := scheduler.Deployment{Service: name, Version: version, BundleDir: dir, Replicas: n,
		Args: workerArgs(svc.Metadata.RPC)}
	if err := m.opts.Scheduler.Apply(ctx, d); err != nil {
		return fmt.Errorf("start instances: %w", err)
	}
	st := m.opts.Scheduler.Status(name)
	m.okEvent(ctx, name, fmt.Sprintf("Running [Total: %d, Pending: %d, Running: %d]", n, n-st.Ready, st.Ready))
	return nil
}

// workerArgs turns metadata.rpc into eas-worker flags (docs/serving.md). The worker checks
// batching against the model when it loads (this process cannot open models), so a model
// without a dynamic batch dimension fails the deploy with the worker's message.
func workerArgs(rpc spec.RPC) []string {
	args := []string{
		"--timeout", rpc.KeepaliveDuration().String(),
		"--worker-threads", strconv.Itoa(rpc.WorkerThreads),
		"--max-queue", strconv.Itoa(rpc.MaxQueueSize),
	}
	if rpc.Batching {
		args = append(args, "--batching",
			"--max-batch-size", strconv.Itoa(rpc.MaxBatchSize),
			"--max-batch-timeout", rpc.MaxBatchTimeoutDuration().String())
	}
	return args
}

// Modify deep-merges patch into the current service.json. A change of metadata.instance
// alone scales the running version; any other change makes a new version, built and
// rolled out with no drop in capacity.
func (m *Manager) Modify(ctx context.Context, name string, patch []byte) (*api.Service, error) {
	rec, before, err := m.begin(ctx, name)
	if err != nil {
		return nil, err
	}
	cur, err := m.store.GetVersion(ctx, name, rec.CurrentVersion)
	if err != nil {
		return nil, err
	}
	merged, err := spec.MergePatch(cur.Spec, patch)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	svc, err := spec.Parse(merged)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if svc.Name != name {
		return nil, fmt.Errorf("%w: name: cannot be changed (from %q to %q)", ErrInvalid, name, svc.Name)
	}
	if svc.Metadata.Instance > 0 {
		if err := m.validateCreate(svc); err != nil {
			return nil, err
		}
	}
	oldSvc, err := spec.Parse(cur.Spec)
	if err != nil {
		return nil, err
	}
	token := rec.Token
	if svc.Token != "" {
		token = svc.Token
	}
	norm, err := svc.Marshal()
	if err != nil {
		return nil, err
	}
	scaleOnly := onlyInstanceChanged(oldSvc, svc)
	var version int
	if scaleOnly {
		version = rec.CurrentVersion
		err = m.store.UpdateVersion(ctx, name, version, func(v *store.VersionRecord) error { v.Spec = norm; return nil })
	} else {
		version, err = m.store.AddVersion(ctx, store.VersionRecord{Service: name, Spec: norm, Status: store.VersionPending, Created: time.Now().UTC()})
	}
	if err != nil {
		return nil, err
	}
	if err := m.store.UpdateService(ctx, name, func(r *store.ServiceRecord) error {
		r.DesiredInstances = svc.Metadata.Instance
		r.Token = token
		return nil
	}); err != nil {
		return nil, err
	}
	m.tokenChanged(name, token, true)
	if rec.Status == api.StatusStopped {
		m.okEvent(ctx, name, fmt.Sprintf("Service modified (version %d); it stays stopped until started", version))
		if !scaleOnly {
			_ = m.store.UpdateService(ctx, name, func(r *store.ServiceRecord) error { r.CurrentVersion = version; return nil })
		}
		return m.describeSince(ctx, name, before)
	}
	if scaleOnly {
		msg := fmt.Sprintf("Scaling to %d instance(s)", svc.Metadata.Instance)
		if svc.Metadata.Instance == oldSvc.Metadata.Instance {
			msg = fmt.Sprintf("Applying metadata.rpc.rate_limit %d to version %d", svc.Metadata.RPC.RateLimit, version)
		}
		m.event(ctx, name, api.EventNormal, msg, api.StatusUpdating, "")
	} else {
		m.event(ctx, name, api.EventNormal, fmt.Sprintf("Service is now updating to version %d", version), api.StatusUpdating, "")
	}
	m.background(name, func(ctx context.Context) { m.deployVersion(ctx, name, version, true) })
	return m.describeSince(ctx, name, before)
}

// onlyInstanceChanged reports whether two specs differ only in what applies to running
// instances without a new version: metadata.instance, metadata.rpc.rate_limit (enforced by
// the gateway) and the token.
func onlyInstanceChanged(a, b *spec.Service) bool {
	ac, bc := *a, *b
	ac.Metadata.Instance, bc.Metadata.Instance = 0, 0
	ac.Metadata.RPC.RateLimit, bc.Metadata.RPC.RateLimit = 0, 0
	ac.Token, bc.Token = "", ""
	ja, _ := json.Marshal(ac)
	jb, _ := json.Marshal(bc)
	return bytes.Equal(ja, jb)
}

// Stop drains and stops every instance; the service keeps its bundle and token.
func (m *Manager) Stop(ctx context.Context, name string) (*api.Service, error) {
	_, before, err := m.begin(ctx, name)
	if err != nil {
		return nil, err
	}
	m.event(ctx, name, api.EventNormal, "Service is stopping", api.StatusStopping, "")
	m.cancelOp(name) // a deploy in progress is abandoned; start redoes it from its caches
	m.background(name, func(ctx context.Context) {
		if err := m.opts.Scheduler.Stop(ctx, name); err != nil {
			m.event(ctx, name, api.EventWarning, "Stop failed: "+err.Error(), api.StatusFailed, err.Error())
			return
		}
		m.event(ctx, name, api.EventNormal, "Service stopped", api.StatusStopped, "")
	})
	return m.describeSince(ctx, name, before)
}

// Start brings a Stopped (or Failed) service back on its current version, rebuilding only
// what is not cached.
func (m *Manager) Start(ctx context.Context, name string) (*api.Service, error) {
	rec, before, err := m.begin(ctx, name)
	if err != nil {
		return nil, err
	}
	switch rec.Status {
	case api.StatusStopped, api.StatusFailed:
	default:
		return nil, fmt.Errorf("%w: %s is %s; only a Stopped or Failed service can be started", ErrConflict, name, rec.Status)
	}
	m.event(ctx, name, api.EventNormal, "Service is now starting", api.StatusCreating, "")
	m.background(name, func(ctx context.Context) { m.deployVersion(ctx, name, rec.CurrentVersion, false) })
	return m.describeSince(ctx, name, before)
}

// Delete stops the service (draining in-flight requests) and removes it from the store.
// Bundles stay: another service may use the same one.
func (m *Manager) Delete(ctx context.Context, name string) (*api.Service, error) {
	_, before, err := m.begin(ctx, name)
	if err != nil {
		return nil, err
	}
	m.event(ctx, name, api.EventNormal, "Service is being deleted", api.StatusDeleting, "")
	out, err := m.describeSince(ctx, name, before)
	if err != nil {
		return nil, err
	}
	m.cancelOp(name)
	m.background(name, func(ctx context.Context) { m.finishDelete(ctx, name) })
	return out, nil
}

func (m *Manager) finishDelete(ctx context.Context, name string) {
	// Drain even when the delete was cancelled by shutdown: Run resumes Deleting services.
	if err := m.opts.Scheduler.Stop(context.WithoutCancel(ctx), name); err != nil {
		m.log.Error("stop instances of deleted service", "service", name, "err", err)
	}
	m.tokenChanged(name, "", false)
	if err := m.store.DeleteService(context.WithoutCancel(ctx), name); err != nil && !isNotFound(err) {
		m.log.Error("delete service", "service", name, "err", err)
	}
	m.hub.notify(name)
}

// resume brings every stored service back to what the store says it should be.
func (m *Manager) resume(ctx context.Context, recs []store.ServiceRecord) error {
	for _, r := range recs {
		m.tokenChanged(r.Name, r.Token, true)
		name := r.Name
		switch r.Status {
		case api.StatusRunning:
			ver, err := m.store.GetVersion(ctx, name, r.CurrentVersion)
			if err != nil {
				return err
			}
			m.okEvent(ctx, name, fmt.Sprintf("easd restarted: starting %d instance(s) from bundle %s", r.DesiredInstances, short(ver.BundleDigest)))
			m.background(name, func(ctx context.Context) {
				if err := m.apply(ctx, name, r.CurrentVersion, ver.BundleDigest); err != nil && ctx.Err() == nil {
					m.event(ctx, name, api.EventWarning, "Service failed: "+err.Error(), api.StatusFailed, err.Error())
				}
			})
		case api.StatusCreating:
			m.okEvent(ctx, name, "easd restarted during the deploy: resuming it (finished steps are reused)")
			m.background(name, func(ctx context.Context) { m.deployVersion(ctx, name, r.CurrentVersion, false) })
		case api.StatusUpdating:
			latest, err := m.latestVersion(ctx, name)
			if err != nil {
				return err
			}
			m.okEvent(ctx, name, fmt.Sprintf("easd restarted during the update to version %d: resuming it", latest))
			cur, err := m.store.GetVersion(ctx, name, r.CurrentVersion)
			if err == nil && cur.BundleDigest != "" && latest != r.CurrentVersion {
				m.background(name, func(ctx context.Context) { _ = m.apply(ctx, name, r.CurrentVersion, cur.BundleDigest) })
			}
			m.background(name, func(ctx context.Context) { m.deployVersion(ctx, name, latest, true) })
		case api.StatusDeleting:
			m.background(name, func(ctx context.Context) { m.finishDelete(ctx, name) })
		case api.StatusStopping:
			// Its instances died with the old easd; record the stop it was making.
			m.event(ctx, name, api.EventNormal, "Service stopped", api.StatusStopped, "")
		}
	}
	return nil
}

func (m *Manager) latestVersion(ctx context.Context, name string) (int, error) {
	vs, err := m.store.ListVersions(ctx, name)
	if err != nil || len(vs) == 0 {
		return 0, fmt.Errorf("versions of %s: %w", name, err)
	}
	latest := vs[0].Version
	for _, v := range vs {
		latest = max(latest, v.Version)
	}
	return latest, nil
}

func (m *Manager) tokenChanged(name, token string, exists bool) {
	if m.opts.TokenChanged != nil {
		m.opts.TokenChanged(name, token, exists)
	}
}

// Describe answers DescribeService.
func (m *Manager) Describe(ctx context.Context, name string) (*api.Service, error) {
	rec, err := m.getService(ctx, name)
	if err != nil {
		return nil, err
	}
	return m.describe(ctx, rec)
}

func (m *Manager) describe(ctx context.Context, rec store.ServiceRecord) (*api.Service, error) {
	out := &api.Service{
		ServiceName: rec.Name, Status: rec.Status, Message: rec.Message,
		TotalInstance: rec.DesiredInstances, AccessToken: rec.Token, Version: rec.CurrentVersion,
		CreateTime: rec.Created, UpdateTime: rec.Updated,
		InternetEndpoint: m.opts.EndpointURL + "/api/predict/" + rec.Name,
		IntranetEndpoint: m.opts.EndpointURL + "/api/predict/" + rec.Name,
	}
	if ver, err := m.store.GetVersion(ctx, rec.Name, rec.CurrentVersion); err == nil {
		out.Image = ver.BundleDigest
		out.ServiceConfig = json.RawMessage(ver.Spec)
		if svc, err := spec.Parse(ver.Spec); err == nil {
			out.Processor = svc.Processor
		}
		if ver.BundleDigest != "" {
			// Read here only: describing must not fetch a bundle from a shared store.
			if man, err := m.opts.Bundles.LocalManifest(ver.BundleDigest); err == nil {
				out.ServedBy = servedByText(out.Processor, man)
			}
		}
	}
	if rec.Status != api.StatusStopped {
		out.RunningInstance = m.opts.Scheduler.Status(rec.Name).Ready
	}
	out.LastEventID = m.lastEventID(ctx, rec.Name)
	return out, nil
}

// List answers ListServices, by name.
func (m *Manager) List(ctx context.Context) ([]api.Service, error) {
	recs, err := m.store.ListServices(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Service, 0, len(recs))
	for _, r := range recs {
		d, err := m.describe(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, *d)
	}
	return out, nil
}

// begin starts a call that changes an existing service: it waits for Run, loads the
// service, notes the newest event (see describeSince) and refuses a service being deleted.
func (m *Manager) begin(ctx context.Context, name string) (store.ServiceRecord, int64, error) {
	if err := m.waitStarted(ctx); err != nil {
		return store.ServiceRecord{}, 0, err
	}
	rec, err := m.getService(ctx, name)
	if err != nil {
		return rec, 0, err
	}
	if rec.Status == api.StatusDeleting {
		return rec, 0, fmt.Errorf("%w: %s is being deleted", ErrConflict, name)
	}
	return rec, m.lastEventID(ctx, name), nil
}

// lastEventID is the newest event's ID (0 when none).
func (m *Manager) lastEventID(ctx context.Context, name string) int64 {
	id, err := m.store.LastEventID(ctx, name)
	if err != nil {
		return 0
	}
	return id
}

// describeSince answers a call that changed the service: LastEventID is the newest event
// before the call, so a client following from it sees every line the call caused.
func (m *Manager) describeSince(ctx context.Context, name string, before int64) (*api.Service, error) {
	out, err := m.Describe(ctx, name)
	if err == nil {
		out.LastEventID = before
	}
	return out, err
}

// validateCreate is spec's ValidateCreate plus the installation's GPU and processor checks.
func (m *Manager) validateCreate(svc *spec.Service) error {
	if err := svc.ValidateCreate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	p, err := spec.ResolveProcessor(svc.Processor)
	if err != nil {
		return fmt.Errorf("%w: processor: %w", ErrInvalid, err)
	}
	if p, _, err = m.place(p); err != nil {
		return fmt.Errorf("%w: processor: %w", ErrInvalid, err)
	}
	if m.opts.ProcessorCheck == nil {
		return nil
	}
	if err := m.opts.ProcessorCheck(p); err != nil {
		return fmt.Errorf("%w: processor: %w", ErrInvalid, err)
	}
	return nil
}

// place decides what serves processor p on this installation: p itself, or, for a GPU
// processor without a GPU runtime here and with GPUFallback, its CPU processor; fallback
// then says so, for a Warning event.
func (m *Manager) place(p spec.ProcessorInfo) (served spec.ProcessorInfo, fallback string, err error) {
	if !p.GPU || m.opts.GPUCheck == nil {
		return p, "", nil
	}
	why := m.opts.GPUCheck(p)
	if why == nil {
		return p, "", nil
	}
	if !m.opts.GPUFallback {
		return p, "", fmt.Errorf("%s needs a GPU runtime: %w; use %s, or start easd with --gpu-fallback=cpu to serve GPU processors on CPU", p.Name, why, p.OnCPU().Name)
	}
	cpu := p.OnCPU()
	return cpu, fmt.Sprintf("No GPU for %s on this host (%v): serving on CPU as %s; plugins optimize for CPU", p.Name, why, cpu.Name), nil
}
