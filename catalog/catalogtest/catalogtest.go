// Package catalogtest provides test helpers for code built on the catalog: a manual
// clock and builders for records. It is imported only by tests.
//
// # Concurrency
//
// Clock is safe for concurrent use; the builders are plain functions.
package catalogtest

import (
	"fmt"
	"sync"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// Clock is a catalog.Clock that moves only when told to.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock set to a fixed, arbitrary instant.
func NewClock() *Clock {
	return &Clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// Now implements catalog.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// New returns an empty catalog on a fresh Clock, failing the test on error.
func New(tb interface {
	Helper()
	Fatalf(string, ...any)
}, cfg catalog.Config) (*catalog.Catalog, *Clock) {
	tb.Helper()
	clk := NewClock()
	if cfg.Clock == nil {
		cfg.Clock = clk
	}
	c, err := catalog.New(cfg)
	if err != nil {
		tb.Fatalf("catalog.New: %v", err)
	}
	return c, clk
}

// NodeID derives a deterministic UUID from a node name, for tests.
func NodeID(name string) string {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(h>>32), uint16(h>>16), uint16(h)&0xfff, uint16(h>>4)&0xfff, h&0xffffffffffff)
}

// Node returns a valid node record value named name in datacenter "dc1".
func Node(name, addr string) *catalog.Node {
	return &catalog.Node{ID: NodeID(name), Name: name, Address: addr, Datacenter: "dc1"}
}

// Service returns a valid service with default weights.
func Service(id, name string, port int, tags ...string) *catalog.Service {
	return &catalog.Service{ID: id, Name: name, Port: port, Tags: tags, Weights: catalog.DefaultWeights}
}

// Check returns a valid check of serviceID ("" for a node-level check).
func Check(id, serviceID string, status catalog.Status) *catalog.Check {
	return &catalog.Check{ID: id, Name: id, ServiceID: serviceID, Status: status, Type: "ttl"}
}
