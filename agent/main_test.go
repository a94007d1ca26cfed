package agent

import (
	"os"
	"testing"

	"github.com/rumor-sd/rumor/internal/testkit"
)

// TestMain guards the package's tests: no agent they start may run mDNS in the root
// network namespace.
func TestMain(m *testing.M) {
	testkit.GuardMDNS()
	os.Exit(m.Run())
}
