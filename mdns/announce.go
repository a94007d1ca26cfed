package mdns

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/brutella/dnssd"
	dnssdlog "github.com/brutella/dnssd/log"
)

// quietLibrary turns off dnssd's own logging (it prints to stdout); the adapter logs
// what matters through slog.
var quietLibrary sync.Once

// announcer publishes a set of DNS-SD instances with dnssd's responder (probing and
// renaming on conflict, RFC 6762 §8–9; announcements; goodbyes on removal and on
// stop). Its run goroutine owns the responder; set hands it the wanted set.
type announcer struct {
	log     *slog.Logger
	metrics *metrics

	mu     sync.Mutex
	latest wanted
	gen    uint64        // grows with every set
	wake   chan struct{} // signalled (never blocking) by set
}

type wanted struct {
	ifaces []string
	svcs   map[string]dnssd.Config // by type + "/" + name
}

type handle struct {
	cfg   dnssd.Config
	h     dnssd.ServiceHandle
	added time.Time
}

// announceSpan is how long dnssd keeps announcing a new instance (two announcements a
// second apart, RFC 6762 §8.3). Its announcing goroutine cannot be stopped, so a
// goodbye sent sooner would be undone by the second announcement: removals of
// instances younger than this wait for it.
const announceSpan = 1100 * time.Millisecond

func newAnnouncer(log *slog.Logger, m *metrics) *announcer {
	quietLibrary.Do(func() { dnssdlog.Info.Disable(); dnssdlog.Debug.Disable() })
	return &announcer{log: log, metrics: m, wake: make(chan struct{}, 1)}
}

// set replaces the wanted instances; it never blocks (the newest set wins).
func (a *announcer) set(w wanted) {
	a.mu.Lock()
	a.latest = w
	a.gen++
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// current returns the newest wanted set and its generation.
func (a *announcer) current() (wanted, uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.latest, a.gen
}

// run publishes until ctx ends, then says goodbye to everything and returns once the
// responder has stopped. An error opening the responder is logged and ends run.
func (a *announcer) run(ctx context.Context) {
	resp, err := dnssd.NewResponder()
	if err != nil {
		a.log.Error("mdns: cannot announce", "error", err)
		return
	}
	// dnssd leaks goroutines on contexts that end by deadline: only cancel this one.
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = resp.Respond(rctx)
	}()
	handles := map[string]*handle{}
	for {
		select {
		case <-ctx.Done():
			cancel() // goodbyes for everything still announced
			<-done
			return
		case <-a.wake:
		}
		w, gen := a.current()
		a.reconcile(ctx, resp, handles, w, gen)
	}
}

// reconcile adds, updates and removes instances so that handles matches w (of
// generation gen); it returns early when a newer set arrives, which wakes run again.
func (a *announcer) reconcile(ctx context.Context, resp dnssd.Responder, handles map[string]*handle, w wanted, gen uint64) {
	for k, h := range handles {
		c, ok := w.svcs[k]
		if ok && c.Port == h.cfg.Port && c.Host == h.cfg.Host && slices.Equal(w.ifaces, h.cfg.Ifaces) {
			if !maps.Equal(c.Text, h.cfg.Text) {
				h.h.UpdateText(c.Text, resp)
				h.cfg.Text = c.Text
			}
			continue
		}
		if d := time.Until(h.added.Add(announceSpan)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		resp.Remove(h.h) // sends the goodbye (TTL 0)
		delete(handles, k)
	}
	if len(w.ifaces) == 0 {
		a.metrics.announced.Set(float64(len(handles)))
		return
	}
	keys := slices.Sorted(maps.Keys(w.svcs))
	for _, k := range keys {
		if _, ok := handles[k]; ok {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		// A newer wanted set replaces this one between additions (each probes ~1 s).
		if _, g := a.current(); g != gen {
			return
		}
		c := w.svcs[k]
		c.Ifaces = w.ifaces
		svc, err := dnssd.NewService(c)
		if err != nil {
			a.log.Warn("mdns: cannot announce", "instance", c.Name, "type", c.Type, "error", err)
			continue
		}
		h, err := resp.Add(svc) // probes, renames on conflict, announces
		if err != nil {
			a.log.Warn("mdns: cannot announce", "instance", c.Name, "type", c.Type, "error", err)
			continue
		}
		if got := h.Service().Name; got != c.Name {
			a.log.Info("mdns: instance renamed after a conflict", "instance", c.Name, "now", got, "type", c.Type)
		}
		handles[k] = &handle{cfg: c, h: h, added: time.Now()}
	}
	a.metrics.announced.Set(float64(len(handles)))
}

// hostLabel turns a node name into a .local host label: letters, digits and '-'.
func hostLabel(node string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(node) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if s == "" {
		s = "rumor"
	}
	return clip(s, 63)
}
