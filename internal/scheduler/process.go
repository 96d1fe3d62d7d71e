package scheduler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stderrLines is how many of a worker's last stderr lines are kept for error messages.
const stderrLines = 50

// quotedLines is how many of those lines an event or error message quotes.
const quotedLines = 10

// maxLine bounds one stdout or stderr line; longer lines are cut.
const maxLine = 4096

// proc is one worker process. The stdout copier (started by os/exec) feeds events into it;
// the supervisor reads its channels.
type proc struct {
	pid    int
	ready  chan struct{} // closed on the "ready" event (after "listening")
	broken chan struct{} // closed when the worker breaks the event protocol
	done   chan struct{} // closed once the process has been waited for
	stderr *ring

	mu       sync.Mutex // guards the fields below
	addr     string
	socket   string // the frame socket, when the worker serves one
	loadTime time.Duration
	warmUp   int           // warm-up requests replayed before ready
	warmTime time.Duration // how long they took
	runtime  string        // what serves the model, from the ready event
	failed   string        // the "failed" event's error, or a protocol violation
	exit     string        // "exit status 1", "signal: killed"; set before done is closed
}

func newProc() *proc {
	return &proc{ready: make(chan struct{}), broken: make(chan struct{}), done: make(chan struct{}), stderr: &ring{}}
}

// workerEvent is one stdout line of the worker contract (docs/architecture.md).
type workerEvent struct {
	Event  string `json:"event"`
	Addr   string `json:"addr"`
	Socket string `json:"socket"` // the frame socket (--listen-unix), when served
	LoadMS int64  `json:"load_ms"`
	Error  string `json:"error"`
	// Warm-up requests replayed before ready (warm_up_data_path), and how long they took.
	WarmUpRequests int   `json:"warmup_requests"`
	WarmUpMS       int64 `json:"warmup_ms"`
	// Runtime names what serves the model ("ONNX Runtime 1.30.0"), when the worker says.
	Runtime string `json:"runtime"`
}

// handleLine takes one stdout line. Anything that is not an event goes to the stderr ring,
// so that a worker printing garbage is still diagnosable.
func (p *proc) handleLine(line []byte) {
	var ev workerEvent
	if err := json.Unmarshal(line, &ev); err != nil || ev.Event == "" {
		p.stderr.add("stdout: " + string(line))
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev.Event {
	case "listening":
		p.addr, p.socket = ev.Addr, ev.Socket
	case "ready":
		if p.addr == "" {
			if p.failed == "" {
				p.failed = "worker protocol error: ready before listening"
				close(p.broken)
			}
			return
		}
		p.loadTime = time.Duration(ev.LoadMS) * time.Millisecond
		p.warmUp, p.warmTime = ev.WarmUpRequests, time.Duration(ev.WarmUpMS)*time.Millisecond
		p.runtime = ev.Runtime
		select {
		case <-p.ready:
		default:
			close(p.ready)
		}
	case "failed":
		p.failed = ev.Error
	}
}

func (p *proc) address() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

func (p *proc) socketPath() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.socket
}

// wait reaps the process and closes done.
func (p *proc) wait(cmd *exec.Cmd) {
	err := cmd.Wait()
	exit := "exit status 0"
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		exit = ee.ProcessState.String()
	case err != nil && cmd.ProcessState != nil:
		exit = cmd.ProcessState.String() // e.g. exec.ErrWaitDelay: the state is still right
	case err != nil:
		exit = err.Error()
	}
	p.mu.Lock()
	p.exit = exit
	p.mu.Unlock()
	close(p.done)
}

// notReady explains why a process that never became ready is gone.
func (p *proc) notReady() string {
	p.mu.Lock()
	failed, exit := p.failed, p.exit
	p.mu.Unlock()
	if failed != "" {
		return failed
	}
	return fmt.Sprintf("worker exited (%s) before it was ready%s", exit, p.stderr.quote())
}

// exited explains why a ready process is gone.
func (p *proc) exited() string {
	p.mu.Lock()
	exit := p.exit
	p.mu.Unlock()
	return fmt.Sprintf("worker exited unexpectedly (%s)%s", exit, p.stderr.quote())
}

// terminate drains the process: SIGTERM to its group, then SIGKILL after grace.
func (p *proc) terminate(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.pid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.done
	}
}

// kill stops the process at once and waits for it.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	<-p.done
}

// lineWriter splits what it is given into lines for fn; it is the cmd.Stdout/Stderr of a worker
// and is only written by os/exec's copying goroutine.
type lineWriter struct {
	fn      func([]byte)
	partial []byte
	cut     bool // the current line overflowed maxLine; drop the rest of it
}

func (w *lineWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		chunk := b
		if i >= 0 {
			chunk = b[:i]
		}
		if !w.cut {
			room := maxLine - len(w.partial)
			if len(chunk) > room {
				chunk, w.cut = chunk[:room], true
			}
			w.partial = append(w.partial, chunk...)
		}
		if i < 0 {
			break
		}
		w.fn(bytes.TrimRight(w.partial, "\r"))
		w.partial, w.cut = w.partial[:0], false
		b = b[i+1:]
	}
	return n, nil
}

// ring keeps the last stderrLines lines.
type ring struct {
	mu    sync.Mutex
	lines [stderrLines]string
	n     int // lines ever added
}

func (r *ring) add(line string) {
	r.mu.Lock()
	r.lines[r.n%stderrLines] = line
	r.n++
	r.mu.Unlock()
}

// tail returns up to k last lines, oldest first.
func (r *ring) tail(k int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	k = min(k, r.n, stderrLines)
	out := make([]string, 0, k)
	for i := r.n - k; i < r.n; i++ {
		out = append(out, r.lines[i%stderrLines])
	}
	return out
}

// quote renders the last lines for a message, or "" when there are none.
func (r *ring) quote() string {
	lines := r.tail(quotedLines)
	if len(lines) == 0 {
		return ""
	}
	return "; last stderr lines:\n" + strings.Join(lines, "\n")
}
