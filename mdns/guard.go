package mdns

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// GuardEnv is the environment variable GuardRootNamespace sets, to the network
// namespace the test binary started in ("net:[4026531840]"). While it is set, Start
// and Browse refuse to run in that namespace, in this process and in every process it
// starts (agents that tests run as child processes inherit it), and run only in other
// namespaces: the testbeds' hosts.
const GuardEnv = "RUMOR_MDNS_GUARD"

// ErrRootNamespace is returned by Start and Browse under the guard, in the namespace
// the test binary started in.
var ErrRootNamespace = errors.New("mdns: refusing to multicast from the machine's own network namespace in a test (" + GuardEnv + " is set): run the agent inside a test namespace, or with mDNS off")

// GuardRootNamespace makes this process and its children refuse to start mDNS in
// the network namespace it runs in now. Test binaries call it (or
// testkit.GuardMDNS) first thing in TestMain, so that no test ever multicasts on the
// machine's real interfaces, even by accident. It panics if the namespace cannot be
// read: a guard that silently does nothing would be worse.
func GuardRootNamespace() {
	ns, err := currentNetNS()
	if err != nil {
		panic(fmt.Sprintf("mdns: guard: %v", err))
	}
	_ = os.Setenv(GuardEnv, ns)
}

// currentNetNS names the calling thread's network namespace.
func currentNetNS() (string, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return os.Readlink("/proc/thread-self/ns/net")
}

// checkGuard returns ErrRootNamespace when the guard is set and the calling thread is
// in the guarded namespace, and an error when that cannot be told (fail closed).
func checkGuard() error {
	guarded := os.Getenv(GuardEnv)
	if guarded == "" {
		return nil
	}
	ns, err := currentNetNS()
	if err != nil {
		return fmt.Errorf("mdns: %s is set and the network namespace cannot be told: %w", GuardEnv, err)
	}
	if ns == guarded {
		return ErrRootNamespace
	}
	return nil
}
