package docker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
)

// maxBatch bounds how many events one change handles, so that a burst is
// registered in steps rather than after every container of it was inspected.
const maxBatch = 256

// The events the watcher follows. Any of them makes it inspect the container again
// and register what it finds: the events only say which container to look at, so a
// replayed or duplicated event costs an inspect and nothing else.
var (
	containerActions = []string{"start", "die", "stop", "destroy", "pause", "unpause", "health_status", "rename"}
	networkActions   = []string{"connect", "disconnect"} // a container's addresses changed (internal mode)
)

// stream is an event subscription: a goroutine moves the engine's events into an
// unbounded queue at once, so that the engine never waits on the watcher (Docker
// drops events for a subscriber that falls behind) while the watcher reconciles or
// registers a batch.
type stream struct {
	mu    sync.Mutex
	queue []events.Message
	err   error         // why the stream ended; nil while it runs
	ready chan struct{} // signalled (capacity 1) when the queue or err changed
	stop  func()        // ends the subscription and waits for its goroutine
}

// subscribe starts following the engine's container events from the checkpoint
// less the overlap (from now on the first time).
func (w *Watcher) subscribe(ctx context.Context) (*stream, error) {
	f := make(client.Filters).Add("type", "container").Add("event", containerActions...)
	if w.cfg.Internal { // addresses depend on the networks only in internal mode
		f.Add("type", "network").Add("event", networkActions...)
	}
	opts := client.EventsListOptions{Filters: f}
	if !w.checkpoint.IsZero() {
		since := w.checkpoint.Add(-w.cfg.Overlap)
		opts.Since = fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond())
	}
	ctx, cancel := context.WithCancel(ctx)
	// Events returns once the engine answered; an engine that never does counts as
	// down, like one that refuses.
	slow := time.AfterFunc(callTimeout, cancel)
	res := w.cli.Events(ctx, opts)
	if !slow.Stop() {
		cancel()
		return nil, fmt.Errorf("subscribe to events: no answer within %s", callTimeout)
	}
	if w.checkpoint.IsZero() {
		w.checkpoint = time.Now() // the stream starts about now: a gap later is replayed from here
	}
	s := &stream{ready: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	s.stop = func() { cancel(); wg.Wait() }
	wg.Go(func() {
		for {
			select {
			case m := <-res.Messages:
				s.mu.Lock()
				s.queue = append(s.queue, m)
				s.mu.Unlock()
				s.signal()
			case err, ok := <-res.Err:
				if !ok || err == nil {
					err = io.EOF
				}
				if errors.Is(err, io.EOF) {
					err = errors.New("the engine ended the stream")
				}
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
				s.signal()
				return
			}
		}
	})
	return s, nil
}

func (s *stream) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// take removes up to n queued events, and returns why the stream ended once the
// queue is empty.
func (s *stream) take(n int) ([]events.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := min(n, len(s.queue))
	batch := s.queue[:k:k]
	s.queue = s.queue[k:]
	if len(s.queue) == 0 {
		s.queue = nil
		return batch, s.err
	}
	return batch, nil
}

// pending reports whether events are still queued.
func (s *stream) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) > 0
}

// handle brings the registrations of the containers a batch of events names up to
// date: it moves the checkpoint, and looks at each container once: a container
// whose last event is a fresh die or destroy is known from the event (its exit
// code and labels are attributes), the others are inspected; their services are
// then registered, replaced and deregistered in one change.
func (w *Watcher) handle(ctx context.Context, batch []events.Message) error {
	var ids []string
	last := map[string]events.Message{}
	for _, m := range batch {
		w.events.Add(1)
		t := eventTime(m)
		if t.After(w.checkpoint) {
			w.checkpoint = t
		}
		id := m.Actor.ID
		if m.Type == events.NetworkEventType {
			id = m.Actor.Attributes["container"]
		} else if m.Type != events.ContainerEventType || !follows(string(m.Action)) {
			continue
		}
		if id == "" {
			continue
		}
		if _, ok := last[id]; !ok {
			ids = append(ids, id)
		}
		last[id] = m
	}
	var specs []spec
	var inspect []string
	for _, id := range ids {
		if s, ok := w.exited(last[id]); ok {
			w.cache[id] = s
			specs = append(specs, s)
		} else {
			inspect = append(inspect, id)
		}
	}
	if len(specs) == 0 && len(inspect) == 0 {
		return nil
	}
	found, err := w.inspectAll(ctx, inspect)
	if err != nil {
		return err
	}
	return w.apply(ctx, w.plan(append(specs, found...), w.cfg.Registry.Owned(), false), false)
}

// exited returns the spec of a container that a die or destroy event says is no
// longer running, without inspecting it: Docker emits die while it still tears the
// container down, holding it, so an inspect then waits for the teardown (about
// 150 ms here). Only fresh events count: one from before the last full reconcile
// (replayed by the overlap) may be older than the state that reconcile saw, so it
// is inspected.
func (w *Watcher) exited(m events.Message) (spec, bool) {
	if m.Type != events.ContainerEventType || eventTime(m).Before(w.fresh) {
		return spec{}, false
	}
	attrs := m.Actor.Attributes
	s := spec{id: m.Actor.ID, short: shortID(m.Actor.ID), name: cmp.Or(attrs["name"], shortID(m.Actor.ID))}
	switch m.Action {
	case events.ActionDestroy:
		s.listing = "removed"
		return s, true
	case events.ActionDie:
		code, err := strconv.Atoi(attrs["exitCode"])
		if err != nil {
			return spec{}, false
		}
		s.listing = string(container.StateExited) + "//" + s.name
		s.status, s.output = containerStatus(&container.State{Status: container.StateExited, ExitCode: code})
		// The event's attributes hold the container's labels, rumor.deregister too.
		switch policyOf(attrs) {
		case never:
			s.keep = true
		case onSuccess:
			s.keep = code != 0 && code&128 == 0
		}
		return s, true
	}
	return spec{}, false
}

// eventTime is when the engine says an event happened.
func eventTime(m events.Message) time.Time {
	if m.TimeNano == 0 {
		return time.Unix(m.Time, 0)
	}
	return time.Unix(0, m.TimeNano)
}

// follows reports whether the watcher acts on a container event's action
// ("health_status: healthy" is a health_status).
func follows(action string) bool {
	a, _, _ := strings.Cut(action, ":")
	for _, x := range containerActions {
		if a == x {
			return true
		}
	}
	return false
}
