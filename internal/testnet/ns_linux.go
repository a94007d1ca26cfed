//go:build linux

package testnet

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// enterNamespace switches the calling thread, which the caller has locked, into the
// named network namespace, and returns a function that switches it back.
func enterNamespace(name string) (restore func() error, err error) {
	self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	orig, err := unix.Open(self, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("testnet: open own namespace: %w", err)
	}
	fd, err := unix.Open(nsPath(name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(orig)
		return nil, fmt.Errorf("testnet: open namespace %s: %w", name, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		unix.Close(orig)
		return nil, fmt.Errorf("testnet: enter namespace %s: %w", name, err)
	}
	return func() error {
		defer unix.Close(orig)
		return unix.Setns(orig, unix.CLONE_NEWNET)
	}, nil
}

// sysProcAttr makes a child die with SIGKILL when the test process dies, so a crashed
// test leaves nothing running; group puts it in a process group of its own.
//
// Pdeathsig fires when the thread that forked the child exits. Go keeps its threads for
// the life of the process, except those of goroutines that exit while locked to them;
// Host.Do unlocks its thread after returning it to its namespace, so it ends none.
func sysProcAttr(group bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: group, Pdeathsig: syscall.SIGKILL}
}

// killGroup sends SIGKILL to every process in the group led by pid. An empty group is
// not an error.
func killGroup(pid int) error {
	if err := unix.Kill(-pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("testnet: kill process group %d: %w", pid, err)
	}
	return nil
}

// killPID sends SIGKILL to one process.
func killPID(pid int) error { return unix.Kill(pid, unix.SIGKILL) }

// processAlive reports whether a process with this PID exists. EPERM means it exists
// but belongs to someone else.
func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
