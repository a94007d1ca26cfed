package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// closed reports whether ch is closed, without waiting.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestWatchWakesOnlyRelevantWaiters(t *testing.T) {
	c, _ := catalogtest.New(t, catalog.Config{})
	w := catalog.NewWriter("n1", 1)
	apply(t, c, w.PutService(catalogtest.Service("web-1", "web", 80)), w.PutService(catalogtest.Service("db-1", "db", 5432)))

	webIdx, _ := c.Watch(catalog.ServiceTopic("web"))
	var webChans []<-chan struct{}
	for range 500 {
		_, ch := c.Watch(catalog.ServiceTopic("web"))
		webChans = append(webChans, ch)
	}
	_, dbCh := c.Watch(catalog.ServiceTopic("db"))

	apply(t, c, w.PutService(catalogtest.Service("db-1", "db", 5433))) // a change to db
	if !closed(dbCh) {
		t.Fatal("db waiter not woken by a db change")
	}
	for i, ch := range webChans {
		if closed(ch) {
			t.Fatalf("web waiter %d woken by a db change", i)
		}
	}
	if got := c.TopicIndex(catalog.ServiceTopic("web")); got != webIdx {
		t.Fatalf("web index moved %d → %d on a db change", webIdx, got)
	}

	apply(t, c, w.PutService(catalogtest.Service("web-1", "web", 81)))
	for i, ch := range webChans {
		if !closed(ch) {
			t.Fatalf("web waiter %d not woken by a web change", i)
		}
	}
	if got := c.TopicIndex(catalog.ServiceTopic("web")); got <= webIdx {
		t.Fatalf("web index %d did not pass %d on a web change", got, webIdx)
	}
}

func TestTopicsMovedByChange(t *testing.T) {
	// For each change, which of these topics must move (true) and which must stay.
	topics := map[string]catalog.Topic{
		"web": catalog.ServiceTopic("web"), "db": catalog.ServiceTopic("db"),
		"n1": catalog.NodeTopic("n1"), "n2": catalog.NodeTopic("n2"),
		"services": catalog.TopicServices, "nodes": catalog.TopicNodes, "all": catalog.TopicAll,
	}
	tests := []struct {
		name   string
		change func(c *catalog.Catalog, w1 *catalog.Writer) error
		moves  map[string]bool
	}{
		{"web service check", func(c *catalog.Catalog, w1 *catalog.Writer) error {
			_, err := c.Apply(w1.PutCheck(catalogtest.Check("web-1-http", "web-1", catalog.StatusCritical)))
			return err
		}, map[string]bool{"web": true, "n1": true, "all": true}},
		{"node-level check moves every service of the node", func(c *catalog.Catalog, w1 *catalog.Writer) error {
			_, err := c.Apply(w1.PutCheck(catalogtest.Check("disk", "", catalog.StatusWarning)))
			return err
		}, map[string]bool{"web": true, "db": true, "n1": true, "all": true}},
		{"liveness moves the node's services and nodes", func(c *catalog.Catalog, _ *catalog.Writer) error {
			c.SetLiveness("n1", catalog.LivenessFailed)
			return nil
		}, map[string]bool{"web": true, "db": true, "n1": true, "nodes": true, "all": true}},
		{"node record moves its services and nodes", func(c *catalog.Catalog, w1 *catalog.Writer) error {
			_, err := c.Apply(w1.PutNode(catalogtest.Node("n1", "10.0.0.9")))
			return err
		}, map[string]bool{"web": true, "db": true, "n1": true, "nodes": true, "all": true}},
		{"new service moves services", func(c *catalog.Catalog, w1 *catalog.Writer) error {
			_, err := c.Apply(w1.PutService(catalogtest.Service("cache-1", "cache", 6379)))
			return err
		}, map[string]bool{"n1": true, "services": true, "all": true}},
		{"duplicate moves nothing", func(c *catalog.Catalog, _ *catalog.Writer) error {
			_, err := c.Apply(c.Records("n2")...)
			return err
		}, map[string]bool{}},
		{"first liveness report records its time", func(c *catalog.Catalog, _ *catalog.Writer) error {
			c.SetLiveness("n2", catalog.LivenessAlive)
			return nil
		}, map[string]bool{"db": true, "n2": true, "nodes": true, "all": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := catalogtest.New(t, catalog.Config{})
			w1, w2 := catalog.NewWriter("n1", 1), catalog.NewWriter("n2", 1)
			apply(t, c, w1.PutNode(catalogtest.Node("n1", "10.0.0.1")),
				w1.PutService(catalogtest.Service("web-1", "web", 80)),
				w1.PutService(catalogtest.Service("db-1", "db", 5432)),
				w2.PutNode(catalogtest.Node("n2", "10.0.0.2")),
				w2.PutService(catalogtest.Service("db-2", "db", 5432)))
			before := map[string]uint64{}
			for k, tp := range topics {
				before[k] = c.TopicIndex(tp)
			}
			if err := tt.change(c, w1); err != nil {
				t.Fatal(err)
			}
			for k, tp := range topics {
				moved := c.TopicIndex(tp) != before[k]
				if moved != tt.moves[k] {
					t.Errorf("topic %s moved = %v, want %v", k, moved, tt.moves[k])
				}
			}
		})
	}
}

func TestSameLivenessAgainMovesNothing(t *testing.T) {
	c, clk := catalogtest.New(t, catalog.Config{})
	w := catalog.NewWriter("n1", 1)
	apply(t, c, w.PutService(catalogtest.Service("a", "web", 80)))
	c.SetLiveness("n1", catalog.LivenessSuspect)
	_, since := c.Liveness("n1")
	idx := c.Index()
	clk.Advance(time.Second)
	c.SetLiveness("n1", catalog.LivenessSuspect)
	if got := c.Index(); got != idx {
		t.Errorf("index moved %d → %d on a repeated liveness report", idx, got)
	}
	if _, got := c.Liveness("n1"); !got.Equal(since) {
		t.Errorf("since moved %v → %v on a repeated report", since, got)
	}
}

func TestIndexNeverZeroAndAbsentTopicsStable(t *testing.T) {
	c, _ := catalogtest.New(t, catalog.Config{})
	if c.Index() == 0 || c.TopicIndex(catalog.ServiceTopic("nope")) == 0 {
		t.Fatal("an index is 0")
	}
	w := catalog.NewWriter("n1", 1)
	apply(t, c, w.PutService(catalogtest.Service("a", "web", 80)))
	idx := c.TopicIndex(catalog.ServiceTopic("nope"))
	apply(t, c, w.PutService(catalogtest.Service("b", "web", 80)))
	if got := c.TopicIndex(catalog.ServiceTopic("nope")); got != idx {
		t.Errorf("absent service index moved %d → %d", idx, got)
	}
	// A service that appears moves past what was reported while it was absent.
	apply(t, c, w.PutService(catalogtest.Service("c", "nope", 80)))
	if got := c.TopicIndex(catalog.ServiceTopic("nope")); got <= idx {
		t.Errorf("index %d of a new service did not pass %d", got, idx)
	}
}

func TestWaitIndex(t *testing.T) {
	c, _ := catalogtest.New(t, catalog.Config{})
	w := catalog.NewWriter("n1", 1)
	apply(t, c, w.PutService(catalogtest.Service("a", "web", 80)))
	idx := c.TopicIndex(catalog.ServiceTopic("web"))

	// Already past: returns at once.
	if got, err := c.WaitIndex(context.Background(), catalog.ServiceTopic("web"), idx-1); err != nil || got != idx {
		t.Fatalf("WaitIndex(past) = %d, %v; want %d", got, err, idx)
	}
	// Times out with the current index when nothing changes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if got, err := c.WaitIndex(ctx, catalog.ServiceTopic("web"), idx); !errors.Is(err, context.DeadlineExceeded) || got != idx {
		t.Fatalf("WaitIndex(timeout) = %d, %v; want %d, deadline exceeded", got, err, idx)
	}
	// Woken by a relevant change made by another goroutine.
	var wg sync.WaitGroup
	got := make(chan uint64, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		i, _ := c.WaitIndex(ctx, catalog.ServiceTopic("web"), idx)
		got <- i
	}()
	// Whether the waiter parks before or after these changes, it must come back with
	// an index past idx, and the unrelated db change alone must not satisfy it.
	apply(t, c, w.PutService(catalogtest.Service("d", "db", 1)))
	apply(t, c, w.PutService(catalogtest.Service("a", "web", 81)))
	wg.Wait()
	if i := <-got; i <= idx {
		t.Fatalf("woken with index %d, want > %d", i, idx)
	}
}

func TestForgetOrphansKeepsIndexesMonotonic(t *testing.T) {
	c, _ := catalogtest.New(t, catalog.Config{})
	w := catalog.NewWriter("n1", 1)
	// Create and delete many service names so their watch entries become orphans.
	for i := range 5000 {
		s := catalogtest.Service("s", "svc"+strconv.Itoa(i), 1)
		apply(t, c, w.PutService(s))
	}
	idx, ch := c.Watch(catalog.ServiceTopic("svc1"))
	c.Expire()
	if !closed(ch) {
		t.Fatal("waiter on a forgotten topic was not woken")
	}
	if got := c.TopicIndex(catalog.ServiceTopic("svc1")); got < idx {
		t.Fatalf("index of a forgotten topic went back %d → %d", idx, got)
	}
	if got, want := c.TopicIndex(catalog.ServiceTopic("svc4999")), c.Index(); got > want {
		t.Fatalf("live topic index %d above global %d", got, want)
	}
}

// NodeIndexes reports each node's topic index, moving exactly with NodeTopic.
func TestNodeIndexes(t *testing.T) {
	c, clk := catalogtest.New(t, catalog.Config{})
	a, b := catalog.NewWriter("a", 1), catalog.NewWriter("b", 1)
	if _, err := c.Apply(a.PutNode(catalogtest.Node("a", "10.0.0.1")), b.PutNode(catalogtest.Node("b", "10.0.0.2"))); err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{"stale": 9}
	c.NodeIndexes(got)
	want := map[string]uint64{"a": c.TopicIndex(catalog.NodeTopic("a")), "b": c.TopicIndex(catalog.NodeTopic("b"))}
	if !maps.Equal(got, want) {
		t.Fatalf("NodeIndexes = %v, want %v", got, want)
	}
	before := got["a"]
	clk.Advance(time.Second)
	c.SetLiveness("b", catalog.LivenessFailed)
	c.NodeIndexes(got)
	if got["a"] != before || got["b"] <= want["b"] || got["b"] != c.TopicIndex(catalog.NodeTopic("b")) {
		t.Fatalf("after b failed: %v (before %v)", got, want)
	}
}

// NodesChangedSince reports exactly the nodes whose topic moved after an index, the
// going of a node included, until its log no longer reaches back.
func TestNodesChangedSince(t *testing.T) {
	c, clk := catalogtest.New(t, catalog.Config{})
	a, b := catalog.NewWriter("a", 1), catalog.NewWriter("b", 1)
	if _, err := c.Apply(a.PutNode(catalogtest.Node("a", "10.0.0.1")), b.PutNode(catalogtest.Node("b", "10.0.0.2"))); err != nil {
		t.Fatal(err)
	}
	changed := func(after uint64) ([]string, uint64, bool) {
		t.Helper()
		names, idx, ok := c.NodesChangedSince(after, nil)
		slices.Sort(names)
		return slices.Compact(names), idx, ok
	}
	names, idx, ok := changed(0)
	if !ok || !slices.Equal(names, []string{"a", "b"}) || idx != c.Index() {
		t.Fatalf("since 0: %v at %d, %v; want a and b at %d", names, idx, ok, c.Index())
	}
	if names, _, ok := changed(idx); !ok || len(names) != 0 {
		t.Fatalf("since now: %v, %v; want nothing", names, ok)
	}
	clk.Advance(time.Second)
	c.SetLiveness("b", catalog.LivenessFailed)
	names, idx2, ok := changed(idx)
	if !ok || !slices.Equal(names, []string{"b"}) || idx2 <= idx {
		t.Fatalf("after b failed: %v at %d, %v; want b after %d", names, idx2, ok, idx)
	}
	if _, err := c.Apply(a.PutService(catalogtest.Service("web", "web", 80))); err != nil {
		t.Fatal(err)
	}
	if names, _, _ := changed(idx2); !slices.Equal(names, []string{"a"}) {
		t.Fatalf("after a's service: %v, want a", names)
	}
	// Many more moves than the log keeps: a reader that far behind must compare all.
	for i := range 5000 {
		w := catalog.NewWriter(fmt.Sprintf("n%04d", i), 1)
		if _, err := c.Apply(w.PutNode(catalogtest.Node(w.Origin(), "10.1.0.1"))); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, ok := changed(idx2); ok {
		t.Fatal("5,000 moves later, the log still claims to know every move")
	}
	if names, _, ok := changed(c.Index() - 1); !ok || len(names) != 1 {
		t.Fatalf("the last move: %v, %v; want one node", names, ok)
	}
}
