package ui

import (
	"sync"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// The sampler keeps the short histories the sparklines draw: the agent's HTTP
// request rate and the catalog's change rate every SampleEvery, and each member's
// round-trip time and the count of members per state every fifth sample.

// historyLen is how many samples a sparkline shows.
const historyLen = 60

// gap is an unknown sample: a gap in a sparkline, "—" as a number. It is not NaN,
// so that page data holding one compare equal (reflect.DeepEqual) when unchanged.
const gap = -1.0

// series is a ring of the last historyLen samples; gap marks a gap.
type series struct {
	vals  [historyLen]float32
	n     int // samples taken, at most historyLen counted
	start int
}

func (s *series) push(v float64) {
	if s.n < historyLen {
		s.vals[s.n] = float32(v)
		s.n++
		return
	}
	s.vals[s.start] = float32(v)
	s.start = (s.start + 1) % historyLen
}

// values returns the samples, oldest first.
func (s *series) values() []float64 {
	if s == nil {
		return nil
	}
	out := make([]float64, s.n)
	for i := range s.n {
		out[i] = float64(s.vals[(s.start+i)%historyLen])
	}
	return out
}

// last returns the newest sample, gap if none.
func (s *series) last() float64 {
	if s == nil || s.n == 0 {
		return gap
	}
	return float64(s.vals[(s.start+s.n-1)%historyLen])
}

type sampler struct {
	now func() time.Time

	// Owned by the sampling goroutine.
	lastHTTP  uint64
	lastDNS   uint64
	lastIndex uint64
	lastAt    time.Time

	mu      sync.RWMutex
	version uint64
	changed chan struct{}
	every   time.Duration // between rate samples, as measured
	http    series        // requests per second
	changes series        // catalog index moves per second
	dns     series        // DNS queries per second
	rtt     map[string]*series
	states  [catalog.LivenessLeft + 1]series // members per liveness
}

func newSampler(now func() time.Time) *sampler {
	return &sampler{now: now, changed: make(chan struct{}), rtt: map[string]*series{}}
}

// wait returns the sampler's version and a channel closed when it next moves.
func (s *sampler) wait() (uint64, <-chan struct{}) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.version, s.changed
}

// take records one sample; with members, the members' round trips and states too.
func (s *sampler) take(ag Agent, cat Catalog, members bool) {
	now := s.now()
	c := ag.Counters()
	idx, _ := cat.Watch(catalog.TopicAll)
	var ms []Member
	if members {
		ms = ag.Members()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lastAt.IsZero() {
		secs := now.Sub(s.lastAt).Seconds()
		if secs > 0 {
			s.http.push(float64(c.HTTPRequests-s.lastHTTP) / secs)
			s.changes.push(float64(idx-s.lastIndex) / secs)
			s.dns.push(float64(c.DNSQueries-s.lastDNS) / secs)
			s.every = now.Sub(s.lastAt)
		}
	}
	s.lastHTTP, s.lastIndex, s.lastAt = c.HTTPRequests, idx, now
	s.lastDNS = c.DNSQueries
	if members {
		var counts [catalog.LivenessLeft + 1]int
		present := make(map[string]bool, len(ms))
		for i := range ms {
			mb := &ms[i]
			present[mb.Name] = true
			if int(mb.State) < len(counts) {
				counts[mb.State]++
			}
			r := s.rtt[mb.Name]
			if r == nil {
				r = &series{}
				s.rtt[mb.Name] = r
			}
			if mb.RTT > 0 {
				r.push(float64(mb.RTT) / float64(time.Millisecond))
			} else {
				r.push(gap)
			}
		}
		for name := range s.rtt {
			if !present[name] {
				delete(s.rtt, name)
			}
		}
		for st := range counts {
			s.states[st].push(float64(counts[st]))
		}
	}
	s.version++
	close(s.changed)
	s.changed = make(chan struct{})
}
