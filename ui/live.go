package ui

import (
	"bytes"
	"net/http"
	"sync"
	"time"
)

// Live pages: each page, loaded in a browser, opens one server-sent-events stream
// (https://html.spec.whatwg.org/multipage/server-sent-events.html) on its own URL
// with Accept: text/event-stream, and the server sends the page's <main> again,
// rendered, whenever what it shows may have changed: an event named "main" whose
// data is the HTML. The model moves at most once per Config.Coalesce, so a tab gets
// at most a few updates a second however fast the catalog changes; pages with
// sparklines move with the sampler too. Tabs showing the same URL share one render
// per version (liveCache), so a hundred tabs on the services page cost one render
// and a hundred writes. The browser reconnects by itself after an error, and the page
// works without any of this: it is whole as first sent.

// writeSlack bounds each write to a live stream: a tab that stops reading is cut
// off instead of holding a goroutine forever.
const writeSlack = 10 * time.Second

// liveCache holds the last rendered event of each URL that open streams show.
type liveCache struct {
	mu      sync.Mutex
	entries map[string]*liveEntry
}

type liveEntry struct {
	users  int // streams showing this URL
	mu     sync.Mutex
	mv, sv uint64 // model and sampler versions the event was rendered at
	event  []byte // the whole SSE event, framed
}

func newLiveCache() *liveCache { return &liveCache{entries: map[string]*liveEntry{}} }

// join returns the entry of key, counting one more stream on it.
func (c *liveCache) join(key string) *liveEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	if e == nil {
		e = &liveEntry{}
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

// get returns the event rendered at versions (mv, sv), rendering it if no stream
// of this URL did yet.
func (e *liveEntry) get(mv, sv uint64, render func() []byte) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.event == nil || e.mv != mv || e.sv != sv {
		e.event, e.mv, e.sv = frame("main", render()), mv, sv
	}
	return e.event
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

// stream serves a page's live stream until the client goes or the UI closes.
func (u *UI) stream(w http.ResponseWriter, r *http.Request, p page) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	send := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeSlack)) // unsupported by some writers (tests)
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// The retry hint: reconnect after a second, not the browser's default three.
	if !send([]byte("retry: 1000\n\n")) {
		return
	}
	key := r.Host + r.URL.RequestURI()
	entry := u.live.join(key)
	defer u.live.leave(key)
	heartbeat := time.NewTimer(u.cfg.Heartbeat)
	defer heartbeat.Stop()
	var last []byte
	for {
		mv, mch := u.model.wait()
		var sv uint64
		var sch <-chan struct{} // nil: never, for pages without sparklines
		if p.sampled {
			sv, sch = u.samp.wait()
		}
		ev := entry.get(mv, sv, func() []byte {
			body, _ := u.render(p, r, "main")
			return body
		})
		if !bytes.Equal(ev, last) {
			if !send(ev) {
				return
			}
			last = ev
			heartbeat.Reset(u.cfg.Heartbeat)
		}
		select {
		case <-mch:
		case <-sch:
		case <-heartbeat.C:
			if !send([]byte(": heartbeat\n\n")) {
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
