package mdns_test

import (
	"os"
	"testing"

	"github.com/rumor-sd/rumor/internal/testkit"
	"github.com/rumor-sd/rumor/mdns"
)

// TestGuard: under the guard, nothing mDNS starts in the guarded namespace.
func TestGuard(t *testing.T) {
	t.Setenv(mdns.GuardEnv, "")
	testkit.GuardMDNS()
	ns, err := os.Readlink("/proc/self/ns/net")
	if err != nil || os.Getenv(mdns.GuardEnv) != ns {
		t.Fatalf("testkit.GuardMDNS set %s=%q, want this namespace %q (%v)", mdns.GuardEnv, os.Getenv(mdns.GuardEnv), ns, err)
	}
	m, err := mdns.New(mdns.Config{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Start(); err != mdns.ErrRootNamespace {
		t.Fatalf("Start in the guarded namespace: got %v, want ErrRootNamespace", err)
	}
	if err := mdns.Browse(t.Context(), mdns.BrowseConfig{}, func(mdns.Event) {}); err != mdns.ErrRootNamespace {
		t.Fatalf("Browse in the guarded namespace: got %v, want ErrRootNamespace", err)
	}
}
