package mdns

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// GuardEnv is the environment variable GuardRootNamespace sets. While it is "1",
// Start refuses to run in the root network namespace, in this process and in every
// process it starts (agents that tests run as child processes inherit it).
const GuardEnv = "RUMOR_MDNS_GUARD"

// ErrRootNamespace is returned by Start under GuardRootNamespace outside a test's
// network namespace.
var ErrRootNamespace = errors.New("mdns: refusing to multicast from the root network namespace in a test (" + GuardEnv + "=1): run the agent inside a test namespace, or with mDNS off")

// GuardRootNamespace makes this process and its children refuse to start mDNS in the
// root network namespace. Test binaries call it first thing in TestMain, so that no
// test ever multicasts on the machine's real interfaces, even by accident.
func GuardRootNamespace() {
	_ = os.Setenv(GuardEnv, "1")
}

// checkGuard returns ErrRootNamespace when the guard is on and the calling thread is
// in the root network namespace (the one of PID 1); an error when that cannot be told.
func checkGuard() error {
	if os.Getenv(GuardEnv) != "1" {
		return nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err1 := os.Stat("/proc/thread-self/ns/net")
	root, err2 := os.Stat("/proc/1/ns/net")
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("mdns: %s=1 and the network namespace cannot be told: %w", GuardEnv, err)
	}
	if os.SameFile(self, root) {
		return ErrRootNamespace
	}
	return nil
}
