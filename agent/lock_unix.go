//go:build unix

package agent

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockDir takes an exclusive advisory lock on path (created if needed), so two agents
// never share a data dir. The kernel drops the lock if the process dies.
func lockDir(path string) (unlock func() error, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent: lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("agent: data dir is in use by another agent (%s is locked): stop it, or give this one its own data dir", path)
		}
		return nil, fmt.Errorf("agent: lock data dir: %w", err)
	}
	return f.Close, nil // closing the file releases the lock
}
