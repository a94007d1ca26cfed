package compat

import (
	"maps"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/hashicorp/consul/api/watch"
	"github.com/hashicorp/go-hclog"
)

// wakeLimit is how soon after a registration a blocking query must answer: the
// issue's promise of push-style updates, on one agent and across gossiping agents.
const wakeLimit = time.Second

// watchEvent is one call of a watch plan's handler.
type watchEvent struct {
	at     time.Time
	index  uint64
	result any
}

// runWatch runs a consul/api watch plan (blocking queries, as `consul watch` and
// every program using the watch package make them) against c until the test ends,
// and returns its handler's calls.
func runWatch(t *testing.T, c *consulapi.Client, params map[string]any) <-chan watchEvent {
	t.Helper()
	plan, err := watch.Parse(maps.Clone(params)) // Parse deletes the keys it reads
	if err != nil {
		t.Fatalf("watch.Parse(%v): %v", params, err)
	}
	events := make(chan watchEvent, 16)
	stopped := make(chan struct{})
	plan.Handler = func(idx uint64, raw any) {
		select {
		case events <- watchEvent{at: time.Now(), index: idx, result: raw}:
		case <-stopped:
		}
	}
	done := make(chan error, 1)
	go func() { done <- plan.RunWithClientAndHclog(c, hclog.NewNullLogger()) }()
	t.Cleanup(func() {
		close(stopped)
		plan.Stop() // cancels the blocking query in flight
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("watch plan %v: %v", params, err)
			}
		case <-time.After(stopTimeout):
			t.Errorf("watch plan %v did not stop within %s", params, stopTimeout)
		}
	})
	return events
}

// nextEvent waits for the next handler call, at most d.
func nextEvent(t *testing.T, events <-chan watchEvent, d time.Duration, what string) watchEvent {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(d):
		t.Fatalf("watch: %s: no handler call within %s", what, d)
		return watchEvent{}
	}
}

func hasWebService(raw any) bool {
	services, ok := raw.(map[string][]string)
	_, has := services["web"]
	return ok && has
}

func hasPassingWeb(raw any) bool {
	entries, ok := raw.([]*consulapi.ServiceEntry)
	return ok && len(entries) == 1 && entries[0].Service.ID == "web-1"
}

// TestWatchWakesOnRegistration registers a service while a watch plan of type
// "services" or "service" blocks, and measures how soon the plan's handler sees it:
// on the agent that registered it, and on another agent of a three-agent pool, which
// learns of it by gossip.
func TestWatchWakesOnRegistration(t *testing.T) {
	plans := []struct {
		name   string
		params map[string]any
		seen   func(raw any) bool
	}{
		{"services", map[string]any{"type": "services"}, hasWebService},
		{"service", map[string]any{"type": "service", "service": "web", "passingonly": true}, hasPassingWeb},
	}
	for _, p := range plans {
		for _, cluster := range []bool{false, true} {
			name := p.name + "/one agent"
			if cluster {
				name = p.name + "/register on alpha, watch on gamma"
			}
			t.Run(name, func(t *testing.T) {
				var registrar, watcher *agent
				if cluster {
					agents := startCluster(t)
					registrar, watcher = agents[0], agents[2]
				} else {
					registrar = startAgent(t, "alpha")
					watcher = registrar
				}
				events := runWatch(t, watcher.client, p.params)
				first := nextEvent(t, events, settleTimeout, "initial answer")
				if p.seen(first.result) {
					t.Fatalf("initial answer already has web: %#v", first.result)
				}
				if first.index == 0 {
					t.Errorf("initial answer has index 0; Consul never sends 0")
				}

				start := time.Now()
				if err := registrar.client.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{
					ID: "web-1", Name: "web", Port: 8080, Address: "127.0.0.2", Tags: []string{"v1"}}); err != nil {
					t.Fatalf("ServiceRegister: %v", err)
				}
				deadline := time.Now().Add(settleTimeout)
				for {
					ev := nextEvent(t, events, time.Until(deadline), "registration of web-1")
					if ev.index <= first.index {
						t.Errorf("handler called with index %d after %d: the index must grow", ev.index, first.index)
					}
					if !p.seen(ev.result) {
						continue // another change woke it first (a peer's node record)
					}
					wake := ev.at.Sub(start)
					t.Logf("watch %s woken %s after the registration", p.name, wake.Round(time.Millisecond))
					if wake > wakeLimit {
						t.Errorf("watch %s woken %s after the registration, want within %s", p.name, wake, wakeLimit)
					}
					return
				}
			})
		}
	}
}

// TestBlockingQueryHolds checks the other half of a blocking query: while nothing
// changes, it holds for its whole wait, then answers with the same index (which
// clients read as "no change"). A server that answered at once would make every
// watch poll in a busy loop.
func TestBlockingQueryHolds(t *testing.T) {
	a := startAgent(t, "alpha")
	if err := a.client.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{ID: "web-1", Name: "web", Port: 8080}); err != nil {
		t.Fatalf("ServiceRegister: %v", err)
	}
	const wait = time.Second
	reads := []struct {
		name string
		read func(q *consulapi.QueryOptions) (*consulapi.QueryMeta, error)
	}{
		{"Catalog().Services", func(q *consulapi.QueryOptions) (*consulapi.QueryMeta, error) {
			_, m, err := a.client.Catalog().Services(q)
			return m, err
		}},
		{"Catalog().Service(web)", func(q *consulapi.QueryOptions) (*consulapi.QueryMeta, error) {
			_, m, err := a.client.Catalog().Service("web", "", q)
			return m, err
		}},
		{"Health().Service(web, passing)", func(q *consulapi.QueryOptions) (*consulapi.QueryMeta, error) {
			_, m, err := a.client.Health().Service("web", "", true, q)
			return m, err
		}},
	}
	for _, r := range reads {
		first, err := r.read(nil)
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		start := time.Now()
		again, err := r.read(&consulapi.QueryOptions{WaitIndex: first.LastIndex, WaitTime: wait})
		took := time.Since(start)
		if err != nil {
			t.Fatalf("%s blocking: %v", r.name, err)
		}
		if took < wait || again.LastIndex != first.LastIndex {
			t.Errorf("%s with index=%d wait=%s answered after %s with index %d; want it to hold the whole wait and answer the same index",
				r.name, first.LastIndex, wait, took.Round(time.Millisecond), again.LastIndex)
		}
	}
}
