package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

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
	networkActions   = []string{"connect", "disconnect"} // the container's addresses changed
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
	f := make(client.Filters).Add("type", "container", "network").
		Add("event", append(append([]string(nil), containerActions...), networkActions...)...)
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
// date: it moves the checkpoint, inspects each container once and registers,
// replaces and deregisters their services in one change.
func (w *Watcher) handle(ctx context.Context, batch []events.Message) error {
	var ids []string
	seen := map[string]bool{}
	for _, m := range batch {
		w.events.Add(1)
		t := time.Unix(0, m.TimeNano)
		if m.TimeNano == 0 {
			t = time.Unix(m.Time, 0)
		}
		if t.After(w.checkpoint) {
			w.checkpoint = t
		}
		id := m.Actor.ID
		if m.Type == events.NetworkEventType {
			id = m.Actor.Attributes["container"]
		} else if m.Type != events.ContainerEventType || !follows(string(m.Action)) {
			continue
		}
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	specs, err := w.inspectAll(ctx, ids)
	if err != nil {
		return err
	}
	return w.apply(ctx, w.plan(specs, w.cfg.Registry.Owned(), false), false)
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
