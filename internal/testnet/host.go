package testnet

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
)

// Host is one namespace of a testbed: loopback plus eth0 on the testbed's bridge.
type Host struct {
	tb    *Testbed
	index int // counted from 1; the bridge port is "v<index>"
	name  string
	ip    netip.Addr
}

// Name returns the host's namespace name, for ip(8) ("ip netns exec NAME ...") and logs.
func (h *Host) Name() string { return h.name }

// IP returns the host's IPv4 address on eth0.
func (h *Host) IP() netip.Addr { return h.ip }

// String returns the host's name.
func (h *Host) String() string { return h.name }

// port is the name of h's veth end on the bridge, in the bridge namespace.
func (h *Host) port() string { return fmt.Sprintf("v%d", h.index) }

// Command returns a command that runs name with args inside the host's namespace, via
// "ip netns exec". The caller owns it: run it, wait for it, read its output. ctx kills
// it as exec.CommandContext does. It gets SIGKILL if the test process dies first, and
// Close kills it if it is still running then. For a process the testbed should own,
// kill and restart, use Start.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.name, name}, args...)...)
	// ip netns exec execs the command in place, so the attributes reach it too.
	cmd.SysProcAttr = sysProcAttr(false)
	return cmd
}

// Start starts name with args inside the host as a process the testbed owns: it can be
// killed and restarted, its standard output and error are kept (see Process.Output),
// and Close kills it. It inherits the test's environment.
func (h *Host) Start(name string, args ...string) (*Process, error) {
	return h.StartEnv(nil, name, args...)
}

// StartEnv is Start with env ("KEY=value" entries) added to the inherited environment.
func (h *Host) StartEnv(env []string, name string, args ...string) (*Process, error) {
	// Copies, so that Restart runs what was started even if the caller reuses its slices.
	p := &Process{host: h, name: name, args: slices.Clone(args), env: slices.Clone(env), log: newTailBuffer(maxOutput)}
	h.tb.mu.Lock()
	defer h.tb.mu.Unlock()
	if h.tb.closed {
		return nil, ErrClosed
	}
	if err := p.start(); err != nil {
		return nil, err
	}
	h.tb.procs = append(h.tb.procs, p)
	return p, nil
}

// DialContext opens a connection from inside the host's namespace, so the caller can
// reach what listens on the host's own loopback (an agent's HTTP API, say) without
// starting a process there. It fits http.Transport.DialContext: the connection keeps
// working from any goroutine and can be kept alive across requests.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := h.Do(func() (err error) {
		var d net.Dialer
		conn, err = d.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// Do runs f on a thread that has entered the host's network namespace and returns f's
// error. Sockets that f opens belong to the host and keep working after Do returns, so
// f can open a listener or connection for the caller to use from any goroutine. Only f's
// own goroutine is in the namespace: goroutines f starts are not. The thread returns to
// its namespace when f returns; should that fail, the thread is discarded rather than
// reused. A panic in f is re-raised in the caller, and runtime.Goexit in f (t.FailNow)
// ends the caller's goroutine too.
func (h *Host) Do(f func() error) error {
	type result struct {
		err      error
		panicked bool
		value    any
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		restore, err := enterNamespace(h.name)
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{err: err}
			return
		}
		finished := false
		defer func() {
			// Unlock only once the thread is back: a goroutine that exits while
			// locked takes its thread with it, so a thread still in the host's
			// namespace never runs other goroutines.
			if restore() == nil {
				runtime.UnlockOSThread()
			}
			if !finished {
				v := recover()
				res <- result{panicked: true, value: v}
			}
		}()
		err = f()
		finished = true
		res <- result{err: err}
	}()
	r := <-res
	switch {
	case r.panicked && r.value == nil:
		runtime.Goexit()
	case r.panicked:
		panic(r.value)
	}
	return r.err
}
