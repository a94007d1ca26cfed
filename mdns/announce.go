package mdns

import (
	"context"
	"hash/maphash"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// announcer runs the responder (responder.go) on the querier's sockets: its run
// goroutine owns the responder and feeds it the wanted set (from set), the packets
// the querier's readers tap, and its timers.
type announcer struct {
	log     *slog.Logger
	metrics *metrics
	q       *querier
	in      chan packet
	echo    *echoFilter

	mu     sync.Mutex
	latest wanted
	wake   chan struct{} // signalled (never blocking) by set
}

func newAnnouncer(log *slog.Logger, m *metrics, q *querier) *announcer {
	a := &announcer{log: log, metrics: m, q: q, in: make(chan packet, 256), echo: newEchoFilter(), wake: make(chan struct{}, 1)}
	q.tap = a.deliver
	return a
}

// deliver hands a received packet to run, dropping it when run is behind (as the
// network would).
func (a *announcer) deliver(p packet) {
	select {
	case a.in <- p:
	default:
		a.metrics.dropped.Inc()
	}
}

// set replaces the wanted instances; it never blocks (the newest set wins).
func (a *announcer) set(w wanted) {
	a.mu.Lock()
	a.latest = w
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *announcer) current() wanted {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.latest
}

// run publishes until ctx ends, then says goodbye to everything (one packet per
// interface) and returns. The querier's sockets must stay open until it returns.
func (a *announcer) run(ctx context.Context) {
	r := newResponder(a.log, a.metrics, (*announcerSender)(a))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		r.tick(now)
		timer.Reset(max(time.Until(r.next(now)), time.Millisecond))
		select {
		case <-ctx.Done():
			r.shutdown(time.Now())
			return
		case <-a.wake:
			r.set(a.current(), time.Now())
		case p := <-a.in:
			a.handle(r, p)
			for more := true; more; { // what else is waiting, before the timers
				select {
				case p := <-a.in:
					a.handle(r, p)
				default:
					more = false
				}
			}
		case <-timer.C:
		}
	}
}

// handle gives the responder a packet unless it is the echo of one it sent (on any
// interface: an agent with two interfaces on one link hears itself, and that is not
// a conflict).
func (a *announcer) handle(r *responder, p packet) {
	if a.echo.seen(p.data, time.Now()) {
		return
	}
	r.handle(p, time.Now())
}

// announcerSender sends the responder's packets on the querier's sockets, noting
// each in the echo filter.
type announcerSender announcer

func (s *announcerSender) multicast(ifi *net.Interface, b []byte) {
	s.echo.note(b, time.Now())
	s.q.write(ifi, b, s.metrics.responses, s.metrics.responseBytes)
}

func (s *announcerSender) unicast(ifi *net.Interface, to netip.AddrPort, b []byte) {
	s.echo.note(b, time.Now())
	s.q.writeTo(ifi, to, b, s.metrics.responses, s.metrics.responseBytes)
}

// echoFilter remembers the packets the responder sent in the last echoTTL, by hash,
// so that their echoes (multicast loopback, a second interface on the same link) are
// recognised. Only the responder's packets go in: they carry this host's own
// records, so no other host sends the same bytes; a query may be byte-identical to
// another host's and must not be taken for an echo.
type echoFilter struct {
	mu   sync.Mutex
	seed maphash.Seed
	sent map[uint64]time.Time
}

const echoTTL = 10 * time.Second

func newEchoFilter() *echoFilter {
	return &echoFilter{seed: maphash.MakeSeed(), sent: map[uint64]time.Time{}}
}

func (f *echoFilter) note(b []byte, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sent) > 1024 {
		for h, t := range f.sent {
			if now.Sub(t) > echoTTL {
				delete(f.sent, h)
			}
		}
	}
	f.sent[maphash.Bytes(f.seed, b)] = now
}

func (f *echoFilter) seen(b []byte, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.sent[maphash.Bytes(f.seed, b)]
	return ok && now.Sub(t) <= echoTTL
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
