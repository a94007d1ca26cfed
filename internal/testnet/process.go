package testnet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// maxOutput is how many bytes of a process's output are kept: the newest ones.
const maxOutput = 1 << 20

// killTimeout bounds the wait for a SIGKILLed process to be reaped. Only a process stuck
// in the kernel (uninterruptible sleep) takes longer.
const killTimeout = 10 * time.Second

// Process is a long-running program that a testbed started in one of its hosts with
// Host.Start. It runs in a process group of its own, so Kill reaches its children too.
type Process struct {
	host *Host
	name string
	args []string
	env  []string
	log  *tailBuffer // shared by every run, so Output spans restarts

	mu  sync.Mutex
	cur *attempt // the latest run; never nil after Start succeeds
}

// attempt is one execution of a Process: Restart makes a new one.
type attempt struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait has returned
	err  error         // cmd.Wait's result, set before done is closed
}

// start launches a new run. The caller holds p.host.tb.mu and has checked that the
// testbed is open, so Close cannot miss the run.
func (p *Process) start() error {
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.host.name, p.name}, p.args...)...)
	if p.env != nil {
		cmd.Env = append(os.Environ(), p.env...)
	}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.SysProcAttr = sysProcAttr(true) // a group of its own: Kill reaches its children
	// A grandchild that left the group may hold the output pipe open; do not let it
	// keep Wait from returning.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testnet: start %s in %s: %w", p.describe(), p.host.name, err)
	}
	r := &attempt{cmd: cmd, done: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	p.mu.Lock()
	p.cur = r
	p.mu.Unlock()
	return nil
}

// current returns the latest run.
func (p *Process) current() *attempt {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// kill sends SIGKILL to the latest run's process group and waits until it is reaped.
func (p *Process) kill() error {
	r := p.current()
	// The group is signalled even when its leader has exited, to reach children it
	// left behind; ESRCH means the group is empty.
	if err := killGroup(r.cmd.Process.Pid); err != nil {
		return fmt.Errorf("testnet: kill %s in %s: %w", p.describe(), p.host.name, err)
	}
	select {
	case <-r.done:
		return nil
	case <-time.After(killTimeout):
		return fmt.Errorf("testnet: kill %s in %s: still running %v after SIGKILL", p.describe(), p.host.name, killTimeout)
	}
}

// Kill stops the process with SIGKILL, as a crash or kill -9 would, together with
// every process in its group, and returns once it has been reaped. Killing a process
// that has already exited does nothing.
func (p *Process) Kill() error { return p.kill() }

// Restart kills the process if it is still running and starts it again with the same
// program, arguments and environment. Its output is appended to the same log, after a
// line that marks the restart.
func (p *Process) Restart() error {
	if err := p.kill(); err != nil {
		return err
	}
	tb := p.host.tb
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.closed {
		return ErrClosed
	}
	fmt.Fprintf(p.log, "testnet: restarting %s\n", p.describe())
	return p.start()
}

// Wait waits until the current run of the process exits, or until ctx is done, and
// returns its exit error as exec.Cmd.Wait does (non-nil after Kill).
func (p *Process) Wait(ctx context.Context) error {
	r := p.current()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return fmt.Errorf("testnet: wait for %s in %s: %w", p.describe(), p.host.name, ctx.Err())
	}
}

// Exited reports whether the current run of the process has exited and been reaped.
func (p *Process) Exited() bool {
	select {
	case <-p.current().done:
		return true
	default:
		return false
	}
}

// Pid returns the process ID of the current run.
func (p *Process) Pid() int { return p.current().cmd.Process.Pid }

// Host returns the host the process runs in.
func (p *Process) Host() *Host { return p.host }

// Output returns what the process has written to its standard output and error so far,
// across restarts; only the last MiB is kept.
func (p *Process) Output() string { return p.log.String() }

// describe names the process in errors and logs.
func (p *Process) describe() string {
	return strings.Join(append([]string{p.name}, p.args...), " ")
}

// tailBuffer is a concurrency-safe io.Writer that keeps the newest max bytes.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

// Write appends b, dropping the oldest bytes beyond the limit. It never fails.
func (b *tailBuffer) Write(data []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, data...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(data), nil
}

// String returns the kept bytes.
func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
