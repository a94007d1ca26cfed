package mdns_test

import (
	"os"
	"testing"

	"github.com/rumor-sd/rumor/internal/testkit"
	"github.com/rumor-sd/rumor/mdns"
)

// TestGuard: under the guard, nothing mDNS starts in the root namespace.
func TestGuard(t *testing.T) {
	t.Setenv(mdns.GuardEnv, "")
	testkit.GuardMDNS()
	if os.Getenv(mdns.GuardEnv) != "1" {
		t.Fatalf("testkit.GuardMDNS does not set %s", mdns.GuardEnv)
	}
	self, err1 := os.Stat("/proc/thread-self/ns/net")
	root, err2 := os.Stat("/proc/1/ns/net")
	if err1 != nil || err2 != nil || !os.SameFile(self, root) {
		t.Skip("not in the root network namespace, or cannot tell")
	}
	m, err := mdns.New(mdns.Config{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Start(); err != mdns.ErrRootNamespace {
		t.Fatalf("Start in the root namespace under the guard: got %v, want ErrRootNamespace", err)
	}
}
