package dnsserver

import (
	"context"
	"time"

	"github.com/miekg/dns"
)

// forward sends a query outside the zones to the recursors, in its own goroutine
// (bounded by MaxForwards: past it the answer is SERVFAIL at once), and calls reply
// with the first good answer, or with SERVFAIL (m, the prepared reply) when every
// recursor failed or RecursorTimeout passed. The first recursor is asked at once; the
// next after RecursorStagger or as soon as the previous fails.
func (s *Server) forward(req, m *dns.Msg, reply func(*dns.Msg)) {
	m.Rcode = dns.RcodeServerFailure
	select {
	case s.forwards <- struct{}{}:
	default:
		s.metrics.shed.WithLabelValues("forwards").Inc()
		reply(m)
		return
	}
	s.wg.Go(func() {
		defer func() { <-s.forwards }()
		if r := s.exchange(req); r != nil {
			r.Id, r.RecursionAvailable = req.Id, true
			reply(r)
			return
		}
		reply(m)
	})
}

// exchange asks the recursors in turn, overlapping, and returns the first answer
// that is not SERVFAIL or REFUSED, or nil.
func (s *Server) exchange(req *dns.Msg) *dns.Msg {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RecursorTimeout)
	defer cancel()
	q := req.Copy()
	q.Id = dns.Id()
	results := make(chan *dns.Msg, len(s.cfg.Recursors))
	ask := func(addr string) {
		c := &dns.Client{Net: "udp", Timeout: s.cfg.RecursorTimeout}
		r, _, err := c.ExchangeContext(ctx, q, addr)
		if err == nil && r.Truncated {
			c.Net = "tcp"
			r, _, err = c.ExchangeContext(ctx, q, addr)
		}
		if err != nil || r.Rcode == dns.RcodeServerFailure || r.Rcode == dns.RcodeRefused {
			results <- nil
			return
		}
		results <- r
	}
	next, pending := 0, 0
	start := func() {
		if next < len(s.cfg.Recursors) {
			addr := s.cfg.Recursors[next]
			next++
			pending++
			s.wg.Go(func() { ask(addr) })
		}
	}
	start()
	stagger := time.NewTimer(s.cfg.RecursorStagger)
	defer stagger.Stop()
	for pending > 0 {
		select {
		case r := <-results:
			pending--
			if r != nil {
				return r
			}
			start()
		case <-stagger.C:
			start()
			stagger.Reset(s.cfg.RecursorStagger)
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}
