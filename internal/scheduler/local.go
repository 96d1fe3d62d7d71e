package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Options configure a Local scheduler. Zero durations take the defaults below.
type Options struct {
	// WorkerBinary is the eas-worker executable; WorkerArgs go before the worker flags
	// (e.g. a subcommand). Each instance runs
	// WorkerBinary WorkerArgs... --bundle DIR --name SERVICE --listen 127.0.0.1:0
	WorkerBinary string
	WorkerArgs   []string
	// SocketDir, when set, is a private directory (mode 0700) where each worker also serves
	// the gateway's framed protocol on a unix socket (--listen-unix), reported as
	// Endpoint.Socket. Empty: workers serve TCP only.
	SocketDir string
	// WorkerEnv, when not nil, is the whole environment of worker processes (plus each
	// deployment's Env); nil means they inherit this process's environment.
	WorkerEnv []string
	Router    Router    // nil: routing is not reported
	Events    EventFunc // nil: events are dropped
	Logger    *slog.Logger

	ReadyTimeout time.Duration // default 2m: a worker not ready by then is killed
	StopTimeout  time.Duration // default 30s: SIGTERM grace before SIGKILL
	BackoffMin   time.Duration // default 1s: first restart delay after a crash
	BackoffMax   time.Duration // default 30s: longest restart delay

	// StartProcess starts cmd (default: cmd.Start). It is always called on the scheduler's one
	// thread-locked spawner goroutine, so that Pdeathsig stays tied to a thread that lives as long
	// as the children. Tests inject it to observe or fail starts.
	StartProcess func(cmd *exec.Cmd) error
}

// Defaults.
const (
	DefaultReadyTimeout = 2 * time.Minute
	DefaultStopTimeout  = 30 * time.Second
	DefaultBackoffMin   = time.Second
	DefaultBackoffMax   = 30 * time.Second
)

// Local runs instances as child processes of this process.
//
// All methods are safe for concurrent use. Apply and Stop block until their work is done (or
// their ctx is cancelled) and wait for Run to have started.
type Local struct {
	opts    Options
	log     *slog.Logger
	started chan struct{} // closed when Run has started the spawner
	spawnc  chan spawnReq // served by the spawner goroutine while Run runs
	wg      sync.WaitGroup

	// mu guards services, every *service's insts/routed/nextID, every *instance's mutable fields,
	// ran and closing. Rule: hold it only to read or change the table and to call the Router;
	// never while waiting on a process, a channel, a timer or the EventFunc. wg.Add happens under
	// it, and never after closing is set, so Run's wg.Wait sees every supervisor.
	mu       sync.Mutex
	services map[string]*service
	ran      bool
	closing  bool
	starts   int // worker processes started; names their sockets
}

type service struct {
	name   string
	lock   chan struct{} // capacity 1: held by the Apply or Stop working on this service
	insts  []*instance
	routed []Endpoint // the last set given to the Router
	nextID int
}

type instance struct {
	// Set at creation, then read-only.
	id        string
	svc       *service
	version   int
	bundleDir string
	env       []string
	args      []string
	stop      chan struct{} // closed (under mu, when removing is set) to drain and stop
	exited    chan struct{} // closed by the supervisor when its process is gone for good
	first     chan error    // capacity 1: the first start's outcome (nil = ready)

	// Guarded by Local.mu.
	state    InstanceState
	addr     string
	socket   string // the frame socket, when the worker serves one
	pid      int
	restarts int
	started  time.Time
	lastErr  string
	admitted bool // Apply let it take traffic once ready
	removing bool // being stopped; never routed again
}

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

// NewLocal returns a scheduler; call Run to start it.
func NewLocal(opts Options) *Local {
	opts.ReadyTimeout = cmp.Or(opts.ReadyTimeout, DefaultReadyTimeout)
	opts.StopTimeout = cmp.Or(opts.StopTimeout, DefaultStopTimeout)
	opts.BackoffMin = cmp.Or(opts.BackoffMin, DefaultBackoffMin)
	opts.BackoffMax = max(cmp.Or(opts.BackoffMax, DefaultBackoffMax), opts.BackoffMin)
	if opts.StartProcess == nil {
		opts.StartProcess = (*exec.Cmd).Start
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Local{
		opts:     opts,
		log:      log,
		started:  make(chan struct{}),
		spawnc:   make(chan spawnReq),
		services: make(map[string]*service),
	}
}

var _ Backend = (*Local)(nil)

// Run starts the spawner, supervises instances until ctx is done, then removes every service
// from routing, drains and stops every instance (SIGTERM, SIGKILL after StopTimeout) and returns
// nil. It may be called once; Apply, Stop and Status may be called from other goroutines
// before, during and after it.
func (l *Local) Run(ctx context.Context) error {
	l.mu.Lock()
	if l.ran {
		l.mu.Unlock()
		return errors.New("scheduler: Run called twice")
	}
	l.ran = true
	l.mu.Unlock()

	quit, spawnerDone := make(chan struct{}), make(chan struct{})
	go l.spawner(quit, spawnerDone)
	close(l.started)

	<-ctx.Done()
	l.mu.Lock()
	l.closing = true
	n := 0
	for _, svc := range l.services {
		n += len(svc.insts)
		l.removeLocked(svc, svc.insts...)
	}
	l.mu.Unlock()
	l.log.Info("scheduler stopping", "instances", n)
	l.wg.Wait()
	close(quit)
	<-spawnerDone
	return nil
}

// spawner starts every child process. Pdeathsig (SIGKILL to the child when its parent dies) is
// tied by Linux to the *thread* that forked the child, not to the process: if that thread
// exited, the child would be killed while easd lives on. Go may retire an OS thread (a goroutine
// that locks its thread and exits without unlocking takes the thread with it), so all forks happen
// on this one goroutine, locked to its thread for as long as any child can exist. It returns only
// after Run has stopped every child; it never unlocks, so its thread then exits, which is harmless.
func (l *Local) spawner(quit <-chan struct{}, done chan<- struct{}) {
	runtime.LockOSThread()
	defer close(done)
	for {
		select {
		case r := <-l.spawnc:
			r.errc <- l.opts.StartProcess(r.cmd)
		case <-quit:
			return
		}
	}
}

// waitStarted waits until Run has started, and fails once it is shutting down.
func (l *Local) waitStarted(ctx context.Context) error {
	select {
	case <-l.started:
	case <-ctx.Done():
		return ctx.Err()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return ErrClosed
	}
	return nil
}

// lockService takes the service's Apply/Stop lock, creating the service on first use.
// Services are never deleted from the table, so a lock never changes under a waiter.
func (l *Local) lockService(ctx context.Context, name string) (*service, error) {
	l.mu.Lock()
	svc := l.services[name]
	if svc == nil {
		svc = &service{name: name, lock: make(chan struct{}, 1)}
		l.services[name] = svc
	}
	l.mu.Unlock()
	select {
	case svc.lock <- struct{}{}:
		return svc, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Apply makes the service run exactly d; see Backend. Missing instances of d.Version are started
// and must all become ready (else Apply stops them and returns an error quoting the worker's
// "failed" event or its last stderr lines; instances already running are untouched). Then they
// are routed alongside the instances already serving, and only after that are surplus instances
// and instances of other versions removed from routing, drained and stopped, so routing never
// becomes empty during a rolling update. Safe for concurrent use; calls for one service run
// one at a time. Instances are identified by d.Version: an Apply with the version already
// running only scales. Cancelling ctx while new instances load stops them;
// cancelling it while old ones drain returns ctx.Err() and lets the drain finish in the background.
func (l *Local) Apply(ctx context.Context, d Deployment) error {
	if err := d.validate(); err != nil {
		return err
	}
	if err := l.waitStarted(ctx); err != nil {
		return err
	}
	svc, err := l.lockService(ctx, d.Service)
	if err != nil {
		return err
	}
	defer func() { <-svc.lock }()

	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return ErrClosed
	}
	var cur, old, fresh []*instance
	for _, inst := range svc.insts {
		switch {
		case inst.removing:
		case inst.version == d.Version:
			cur = append(cur, inst)
		default:
			old = append(old, inst)
		}
	}
	for range d.Replicas - len(cur) {
		fresh = append(fresh, l.newInstanceLocked(svc, d))
	}
	l.mu.Unlock()

	if err := l.awaitFirst(ctx, fresh); err != nil {
		l.mu.Lock()
		l.removeLocked(svc, fresh...)
		l.mu.Unlock()
		waitExited(context.Background(), fresh) // bounded by ReadyTimeout/StopTimeout
		return fmt.Errorf("scheduler: service %s version %d: %w", d.Service, d.Version, err)
	}

	l.mu.Lock()
	for _, inst := range fresh {
		inst.admitted = true
	}
	keep := append(cur, fresh...)
	var gone []*instance
	if surplus := len(keep) - d.Replicas; surplus > 0 {
		// Remove the least useful first: not ready, then the newest.
		slices.SortStableFunc(keep, func(a, b *instance) int {
			if ra, rb := a.state == StateReady, b.state == StateReady; ra != rb {
				if ra {
					return -1
				}
				return 1
			}
			return a.started.Compare(b.started)
		})
		gone = keep[len(keep)-surplus:]
	}
	l.removeLocked(svc, gone...) // the new ones join the old ones (and surplus ones leave)
	l.removeLocked(svc, old...)  // then the old version leaves
	l.mu.Unlock()

	if len(fresh) > 0 {
		l.event(d.Service, "Normal", fmt.Sprintf("%d new instance(s) of version %d ready", len(fresh), d.Version))
	}
	return waitExited(ctx, append(gone, old...))
}

// Stop removes the service from routing, then drains and stops all its instances. The service
// stays known (Status reports zero instances). Safe for concurrent use.
func (l *Local) Stop(ctx context.Context, name string) error {
	if err := l.waitStarted(ctx); err != nil {
		return err
	}
	svc, err := l.lockService(ctx, name)
	if err != nil {
		return err
	}
	defer func() { <-svc.lock }()
	l.mu.Lock()
	insts := slices.Clone(svc.insts)
	l.removeLocked(svc, insts...)
	l.mu.Unlock()
	return waitExited(ctx, insts)
}

// Status returns a snapshot of the service; an unknown service has no instances.
// Safe for concurrent use.
func (l *Local) Status(name string) Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := Status{Service: name}
	svc := l.services[name]
	if svc == nil {
		return st
	}
	for _, inst := range svc.insts {
		state := inst.state
		if inst.removing {
			state = StateStopping
		} else {
			st.Total++
			if state == StateReady && inst.admitted {
				st.Ready++
			}
		}
		st.Instances = append(st.Instances, Instance{
			ID: inst.id, Version: inst.version, Addr: inst.addr, PID: inst.pid, State: state,
			Restarts: inst.restarts, Started: inst.started, LastError: inst.lastErr,
		})
	}
	return st
}

// newInstanceLocked adds an instance to the table and starts its supervisor. l.mu must be held
// and l.closing false.
func (l *Local) newInstanceLocked(svc *service, d Deployment) *instance {
	svc.nextID++
	inst := &instance{
		id:        fmt.Sprintf("%s-v%d-%d", svc.name, d.Version, svc.nextID),
		svc:       svc,
		version:   d.Version,
		bundleDir: d.BundleDir,
		env:       slices.Clone(d.Env),
		args:      slices.Clone(d.Args),
		stop:      make(chan struct{}),
		exited:    make(chan struct{}),
		first:     make(chan error, 1),
		state:     StateStarting,
	}
	svc.insts = append(svc.insts, inst)
	l.wg.Add(1)
	go l.supervise(inst)
	return inst
}

// removeLocked takes insts out of svc's routing, then asks their supervisors to drain and stop
// them, in that order, so no request is sent to a draining worker. l.mu must be held.
func (l *Local) removeLocked(svc *service, insts ...*instance) {
	var marked []*instance
	for _, inst := range insts {
		if !inst.removing {
			inst.removing = true
			marked = append(marked, inst)
		}
	}
	l.routeLocked(svc)
	for _, inst := range marked {
		close(inst.stop)
	}
}

// routeLocked gives the Router the service's ready, admitted instances if they changed.
// l.mu must be held.
func (l *Local) routeLocked(svc *service) {
	var eps []Endpoint
	for _, inst := range svc.insts {
		if inst.state == StateReady && inst.admitted && !inst.removing {
			eps = append(eps, Endpoint{ID: inst.id, Addr: inst.addr, Socket: inst.socket, Version: inst.version})
		}
	}
	if slices.Equal(eps, svc.routed) {
		return
	}
	svc.routed = eps
	if l.opts.Router != nil {
		l.opts.Router.SetEndpoints(svc.name, slices.Clone(eps))
	}
}

func (l *Local) event(svc, typ, msg string) {
	if typ == "Warning" {
		l.log.Warn(msg, "service", svc)
	} else {
		l.log.Info(msg, "service", svc)
	}
	if l.opts.Events != nil {
		l.opts.Events(svc, typ, msg)
	}
}

// awaitFirst waits for every instance's first start. On the first failure (or ctx) it returns
// at once; the caller stops them all.
func (l *Local) awaitFirst(ctx context.Context, insts []*instance) error {
	for _, inst := range insts {
		select {
		case err := <-inst.first:
			if err != nil {
				return fmt.Errorf("instance %s did not become ready: %w", inst.id, err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// waitExited waits until every instance's process is gone.
func waitExited(ctx context.Context, insts []*instance) error {
	for _, inst := range insts {
		select {
		case <-inst.exited:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

var errStoppedBeforeReady = errors.New("stopped before it was ready")

// supervise runs one instance until it is removed: start, wait for ready, serve, and after an
// unexpected exit restart with exponential backoff. A first start that fails is not retried:
// the Apply that asked for it reports the failure. Only this goroutine touches the process.
func (l *Local) supervise(inst *instance) {
	defer l.wg.Done()
	everReady := false
	firstErr := errStoppedBeforeReady
	defer func() {
		if !everReady {
			inst.first <- firstErr
		}
		l.mu.Lock()
		svc := inst.svc
		svc.insts = slices.DeleteFunc(svc.insts, func(i *instance) bool { return i == inst })
		l.routeLocked(svc)
		l.mu.Unlock()
		close(inst.exited)
	}()

	failures := 0
	for {
		p, err := l.start(inst)
		why := ""
		if err != nil {
			why = err.Error()
		} else {
			ok, stopped, reason := l.awaitReady(inst, p)
			if stopped {
				return
			}
			why = reason
			if ok {
				readyAt := time.Now()
				l.setReady(inst, p, everReady)
				everReady = true
				inst.first <- nil
				select {
				case <-inst.stop:
					p.terminate(l.opts.StopTimeout)
					return
				case <-p.done:
				}
				select {
				case <-inst.stop: // exited while being stopped: nothing to report
					return
				default:
				}
				if time.Since(readyAt) >= l.opts.BackoffMax {
					failures = 0 // it served long enough: this is a fresh crash, not a loop
				}
				why = p.exited()
			}
		}
		if !everReady {
			l.mu.Lock()
			inst.lastErr = why
			l.mu.Unlock()
			firstErr = errors.New(why)
			return
		}
		failures++
		delay := min(l.opts.BackoffMin<<min(failures-1, 20), l.opts.BackoffMax)
		l.mu.Lock()
		inst.state, inst.lastErr, inst.addr, inst.socket, inst.pid = StateRestarting, why, "", "", 0
		l.routeLocked(inst.svc) // out of routing at once
		l.mu.Unlock()
		l.event(inst.svc.name, "Warning", fmt.Sprintf("instance %s: %s; restarting in %s", inst.id, why, delay))
		t := time.NewTimer(delay)
		select {
		case <-inst.stop:
			t.Stop()
			return
		case <-t.C:
		}
		l.mu.Lock()
		inst.restarts++
		l.mu.Unlock()
	}
}

// start launches the worker process for inst on the spawner thread.
func (l *Local) start(inst *instance) (*proc, error) {
	// The fixed flags come last: with Go's flag package the last occurrence wins.
	args := slices.Concat(l.opts.WorkerArgs, inst.args,
		[]string{"--bundle", inst.bundleDir, "--name", inst.svc.name, "--listen", "127.0.0.1:0"})
	if l.opts.SocketDir != "" {
		// Short names: a unix socket path must fit in 108 bytes.
		l.mu.Lock()
		l.starts++
		n := l.starts
		l.mu.Unlock()
		args = append(args, "--listen-unix", filepath.Join(l.opts.SocketDir, fmt.Sprintf("w%d.sock", n)))
	}
	cmd := exec.Command(l.opts.WorkerBinary, args...)
	if l.opts.WorkerEnv != nil {
		cmd.Env = slices.Concat(l.opts.WorkerEnv, inst.env)
	} else if len(inst.env) > 0 {
		cmd.Env = append(cmd.Environ(), inst.env...)
	}
	// Own process group, so draining signals reach everything the worker started; Pdeathsig so
	// that no worker outlives this process (see spawner).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := newProc()
	cmd.Stdout = &lineWriter{fn: p.handleLine}
	cmd.Stderr = &lineWriter{fn: func(b []byte) { p.stderr.add(string(b)) }}
	// The pipes' copiers end when the worker exits, unless something it spawned keeps them open.
	cmd.WaitDelay = time.Second

	errc := make(chan error, 1)
	select {
	case l.spawnc <- spawnReq{cmd: cmd, errc: errc}:
	case <-inst.stop:
		return nil, errStoppedBeforeReady
	}
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("start worker %s: %w", l.opts.WorkerBinary, err)
	}
	p.pid = cmd.Process.Pid
	go p.wait(cmd)
	l.mu.Lock()
	inst.pid, inst.started, inst.addr, inst.socket = p.pid, time.Now(), "", ""
	l.mu.Unlock()
	l.log.Debug("worker started", "instance", inst.id, "pid", p.pid)
	return p, nil
}

// awaitReady waits for the ready event. ok: ready; stopped: inst was removed (p is gone);
// otherwise reason says why p failed (p is gone).
func (l *Local) awaitReady(inst *instance, p *proc) (ok, stopped bool, reason string) {
	t := time.NewTimer(l.opts.ReadyTimeout)
	defer t.Stop()
	select {
	case <-p.ready:
		return true, false, ""
	case <-p.done:
		return false, false, p.notReady()
	case <-p.broken:
		p.kill()
		return false, false, p.notReady()
	case <-t.C:
		p.kill()
		return false, false, fmt.Sprintf("worker not ready after %s%s", l.opts.ReadyTimeout, p.stderr.quote())
	case <-inst.stop:
		p.terminate(l.opts.StopTimeout)
		return false, true, ""
	}
}

// setReady records that p is ready and routes it if it may take traffic.
func (l *Local) setReady(inst *instance, p *proc, restarted bool) {
	addr, socket := p.address(), p.socketPath()
	p.mu.Lock()
	warmUp, warmTime, runtime, loadTime := p.warmUp, p.warmTime, p.runtime, p.loadTime
	p.mu.Unlock()
	if runtime != "" && !restarted {
		l.event(inst.svc.name, "Normal", fmt.Sprintf("instance %s loaded the model in %s with %s", inst.id, loadTime, runtime))
	}
	if warmUp > 0 { // reported before the instance takes traffic, so before "Service is running"
		l.event(inst.svc.name, "Normal", fmt.Sprintf("warm-up: %d request(s) in %s on instance %s", warmUp, warmTime, inst.id))
	}
	l.mu.Lock()
	inst.state, inst.addr, inst.socket = StateReady, addr, socket
	l.routeLocked(inst.svc)
	l.mu.Unlock()
	if restarted {
		l.event(inst.svc.name, "Normal", fmt.Sprintf("instance %s restarted and ready at %s", inst.id, addr))
	}
	l.log.Debug("worker ready", "instance", inst.id, "addr", addr, "load", p.loadTime)
}
