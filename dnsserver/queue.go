package dnsserver

import "sync"

// queue is a bounded queue of UDP packets with adaptive LIFO: first in, first out while
// it holds at most lifoAbove packets (no overload: every query is answered in order),
// newest first beyond (overload: the queries answered are the fresh ones, whose
// clients still wait, while the stale ones age out). A push onto a full queue drops
// the oldest.
type queue struct {
	mu        sync.Mutex
	cond      sync.Cond
	ring      []packet // ring buffer: oldest at head, newest at head+n-1
	head      int
	n         int
	lifoAbove int
	closed    bool
}

func (q *queue) init(size, lifoAbove int) {
	q.ring = make([]packet, size)
	q.lifoAbove = lifoAbove
	q.cond.L = &q.mu
}

// push adds p; when the queue was full it returns the oldest packet, dropped.
func (q *queue) push(p packet) (old packet, dropped bool) {
	q.mu.Lock()
	if q.n == len(q.ring) {
		old, dropped = q.ring[q.head], true
		q.ring[q.head] = packet{}
		q.head = (q.head + 1) % len(q.ring)
		q.n--
	}
	q.ring[(q.head+q.n)%len(q.ring)] = p
	q.n++
	q.mu.Unlock()
	q.cond.Signal()
	return old, dropped
}

// pop takes a packet, waiting for one: the oldest, or the newest when more than
// lifoAbove wait. backlog says whether more than lifoAbove waited. It returns false
// once the queue is closed.
func (q *queue) pop() (p packet, backlog, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.n == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return packet{}, false, false
	}
	backlog = q.n > q.lifoAbove
	i := q.head
	if backlog {
		i = (q.head + q.n - 1) % len(q.ring)
	} else {
		q.head = (q.head + 1) % len(q.ring)
	}
	p = q.ring[i]
	q.ring[i] = packet{}
	q.n--
	return p, backlog, true
}

// empty reports whether no packet waits.
func (q *queue) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n == 0
}

// backlogged reports whether more than lifoAbove packets wait (overload).
func (q *queue) backlogged() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n > q.lifoAbove
}

// close wakes every worker to return.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}
