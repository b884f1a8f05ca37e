// Package mqctltest runs the real mqctl binary as a child process, for
// tests that must kill it, freeze it, or watch what it prints while the
// broker under it fails. In-process runs (cli.Run) cannot be SIGKILLed.
package mqctltest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary builds mqctl once per test process and returns its path. The
// binary lives in one fixed place per checkout, overwritten by each run,
// so runs don't pile up binaries in the temp directory.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		_, here, _, _ := runtime.Caller(0)
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("mqctl-bin-%x", sha256.Sum256([]byte(here)))[:22])
		if err := os.MkdirAll(dir, 0o700); err != nil {
			binErr = err
			return
		}
		// Built per test package process: two packages building at once
		// must not write one file.
		binPath = filepath.Join(dir, fmt.Sprintf("mqctl-%d", os.Getpid()))
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/mqctl/mqctl/cmd/mqctl").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// Proc is mqctl running as a child process.
type Proc struct {
	Cmd    *exec.Cmd
	stdout *Buffer
	stderr *Buffer
	done   chan struct{}
}

// Start runs mqctl with only env (plus PATH, a private HOME and a config
// path that does not exist), never the test process's own MQCTL_*
// variables. The process is killed when t ends.
func Start(t testing.TB, env map[string]string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "MQCTL_CONFIG=" + filepath.Join(t.TempDir(), "none.yaml")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &Proc{Cmd: cmd, stdout: &Buffer{}, stderr: &Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.Signal(syscall.SIGKILL); <-p.done })
	return p
}

// Signal sends s to the process (no-op once it has exited).
func (p *Proc) Signal(s syscall.Signal) { _ = p.Cmd.Process.Signal(s) }

// Stdout and Stderr are what the process printed so far.
func (p *Proc) Stdout() string { return p.stdout.String() }
func (p *Proc) Stderr() string { return p.stderr.String() }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits up to within for the process to exit and returns its exit
// code; the test fails if it is still running then.
func (p *Proc) Wait(t testing.TB, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("mqctl %v did not exit within %s; stderr:\n%s", p.Cmd.Args[1:], within, p.Stderr())
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Result is a finished run.
type Result struct {
	Stdout, Stderr string
	Code           int
	Took           time.Duration
}

// Run runs mqctl to completion (at most within) and returns what it printed.
func Run(t testing.TB, within time.Duration, env map[string]string, args ...string) Result {
	t.Helper()
	start := time.Now()
	p := Start(t, env, args...)
	code := p.Wait(t, within)
	return Result{Stdout: p.Stdout(), Stderr: p.Stderr(), Code: code, Took: time.Since(start)}
}

// Buffer is a bytes.Buffer a test may read while a running command
// writes to it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
