package dnsserver

import "sync"

// queue is a bounded last-in-first-out queue of UDP packets: workers take the newest,
// and a push onto a full queue drops the oldest. Under overload the packets answered
// are the fresh ones, whose clients are still waiting, and the stale ones are shed.
type queue struct {
	mu     sync.Mutex
	cond   sync.Cond
	ring   []packet // ring buffer: oldest at head, newest at head+n-1
	head   int
	n      int
	closed bool
}

func (q *queue) init(size int) {
	q.ring = make([]packet, size)
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

// pop takes the newest packet, waiting for one; false once the queue is closed.
func (q *queue) pop() (packet, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.n == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return packet{}, false
	}
	i := (q.head + q.n - 1) % len(q.ring)
	p := q.ring[i]
	q.ring[i] = packet{}
	q.n--
	return p, true
}

// close wakes every worker to return.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}
