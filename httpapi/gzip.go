package httpapi

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// JSON answers are sent gzip-compressed to clients that accept it, as Consul's own
// server does (it wraps its mux in NYTimes' gziphandler). Go's http.Transport, which
// consul/api, Prometheus, consul-template and Traefik use, asks for gzip by default
// and decompresses transparently. A health answer of 100 instances is ~110 KB of
// JSON but ~4 KB gzipped, and on loopback moving the plain bytes costs more CPU
// than everything else in the request (BenchmarkHealthServicePassing).
//
// Only 200 JSON answers are compressed (writeBody); errors, the /v1/rumor/watch
// stream and /metrics (promhttp negotiates on its own) are not.

// gzipMinSize is the smallest answer worth compressing: below it the gzip header
// and trailer (18 bytes) and the CPU outweigh what is saved.
const gzipMinSize = 1 << 10

// gzipLevel trades CPU for size. BestSpeed compresses the 110 KB health answer to
// 4.9 KB in ~0.2 ms; DefaultCompression to 3.9 KB in ~0.8 ms (BenchmarkGzipAnswer).
// Cached answers are compressed once per index, but uncached ones and the first
// request after every change pay it, so the faster level wins: the extra 1 KB costs
// far less to send than 0.6 ms of CPU.
const gzipLevel = gzip.BestSpeed

// gzipWriters recycles compressors: a gzip.Writer allocates ~1.2 MB of state at
// BestSpeed, far too much to allocate per answer.
var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzipLevel) // the level is valid
	return w
}}

// gzipBody returns body compressed with gzip.
func gzipBody(body []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(body)/8 + 64)
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(&buf)
	// Writes to a bytes.Buffer do not fail.
	_, _ = zw.Write(body)
	_ = zw.Close()
	gzipWriters.Put(zw)
	return buf.Bytes()
}

// acceptsGzip reports whether a request's Accept-Encoding allows gzip (RFC 9110
// 12.5.3): "gzip" or "x-gzip" with a q-value above 0, or "*" above 0 when gzip is
// not listed. Names are case-insensitive.
func acceptsGzip(h http.Header) bool {
	star := false
	for _, line := range h.Values("Accept-Encoding") {
		for item := range strings.SplitSeq(line, ",") {
			name, params, _ := strings.Cut(item, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			if name != "gzip" && name != "x-gzip" && name != "*" {
				continue
			}
			ok := qualityAboveZero(params)
			if name == "*" {
				star = ok
				continue
			}
			return ok
		}
	}
	return star
}

// qualityAboveZero reads the q parameter of one Accept-Encoding item (after its
// name's ";"): absent means 1, anything unparsable means 0 (refused).
func qualityAboveZero(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && q > 0
		}
	}
	return true
}
