package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-bexpr"

	"github.com/rumor-sd/rumor/catalog"
)

// query holds the parameters shared by read endpoints.
type query struct {
	index  uint64        // ?index: block until the topic's index exceeds it; 0 = no blocking
	wait   time.Duration // ?wait, capped at MaxWait
	filter catalog.Filter
	pretty bool
	// expr is the compiled ?filter=; nil when absent. Endpoints that support it
	// start with readWith, which checks it against their answer's element type.
	expr *bexpr.Evaluator
	// near is the node whose estimated round-trip time orders the answer (?near=;
	// _agent is resolved to this node); "" keeps the endpoint's own order.
	near string
	// gzip is whether the client accepts gzip-compressed answers (Accept-Encoding).
	gzip bool
	// reachable (?reachable) leaves out instances this agent cannot reach.
	reachable bool
}

// badRequest is a client error whose message is sent as is with 400.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error {
	return &badRequest{msg: fmt.Sprintf(format, args...)}
}

// parseQuery reads the common query parameters; unknown ones are ignored, as Consul
// ignores them.
func (h *Handler) parseQuery(r *http.Request) (query, error) {
	v := r.URL.Query()
	q := query{wait: DefaultWait, gzip: acceptsGzip(r.Header)}
	if s := v.Get("index"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return q, badf("invalid index %q: want a decimal number, the X-Consul-Index of a previous answer", s)
		}
		q.index = n
	}
	if s := v.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return q, badf("invalid wait %q: want a duration such as 120000ms or 5m", s)
		}
		q.wait = min(d, MaxWait)
	}
	if vals, ok := v["filter"]; ok && vals[0] != "" {
		e, err := bexpr.CreateEvaluator(vals[0])
		if err != nil {
			return q, badf("invalid filter %q: %v", vals[0], err)
		}
		q.expr = e
	}
	_, q.reachable = v["reachable"]
	if n := v.Get("near"); n != "" {
		q.near = n
		if n == "_agent" {
			q.near = h.ag.Self().Node.Name
		}
	}
	if dc := v.Get("dc"); dc != "" && dc != h.ag.Self().Node.Datacenter {
		return q, &noDatacenter{dc: dc}
	}
	for _, nm := range v["node-meta"] {
		k, val, ok := strings.Cut(nm, ":")
		if !ok || k == "" {
			return q, badf("invalid node-meta %q: want key:value", nm)
		}
		if q.filter.NodeMeta == nil {
			q.filter.NodeMeta = make(map[string]string)
		}
		q.filter.NodeMeta[k] = val
	}
	for _, t := range v["tag"] {
		if t != "" {
			q.filter.Tags = append(q.filter.Tags, t)
		}
	}
	if vals, ok := v["passing"]; ok {
		p, err := parseFlag(vals[0])
		if err != nil {
			return q, badf("invalid passing %q: want true, false, 1 or 0 (or no value)", vals[0])
		}
		q.filter.PassingOnly = p
	}
	if vals, ok := v["pretty"]; ok {
		p, err := parseFlag(vals[0])
		q.pretty = err == nil && p
	}
	return q, nil
}

// parseFlag reads a boolean query parameter: present without a value means true.
func parseFlag(s string) (bool, error) {
	if s == "" {
		return true, nil
	}
	return strconv.ParseBool(s)
}

// noDatacenter is Consul's answer for a ?dc= this agent cannot reach.
type noDatacenter struct{ dc string }

func (e *noDatacenter) Error() string {
	return fmt.Sprintf("No path to datacenter %q: rumor answers only for its own datacenter", e.dc)
}

// block waits, for a blocking query, until t's index exceeds q.index or the wait ends,
// and returns t's index. A client ahead of the catalog (this agent restarted, so its
// indexes began again at 1) gets an answer at once: the index going backwards tells it
// to start over.
func (h *Handler) block(w http.ResponseWriter, r *http.Request, t catalog.Topic, q query) uint64 {
	rc := http.NewResponseController(w)
	if q.index == 0 || q.index > h.cat.TopicIndex(catalog.TopicAll) {
		_ = rc.SetWriteDeadline(time.Now().Add(writeSlack)) // unsupported by some writers (tests)
		return h.cat.TopicIndex(t)
	}
	wait := q.wait + time.Duration(rand.Int64N(int64(q.wait/16)+1))
	_ = rc.SetWriteDeadline(time.Now().Add(wait + writeSlack))
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	idx, _ := h.cat.WaitIndex(ctx, t, q.index) // on timeout: answer with what we have
	return idx
}

// readHeaders sets Consul's headers for a read answered at index idx (≥ 1).
func readHeaders(w http.ResponseWriter, idx uint64) {
	hd := w.Header()
	hd.Set("X-Consul-Index", strconv.FormatUint(max(idx, 1), 10))
	hd.Set("X-Consul-KnownLeader", "true")
	hd.Set("X-Consul-LastContact", "0")
}

// writeJSON writes v as the 200 answer, gzipped if the client accepts it and the
// answer is large enough to gain from it.
func (h *Handler) writeJSON(w http.ResponseWriter, q query, v any) {
	body, err := encodeJSON(v, q.pretty)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if q.gzip && len(body) >= gzipMinSize {
		writeBody(w, gzipBody(body), true)
		return
	}
	writeBody(w, body, false)
}

// encodeError is a failure to encode an answer: the server's fault (500), unlike
// the errors of evaluating a client's query.
type encodeError struct{ err error }

func (e *encodeError) Error() string { return "encode response: " + e.err.Error() }

// encodeJSON encodes an answer as Consul does: no HTML escaping, indented for ?pretty.
func encodeJSON(v any, pretty bool) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if pretty {
		enc.SetIndent("", "    ")
	}
	if err := enc.Encode(v); err != nil {
		return nil, &encodeError{err: err}
	}
	return buf.Bytes(), nil
}

// writeBody writes an encoded JSON answer with status 200; gzipped says body is
// its gzip compression. Every JSON answer carries Vary: Accept-Encoding, since
// the same URL is compressed for some clients and not others (and small answers
// may grow past gzipMinSize).
func writeBody(w http.ResponseWriter, body []byte, gzipped bool) {
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Add("Vary", "Accept-Encoding")
	if gzipped {
		hd.Set("Content-Encoding", "gzip")
	}
	// Stated, so large answers go out in one piece rather than chunked, and a HEAD
	// learns the length its GET would have.
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body) // the client went away: nothing left to tell it
}

// writeCached writes the answer of a read of r at index idx: build's value, encoded,
// or the same request's encoding at the same index from the answer cache. build
// must depend only on the catalog topic whose index idx is and on r's query; its
// errors are the query's fault (a ?filter= that fails on the data) and answered as
// such.
func (h *Handler) writeCached(w http.ResponseWriter, r *http.Request, q query, idx uint64, build func() (any, error)) {
	encode := func() ([]byte, error) {
		v, err := build()
		if err != nil {
			return nil, err
		}
		return encodeJSON(v, q.pretty)
	}
	key, cached := answerKey(r)
	var body []byte
	var err error
	var e *cachedAnswer
	if cached {
		e = h.answers.entry(key, idx, encode)
		body, err = e.body, e.err
	} else {
		body, err = encode()
	}
	if err != nil {
		h.failQuery(w, r, err)
		return
	}
	readHeaders(w, idx)
	switch {
	case !q.gzip || len(body) < gzipMinSize:
		writeBody(w, body, false)
	case cached:
		writeBody(w, h.answers.gzipped(key, e), true)
	default:
		writeBody(w, gzipBody(body), true)
	}
}

// readWith starts a read endpoint: it parses the query and, for a blocking query,
// waits on t. ok is false when it has already answered with an error. sample is a
// zero value of the Consul-shaped struct the answer's elements are, which ?filter=
// is evaluated on: the filter's selectors are checked against it before blocking, so
// a typo is a 400 at once, even when nothing would match. A nil sample means the
// endpoint does not filter, and a ?filter= is a 400 (never silently ignored).
func (h *Handler) readWith(w http.ResponseWriter, r *http.Request, t catalog.Topic, sample any) (q query, idx uint64, ok bool) {
	q, ok = h.query(w, r, sample)
	if !ok {
		return q, 0, false
	}
	return q, h.block(w, r, t, q), true
}

// query parses the query of a read that does not block, checking ?filter= against
// sample as readWith does (nil: the endpoint does not filter, and a ?filter= is a
// 400). ok is false when it has already answered with an error.
func (h *Handler) query(w http.ResponseWriter, r *http.Request, sample any) (q query, ok bool) {
	q, err := h.parseQuery(r)
	if err == nil && q.expr != nil {
		err = checkFilter(q.expr, r.URL.Path, sample)
	}
	if err != nil {
		h.failQuery(w, r, err)
		return q, false
	}
	return q, true
}

// readBody reads a request body of at most MaxBodyBytes, answering 413 beyond it.
// ok is false when it has already answered.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) (body []byte, ok bool) {
	// The server bounds how long a body may take (the agent's boundBodies: a read
	// deadline from the end of the headers); setting a later one here would undo it.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		h.fail(w, r, http.StatusRequestEntityTooLarge, "Request body too large: the limit is %d bytes", tooBig.Limit)
		return nil, false
	case err != nil:
		h.fail(w, r, http.StatusBadRequest, "Request decode failed: read the body: %v", err)
		return nil, false
	}
	return body, true
}
