package ui

import (
	"bytes"
	"compress/flate"
	"context"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"time"
)

// Live pages: each page, loaded in a browser, opens one server-sent-events stream
// (https://html.spec.whatwg.org/multipage/server-sent-events.html) on its own URL
// with Accept: text/event-stream, and the server sends the page's <main> again,
// rendered, whenever what it shows changed: an event named "main" whose data is the
// HTML.
//
// The streams do not render. Every URL that open streams show has one entry
// (liveCache), and one goroutine (UI.liveLoop) brings every entry up to date when
// what it reads moves: the model (at most once per Config.Coalesce, however fast the
// catalog changes), the sampler for pages with sparklines, and reachability (its
// Version, polled once per Coalesce) for the failing page. It first rebuilds the
// page's data, which is cheap (the model keeps per-service counts and the failing
// list), and executes the template only when the data differ from the last
// rendering's (reflect.DeepEqual: unknown samples are not NaN, see gap): a change to
// a node not on the page, a health filter no service matches or an unchanged
// sparkline costs no rendering and no write. Only then is the new event framed and
// gzipped, once, and the entry's streams woken to write those same bytes. A hundred
// tabs on one URL thus cost one build, at most one rendering and a hundred writes
// per change, and nothing when the change does not show. The browser reconnects by
// itself after an error, and the page works without any of this: it is whole as
// first sent.

// writeSlack bounds each write to a live stream: a tab that stops reading is cut
// off instead of holding a goroutine forever.
const writeSlack = 10 * time.Second

// liveCache holds an entry per URL that open streams show.
type liveCache struct {
	mu      sync.Mutex
	entries map[string]*liveEntry
}

// liveEntry is one URL's live page: its last rendering, framed as an SSE event.
type liveEntry struct {
	p     page
	req   *http.Request // the first stream's request, detached: what the page is built from
	users int           // streams showing this URL; liveCache.mu

	mu      sync.Mutex
	built   bool          // data, event and the versions are set
	at      versions      // what the data was built at
	data    any           // the page's data at the last rendering
	status  int           // and its status
	event   []byte        // the whole SSE event; never modified once set (streams write it)
	gz      []byte        // event deflated on its own, for gzip streams (deflateChunk)
	seq     uint64        // moves with event
	changed chan struct{} // closed when event moves
	scratch bytes.Buffer  // the template's output, before framing
}

// versions are the versions of what pages read.
type versions struct {
	model, samp, reach uint64
}

// of keeps the versions that page p reads.
func (v versions) of(p page) versions {
	if !p.sampled {
		v.samp = 0
	}
	if !p.reach {
		v.reach = 0
	}
	return v
}

func newLiveCache() *liveCache { return &liveCache{entries: map[string]*liveEntry{}} }

// join returns the entry of key, counting one more stream on it.
func (c *liveCache) join(key string, p page, r *http.Request) *liveEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	if e == nil {
		e = &liveEntry{p: p, req: r.Clone(context.Background()), changed: make(chan struct{})}
		c.entries[key] = e
	}
	e.users++
	return e
}

// leave counts one stream less on key, forgetting it with the last.
func (c *liveCache) leave(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[key]; e != nil {
		if e.users--; e.users == 0 {
			delete(c.entries, key)
		}
	}
}

// all returns the entries now open.
func (c *liveCache) all(dst []*liveEntry) []*liveEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		dst = append(dst, e)
	}
	return dst
}

// Streams returns how many live streams are open, for tests and benchmarks.
func (u *UI) Streams() int {
	u.live.mu.Lock()
	defer u.live.mu.Unlock()
	n := 0
	for _, e := range u.live.entries {
		n += e.users
	}
	return n
}

// Renders returns how many times live pages were rendered (templates executed),
// for tests and benchmarks.
func (u *UI) Renders() uint64 { return u.renders.Load() }

// versions returns the current versions of what pages read.
func (u *UI) versions() versions {
	v := versions{}
	v.model, _ = u.model.wait()
	v.samp, _ = u.samp.wait()
	if u.cfg.Reachability != nil {
		v.reach = u.cfg.Reachability.Version()
	}
	return v
}

// update brings the entry up to date with versions v: it rebuilds the page's data
// if what the page reads moved, and renders and frames it if the data differ.
func (u *UI) update(e *liveEntry, v versions) {
	v = v.of(e.p)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.built && e.at == v {
		return
	}
	e.at = v
	now := u.cfg.Now()
	data, status := e.p.build(u, e.req, now)
	if e.built && status == e.status && reflect.DeepEqual(data, e.data) {
		return
	}
	e.scratch.Reset()
	if err := u.execute(&e.scratch, e.p, e.req, "main", now, data); err != nil {
		return // logged; the streams keep the last good rendering
	}
	u.renders.Add(1)
	e.built, e.data, e.status = true, data, status
	e.event = frame("main", e.scratch.Bytes())
	e.gz = deflateChunk(e.event)
	e.seq++
	close(e.changed)
	e.changed = make(chan struct{})
}

// current returns the entry's event (deflated with gz), its sequence number and a
// channel closed when it next moves, rendering it first if no stream of this URL
// did yet.
func (u *UI) current(e *liveEntry, gz bool) ([]byte, uint64, <-chan struct{}) {
	e.mu.Lock()
	built := e.built
	e.mu.Unlock()
	if !built {
		u.update(e, u.versions())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if gz {
		return e.gz, e.seq, e.changed
	}
	return e.event, e.seq, e.changed
}

// liveLoop keeps every open entry up to date: it runs when the model or the sampler
// moves, and once per Coalesce to poll reachability's version.
func (u *UI) liveLoop() {
	var poll <-chan time.Time
	if u.cfg.Reachability != nil {
		t := time.NewTicker(u.cfg.Coalesce)
		defer t.Stop()
		poll = t.C
	}
	var entries []*liveEntry
	for {
		mv, mch := u.model.wait()
		sv, sch := u.samp.wait()
		v := versions{model: mv, samp: sv}
		if u.cfg.Reachability != nil {
			v.reach = u.cfg.Reachability.Version()
		}
		entries = u.live.all(entries[:0])
		for _, e := range entries {
			u.update(e, v)
		}
		clear(entries) // hold no entry past its streams
		select {
		case <-mch:
		case <-sch:
		case <-poll:
		case <-u.ctx.Done():
			return
		}
	}
}

// frame encodes one SSE event: each line of data on its own "data:" line.
func frame(name string, data []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(data) + len(data)/40 + 32)
	b.WriteString("event: " + name + "\n")
	for line := range bytes.Lines(data) {
		b.WriteString("data: ")
		b.Write(bytes.TrimRight(line, "\r\n"))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// Streams to clients that take gzip (browsers do) are gzipped without a compressor
// per stream: each event is deflated once, on its own (a fresh compressor, ended
// by a sync flush, so it refers to nothing before it and ends on a byte boundary),
// and those chunks, written one after another behind one gzip header, are a valid
// deflate stream that the client inflates as it comes. A stream never ends
// normally, so the gzip trailer (CRC and length) is never due. Every tab of a URL
// writes the same compressed bytes: about a seventh of the event's.

// gzipHeader starts a gzip member (RFC 1952 §2.3): deflate, no name, no time, OS
// unknown.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}

// The stream's fixed messages: the retry hint (reconnect after a second, not the
// browser's default three) and the heartbeat, plain and deflated.
var (
	retryMsg, heartbeatMsg     = []byte("retry: 1000\n\n"), []byte(": heartbeat\n\n")
	retryMsgGz, heartbeatMsgGz = deflateChunk(retryMsg), deflateChunk(heartbeatMsg)
)

// flateWriters recycles compressors for deflateChunk.
var flateWriters = sync.Pool{New: func() any {
	fw, _ := flate.NewWriter(nil, flate.BestSpeed) // a valid level
	return fw
}}

// deflateChunk deflates b on its own and ends with a sync flush (see above).
func deflateChunk(b []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b)/4 + 64)
	fw := flateWriters.Get().(*flate.Writer)
	fw.Reset(&buf)
	_, _ = fw.Write(b) // to memory
	_ = fw.Flush()
	flateWriters.Put(fw)
	return buf.Bytes()
}

// stream serves a page's live stream until the client goes or the UI closes.
func (u *UI) stream(w http.ResponseWriter, r *http.Request, p page) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	h.Add("Vary", "Accept-Encoding")
	gz := acceptsGzip(r)
	retry, beat := retryMsg, heartbeatMsg
	if gz {
		h.Set("Content-Encoding", "gzip")
		retry, beat = append(slices.Clip(gzipHeader), retryMsgGz...), heartbeatMsgGz
	}
	w.WriteHeader(http.StatusOK)
	send := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeSlack)) // unsupported by some writers (tests)
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(retry) {
		return
	}
	key := r.Host + r.URL.RequestURI()
	entry := u.live.join(key, p, r)
	defer u.live.leave(key)
	heartbeat := time.NewTimer(u.cfg.Heartbeat)
	defer heartbeat.Stop()
	var sent uint64
	for {
		ev, seq, changed := u.current(entry, gz)
		if seq != sent && ev != nil {
			if !send(ev) {
				return
			}
			sent = seq
			heartbeat.Reset(u.cfg.Heartbeat)
		}
		select {
		case <-changed:
		case <-heartbeat.C:
			if !send(beat) {
				return
			}
			heartbeat.Reset(u.cfg.Heartbeat)
		case <-r.Context().Done():
			return
		case <-u.ctx.Done():
			return
		}
	}
}
