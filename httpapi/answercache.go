package httpapi

import (
	"net/http"
	"sync"
)

// answerCache keeps the encoded answers of recent reads, keyed by what the client
// asked (path and query) and the index of the catalog topic the answer depends on.
// The catalog promises that a topic's index does not move while its answer stays and
// moves whenever the answer may change, so an entry at the current index is byte for
// byte what encoding again would produce. That saves the query and the JSON
// encoding, which dominate a read's cost (see BenchmarkHealthServicePassing), when
// many clients ask the same question between two changes, and it ends the
// thundering herd after a change: blocking queries woken together by one
// registration wait for one encoding instead of each making its own. The gzip
// compression of an answer is kept next to it, made once by the first request that
// accepts gzip (see gzipped).
//
// Only answers that depend on nothing but the catalog topic and the query go through
// it (not ?near=, whose order follows coordinates that move without the index).
type answerCache struct {
	mu      sync.Mutex
	entries map[string]*cachedAnswer
	bytes   int // sum of the bodies held, plain and gzipped
}

// cachedAnswer is one encoded answer, or one being encoded (ready still open), and
// its gzip compression once a client that accepts gzip asked for it.
type cachedAnswer struct {
	index uint64
	ready chan struct{} // closed once body and err are set
	body  []byte
	err   error

	// gzReady is nil until a request starts compressing body (set under
	// answerCache.mu), and closed once gz is set. gz is written under mu too, so
	// eviction can count it.
	gzReady chan struct{}
	gz      []byte
}

// size is what e counts against the budget. Call with the cache's mu held.
func (e *cachedAnswer) size() int { return len(e.body) + len(e.gz) }

// Bounds of the cache: a held answer is at most answerCacheMaxBody bytes (plain),
// all of them together, plain and gzipped, at most answerCacheBudget. Past the budget, entries are dropped in
// map order (random): the cache is an optimisation, and a dropped answer is
// encoded again on its next request.
const (
	answerCacheBudget  = 32 << 20
	answerCacheMaxBody = 4 << 20
)

// ignoredParams do not change an answer: blocking and consistency options.
var ignoredParams = []string{"index", "wait", "stale", "consistent", "cached"}

// answerKey names what r asks for, leaving out the parameters that do not change
// the answer, in a canonical order. ok is false for requests the cache must not
// serve.
func answerKey(r *http.Request) (key string, ok bool) {
	v := r.URL.Query()
	if _, near := v["near"]; near {
		return "", false
	}
	for _, p := range ignoredParams {
		v.Del(p)
	}
	return r.URL.Path + "?" + v.Encode(), true
}

// get returns the encoded answer to key at index idx: the cached one, the one
// another request is encoding right now, or encode's, which it then caches.
func (c *answerCache) get(key string, idx uint64, encode func() ([]byte, error)) ([]byte, error) {
	e := c.entry(key, idx, encode)
	return e.body, e.err
}

// entry is get's answer as an entry, ready, for gzipped. An answer for an older
// index than the cached one comes in an entry of its own, outside the cache.
func (c *answerCache) entry(key string, idx uint64, encode func() ([]byte, error)) *cachedAnswer {
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]*cachedAnswer{}
	}
	e := c.entries[key]
	switch {
	case e != nil && e.index == idx:
		c.mu.Unlock()
		<-e.ready
		return e
	case e != nil && e.index > idx:
		// A request that read an older index than the cached answer: answer it on its
		// own rather than replace a newer entry.
		c.mu.Unlock()
		own := &cachedAnswer{index: idx, ready: make(chan struct{})}
		own.body, own.err = encode()
		close(own.ready)
		return own
	}
	if e != nil && isReady(e) {
		c.bytes -= e.size()
	}
	e = &cachedAnswer{index: idx, ready: make(chan struct{})}
	c.entries[key] = e
	c.mu.Unlock()

	body, err := encode()
	c.mu.Lock()
	e.body, e.err = body, err
	close(e.ready)
	if c.entries[key] == e {
		if err != nil || len(body) > answerCacheMaxBody {
			delete(c.entries, key)
		} else {
			c.bytes += len(body)
			c.evictLocked(e)
		}
	}
	c.mu.Unlock()
	return e
}

// gzipped returns e's body (e from entry, without error) compressed with gzip:
// compressed by the first request that asks, once, and kept next to the plain body
// while e is key's entry. Requests asking while it is being compressed wait for it.
func (c *answerCache) gzipped(key string, e *cachedAnswer) []byte {
	c.mu.Lock()
	if e.gzReady != nil {
		c.mu.Unlock()
		<-e.gzReady
		return e.gz // written before gzReady closed
	}
	e.gzReady = make(chan struct{})
	c.mu.Unlock()

	gz := gzipBody(e.body)
	c.mu.Lock()
	e.gz = gz
	close(e.gzReady)
	if c.entries[key] == e {
		c.bytes += len(gz)
		c.evictLocked(e)
	}
	c.mu.Unlock()
	return gz
}

// evictLocked drops finished entries other than keep until the cache is within its
// budget.
func (c *answerCache) evictLocked(keep *cachedAnswer) {
	for k, e := range c.entries {
		if c.bytes <= answerCacheBudget {
			return
		}
		if e != keep && isReady(e) {
			c.bytes -= e.size()
			delete(c.entries, k)
		}
	}
}

func isReady(e *cachedAnswer) bool {
	select {
	case <-e.ready:
		return true
	default:
		return false
	}
}
