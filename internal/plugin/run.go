package plugin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/openeas/openeas/internal/modelsource"
)

// TailLines is how many of the plugin's last stderr lines are kept for error messages.
const TailLines = 20

// maxLineBytes bounds one kept stderr line, so a plugin dumping binary data cannot fill memory.
const maxLineBytes = 2048

// defaultPath is the PATH a plugin gets when RunOptions.Env sets none.
const defaultPath = "PATH=/usr/local/bin:/usr/bin:/bin"

// RunOptions describe one plugin run.
type RunOptions struct {
	Exe string // absolute path of the executable (Resolver.Resolve)
	// Args is the plugin command split into words (Split); Args[0], the program name as written
	// in service.json, is replaced by Exe, the rest are passed as they are.
	Args     []string
	InputDir string // model directory; Run makes it read-only (pass a copy or an immutable entry)
	// InputDigest, when set, is the TreeDigest of InputDir; Run checks it again after the plugin
	// exits and fails if the plugin changed its input (read-only modes do not stop root).
	InputDigest string
	OutputDir   string // created when absent; must be empty
	ConfigFile  string // written by WriteConfig
	ReportFile  string // where the plugin writes its report; its directory must exist
	Device      string // "cpu" (default) or "gpu"
	// Env is the plugin's base environment ("KEY=value"); Run appends the EAS_PLUGIN_* variables.
	// Nothing of the caller's own environment is passed unless listed here (it may hold secrets);
	// when Env sets no PATH, a default PATH is added.
	Env     []string
	Timeout time.Duration // 0 = no limit but ctx
	Logger  *slog.Logger  // receives the plugin's output lines at debug level; nil = slog.Default()
}

// Result is a successful run.
type Result struct {
	Duration   time.Duration
	StderrTail []string // the last TailLines lines the plugin wrote to stderr
	Report     []byte   // the JSON report, nil when the plugin wrote none
}

// RunError is a failed run: a non-zero exit, a kill, or a broken output contract.
type RunError struct {
	Exe        string
	Reason     string   // e.g. "exited with status 3", "timed out after 10m0s"
	StderrTail []string // the plugin's last stderr lines
	Err        error    // underlying cause when there is one (context error, exec error)
}

func (e *RunError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "plugin %s %s", filepath.Base(e.Exe), e.Reason)
	if len(e.StderrTail) > 0 {
		b.WriteString("; last stderr lines:\n  ")
		b.WriteString(strings.Join(e.StderrTail, "\n  "))
	}
	return b.String()
}

func (e *RunError) Unwrap() error { return e.Err }

// Run runs one plugin to completion. The plugin runs in its own process group, which is killed
// as a whole when ctx is cancelled, when Timeout passes, and when the plugin exits (so no
// helper process it started outlives it). Success means exit status 0 and at least one file in
// OutputDir; every failure is a *RunError carrying the exit status and the last stderr lines.
func Run(ctx context.Context, o RunOptions) (*Result, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Device == "" {
		o.Device = "cpu"
	}
	if err := prepare(&o); err != nil {
		return nil, err
	}
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}

	cmd := exec.CommandContext(ctx, o.Exe, o.Args[1:]...)
	// The working directory is scratch space of this run, never the output: stray temporary
	// files must not end up in the model.
	cmd.Dir = filepath.Dir(o.ReportFile)
	cmd.Env = environ(o)
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }

	// Our own pipes (rather than cmd.StderrPipe) so Wait does not block on a grandchild that
	// still holds them; readers drain until every holder is gone or we give up.
	tail := &tailBuffer{max: TailLines}
	pipes, err := startReaders(o.Logger, filepath.Base(o.Exe), tail)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pipes.stdoutW, pipes.stderrW

	start := time.Now()
	o.Logger.Info("running plugin", "exe", o.Exe, "args", o.Args[1:], "device", o.Device)
	if err := cmd.Start(); err != nil {
		pipes.abort()
		return nil, &RunError{Exe: o.Exe, Reason: "could not start", Err: err}
	}
	pipes.closeWriters()
	waitErr := cmd.Wait()
	_ = killGroup(cmd.Process.Pid) // stragglers the plugin left running
	pipes.finish(2 * time.Second)
	dur := time.Since(start)
	lines := tail.lines()

	if waitErr != nil {
		re := &RunError{Exe: o.Exe, StderrTail: lines, Err: waitErr}
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded) && o.Timeout > 0:
			re.Reason = fmt.Sprintf("timed out after %s and was killed", o.Timeout)
			re.Err = context.DeadlineExceeded
		case ctx.Err() != nil:
			re.Reason = "was stopped: " + ctx.Err().Error()
			re.Err = ctx.Err()
		default:
			re.Reason = exitReason(cmd.ProcessState, waitErr)
		}
		return nil, re
	}
	n, err := countFiles(o.OutputDir)
	if err != nil {
		return nil, &RunError{Exe: o.Exe, Reason: "left an unreadable output directory", StderrTail: lines, Err: err}
	}
	if n == 0 {
		return nil, &RunError{Exe: o.Exe, Reason: "exited with status 0 but wrote no files to " + EnvOutput, StderrTail: lines}
	}
	if o.InputDigest != "" {
		got, err := modelsource.TreeDigest(o.InputDir)
		if err != nil || got != o.InputDigest {
			return nil, &RunError{Exe: o.Exe, Reason: "modified its input directory (" + EnvInput + " is read-only)", StderrTail: lines, Err: err}
		}
	}
	report, err := os.ReadFile(o.ReportFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		report = nil
	case err != nil:
		return nil, &RunError{Exe: o.Exe, Reason: "report could not be read", StderrTail: lines, Err: err}
	case !json.Valid(report):
		return nil, &RunError{Exe: o.Exe, Reason: "wrote a report that is not valid JSON (" + EnvReport + ")", StderrTail: lines}
	}
	o.Logger.Info("plugin finished", "exe", o.Exe, "duration", dur, "files", n)
	return &Result{Duration: dur, StderrTail: lines, Report: report}, nil
}

// prepare checks the options and sets up the directories of the contract.
func prepare(o *RunOptions) error {
	if len(o.Args) == 0 {
		return errors.New("run plugin: no command (Args is empty)")
	}
	if !filepath.IsAbs(o.Exe) {
		return fmt.Errorf("run plugin: executable %q is not an absolute path", o.Exe)
	}
	if err := checkExecutable(o.Exe); err != nil {
		return fmt.Errorf("run plugin: %w", err)
	}
	if o.Device != "cpu" && o.Device != "gpu" {
		return fmt.Errorf("run plugin: device %q: want cpu or gpu", o.Device)
	}
	for name, p := range map[string]*string{"input": &o.InputDir, "output": &o.OutputDir, "config": &o.ConfigFile, "report": &o.ReportFile} {
		if *p == "" {
			return fmt.Errorf("run plugin: %s path is empty", name)
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("run plugin: %s path: %w", name, err)
		}
		*p = abs
	}
	if info, err := os.Stat(o.InputDir); err != nil || !info.IsDir() {
		return fmt.Errorf("run plugin: input %s is not a directory", o.InputDir)
	}
	if _, err := os.Stat(o.ConfigFile); err != nil {
		return fmt.Errorf("run plugin: config file: %w", err)
	}
	if err := os.MkdirAll(o.OutputDir, 0o755); err != nil {
		return fmt.Errorf("run plugin: output dir: %w", err)
	}
	if ents, err := os.ReadDir(o.OutputDir); err != nil || len(ents) > 0 {
		return fmt.Errorf("run plugin: output dir %s must be empty", o.OutputDir)
	}
	if err := os.Remove(o.ReportFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("run plugin: stale report file: %w", err)
	}
	if err := modelsource.MakeReadOnly(o.InputDir); err != nil {
		return fmt.Errorf("run plugin: %w", err)
	}
	return nil
}

func environ(o RunOptions) []string {
	env := make([]string, 0, len(o.Env)+6)
	hasPath := false
	for _, kv := range o.Env {
		if strings.HasPrefix(kv, "EAS_PLUGIN_") {
			continue // the contract's values win
		}
		hasPath = hasPath || strings.HasPrefix(kv, "PATH=")
		env = append(env, kv)
	}
	if !hasPath {
		env = append(env, defaultPath)
	}
	return append(env,
		EnvInput+"="+o.InputDir,
		EnvOutput+"="+o.OutputDir,
		EnvConfig+"="+o.ConfigFile,
		EnvReport+"="+o.ReportFile,
		EnvDevice+"="+o.Device,
	)
}

func exitReason(ps *os.ProcessState, err error) string {
	if ps == nil {
		return "failed: " + err.Error()
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("was killed by signal %s", ws.Signal())
	}
	return fmt.Sprintf("exited with status %d", ps.ExitCode())
}

func countFiles(dir string) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n, err
}

// tailBuffer keeps the last max lines. Safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex // guards buf
	max int
	buf []string
}

func (t *tailBuffer) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, line)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
}

func (t *tailBuffer) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.buf...)
}

// pipes carry the plugin's stdout and stderr to line readers.
type pipes struct {
	stdoutR, stdoutW, stderrR, stderrW *os.File
	done                               sync.WaitGroup
}

func startReaders(log *slog.Logger, name string, tail *tailBuffer) (*pipes, error) {
	p := &pipes{}
	var err error
	if p.stdoutR, p.stdoutW, err = os.Pipe(); err != nil {
		return nil, fmt.Errorf("run plugin: %w", err)
	}
	if p.stderrR, p.stderrW, err = os.Pipe(); err != nil {
		p.stdoutR.Close()
		p.stdoutW.Close()
		return nil, fmt.Errorf("run plugin: %w", err)
	}
	p.done.Add(2)
	go p.read(p.stdoutR, func(l string) { log.Debug("plugin stdout", "plugin", name, "line", l) })
	go p.read(p.stderrR, func(l string) {
		tail.add(l)
		log.Debug("plugin stderr", "plugin", name, "line", l)
	})
	return p, nil
}

func (p *pipes) read(r io.Reader, line func(string)) {
	defer p.done.Done()
	br := bufio.NewReaderSize(r, maxLineBytes)
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			l := string(bytes.TrimRight(chunk, "\r\n"))
			if errors.Is(err, bufio.ErrBufferFull) {
				l += " …(line truncated)"
				// Skip the rest of the over-long line.
				for errors.Is(err, bufio.ErrBufferFull) {
					_, err = br.ReadSlice('\n')
				}
			}
			line(l)
		}
		if err != nil {
			return
		}
	}
}

func (p *pipes) closeWriters() {
	p.stdoutW.Close()
	p.stderrW.Close()
}

// abort is for a failed start: nothing else holds the pipes.
func (p *pipes) abort() {
	p.closeWriters()
	p.done.Wait()
	p.stdoutR.Close()
	p.stderrR.Close()
}

// finish waits for the readers to reach end of file, at most grace, then closes the pipes so a
// process that escaped the group and still holds them cannot block the run.
func (p *pipes) finish(grace time.Duration) {
	done := make(chan struct{})
	go func() { p.done.Wait(); close(done) }()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	p.stdoutR.Close()
	p.stderrR.Close()
	<-done
}
