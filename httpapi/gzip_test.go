package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/internal/testkit"
)

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		header []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"gzip"}, true},
		{[]string{"GZip"}, true},
		{[]string{"x-gzip"}, true},
		{[]string{"deflate, gzip, br, zstd"}, true}, // curl --compressed
		{[]string{"gzip;q=0.5"}, true},
		{[]string{"gzip; q=1.0"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip;q=0.000"}, false},
		{[]string{"gzip;q=nonsense"}, false},
		{[]string{"identity"}, false},
		{[]string{"br, deflate"}, false},
		{[]string{"gzipped"}, false},
		{[]string{"*"}, true},
		{[]string{"*;q=0"}, false},
		{[]string{"gzip;q=0, *"}, false}, // gzip named: * does not cover it
		{[]string{"br", "gzip"}, true},   // several header lines
	} {
		h := http.Header{}
		for _, v := range tc.header {
			h.Add("Accept-Encoding", v)
		}
		if got := acceptsGzip(h); got != tc.want {
			t.Errorf("acceptsGzip(Accept-Encoding: %q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

// gzipFixture is a fixture whose web service has enough instances for its health
// answer to exceed gzipMinSize.
func gzipFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	for i := range 20 {
		f.register(t, fmt.Sprint("web-big-", i), "web")
	}
	return f
}

// doEncoded is f.do with an Accept-Encoding header ("" for none).
func (f *fixture) doEncoded(t *testing.T, method, target, acceptEncoding string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), method, target, nil)
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

// checkEncoding checks the headers of a 200 JSON answer: Content-Encoding gzip exactly
// when wantGzip, Vary: Accept-Encoding, and a Content-Length that is the body's.
func checkEncoding(t *testing.T, what string, rec *httptest.ResponseRecorder, wantGzip bool) {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("%s: status %d: %s", what, rec.Code, rec.Body)
	}
	if got := rec.Header().Get("Content-Encoding"); (got == "gzip") != wantGzip || (!wantGzip && got != "") {
		t.Errorf("%s: Content-Encoding %q, want gzip: %v", what, got, wantGzip)
	}
	if got := rec.Header().Values("Vary"); len(got) != 1 || got[0] != "Accept-Encoding" {
		t.Errorf("%s: Vary %q, want [Accept-Encoding]", what, got)
	}
	if got, want := rec.Header().Get("Content-Length"), strconv.Itoa(rec.Body.Len()); got != want {
		t.Errorf("%s: Content-Length %s, want the body's %s", what, got, want)
	}
}

func TestGzipAnswers(t *testing.T) {
	f := gzipFixture(t)
	coords := fakeCoords{"n1": {"n1": 0, "n2": 1}}
	near, err := New(Config{Catalog: f.cat, Agent: f.ag, Coordinates: coords})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, target string
		h            *Handler
	}{
		{"cached health answer", "/v1/health/service/web", f.h},
		{"cached catalog answer", "/v1/catalog/service/web?index=1&wait=1ms", f.h},
		{"cached ?pretty answer", "/v1/health/service/web?pretty", f.h},
		{"uncached ?near answer", "/v1/health/service/web?near=_agent", near},
		{"plain writeJSON answer", "/v1/agent/services", f.h},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fixture{h: tc.h, cat: f.cat, ag: f.ag}
			plain := f.doEncoded(t, "GET", tc.target, "")
			checkEncoding(t, "without Accept-Encoding", plain, false)
			if plain.Body.Len() < gzipMinSize {
				t.Fatalf("the plain answer has %d bytes, want at least %d for this test to mean anything", plain.Body.Len(), gzipMinSize)
			}
			refused := f.doEncoded(t, "GET", tc.target, "gzip;q=0, identity")
			checkEncoding(t, "with gzip refused", refused, false)
			if !bytes.Equal(refused.Body.Bytes(), plain.Body.Bytes()) {
				t.Errorf("with gzip refused the answer differs from the plain one")
			}

			zipped := f.doEncoded(t, "GET", tc.target, "gzip")
			checkEncoding(t, "with Accept-Encoding: gzip", zipped, true)
			got, err := gunzip(zipped.Body.Bytes())
			if err != nil {
				t.Fatalf("the gzip answer does not decompress: %v", err)
			}
			if !bytes.Equal(got, plain.Body.Bytes()) {
				t.Errorf("the gzip answer decompresses to\n%s\nwant the plain answer\n%s", got, plain.Body)
			}
			if zipped.Body.Len() >= plain.Body.Len() {
				t.Errorf("the gzip answer has %d bytes, the plain one %d", zipped.Body.Len(), plain.Body.Len())
			}
			for _, hd := range []string{"Content-Type", "X-Consul-Index", "X-Consul-KnownLeader", "X-Consul-LastContact"} {
				if got, want := zipped.Header().Get(hd), plain.Header().Get(hd); got != want {
					t.Errorf("%s: %q with gzip, %q without", hd, got, want)
				}
			}
		})
	}
}

func TestGzipCachedAnswerIsCompressedOnce(t *testing.T) {
	f := gzipFixture(t)
	const target = "/v1/health/service/web?passing"
	key, _ := answerKey(httptest.NewRequest("GET", target, nil))

	_ = f.doEncoded(t, "GET", target, "")
	e := f.h.answers.entries[key]
	if e == nil || e.gzReady != nil {
		t.Fatalf("after a plain request the entry is %+v, want one without a gzip body (compressed only when asked)", e)
	}
	first := f.doEncoded(t, "GET", target, "gzip")
	second := f.doEncoded(t, "GET", target, "gzip")
	checkEncoding(t, "second gzip request", second, true)
	if !bytes.Equal(first.Body.Bytes(), second.Body.Bytes()) || !bytes.Equal(second.Body.Bytes(), e.gz) {
		t.Errorf("two gzip requests at one index got different bytes, or not the cached ones")
	}
	if f.h.answers.entries[key] != e {
		t.Fatal("the entry was replaced though the index did not move")
	}
	if got, want := f.h.answers.bytes, len(e.body)+len(e.gz); got != want {
		t.Errorf("the cache counts %d bytes, want plain %d + gzip %d", got, len(e.body), len(e.gz))
	}

	// A change moves the index: the next gzip request compresses the new answer.
	f.register(t, "web-new", "web")
	after := f.doEncoded(t, "GET", target+"&index=1", "gzip")
	checkEncoding(t, "gzip request after a change", after, true)
	body, err := gunzip(after.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `"web-new"`) {
		t.Errorf("after registering web-new the gzip answer lacks it: stale compressed answer")
	}
	if e2 := f.h.answers.entries[key]; e2 == e || !bytes.Equal(e2.gz, after.Body.Bytes()) {
		t.Errorf("after a change the cache does not hold the new compressed answer")
	}
}

func TestGzipLeavesSmallAnswersAndErrorsAlone(t *testing.T) {
	f := newFixture(t)
	for _, target := range []string{"/v1/catalog/datacenters", "/v1/health/service/nosuch", "/v1/health/service/nosuch"} {
		small := f.doEncoded(t, "GET", target, "gzip") // the second nosuch comes from the cache
		checkEncoding(t, "small answer "+target, small, false)
		if small.Body.Len() >= gzipMinSize {
			t.Fatalf("the answer to %s has %d bytes; pick a smaller one", target, small.Body.Len())
		}
	}
	for _, target := range []string{"/v1/health/service/web?index=x", "/v1/nope", "/v1/kv/a"} {
		rec := f.doEncoded(t, "GET", target, "gzip")
		if rec.Code < 400 || rec.Header().Get("Content-Encoding") != "" || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
			t.Errorf("GET %s: status %d, Content-Encoding %q, Content-Type %q; want a plain-text error",
				target, rec.Code, rec.Header().Get("Content-Encoding"), rec.Header().Get("Content-Type"))
		}
	}
}

// TestGzipWithGoClient serves the API on a listener and reads it with Go's default
// transport, as consul/api, Prometheus and consul-template do: it asks for gzip,
// decompresses, and gets the plain answer. HEAD gets the GET's headers and no body.
func TestGzipWithGoClient(t *testing.T) {
	f := gzipFixture(t)
	srv := httptest.NewServer(f.h)
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	const target = "/v1/health/service/web?passing"
	want := f.doEncoded(t, "GET", target, "").Body.Bytes()

	resp, err := client.Get(srv.URL + target)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Uncompressed {
		t.Errorf("the transport did not receive a gzip answer (Uncompressed false)")
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Go's client decoded\n%s\nwant\n%s", got, want)
	}
	if resp.Header.Get("X-Consul-Index") == "" {
		t.Error("no X-Consul-Index on the gzip answer")
	}

	// HEAD, asking for gzip as a GET would: the same headers, Content-Length that of
	// the compressed GET, no body.
	zipped := f.doEncoded(t, "GET", target, "gzip")
	req, _ := http.NewRequestWithContext(t.Context(), "HEAD", srv.URL+target, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.Header.Get("Content-Encoding") != "gzip" ||
		resp.Header.Get("Content-Length") != strconv.Itoa(zipped.Body.Len()) {
		t.Errorf("HEAD: status %d, %d body bytes, Content-Encoding %q, Content-Length %q; want 200, none, gzip, %d",
			resp.StatusCode, len(body), resp.Header.Get("Content-Encoding"), resp.Header.Get("Content-Length"), zipped.Body.Len())
	}
}

// TestGzipBlockingQuery checks a blocking query of a gzip client: it waits, then gets
// the new answer compressed, with the new index.
func TestGzipBlockingQuery(t *testing.T) {
	f := gzipFixture(t)
	cc := &countingCatalog{Catalog: f.cat}
	h, err := New(Config{Catalog: cc, Agent: f.ag})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	first := f.doEncoded(t, "GET", "/v1/health/service/web", "gzip")
	checkEncoding(t, "first read", first, true)
	idx, _ := strconv.ParseUint(first.Header().Get("X-Consul-Index"), 10, 64)

	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		req := httptest.NewRequest("GET", fmt.Sprintf("/v1/health/service/web?index=%d&wait=30s", idx), nil)
		req.Header.Set("Accept-Encoding", "gzip")
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		done <- rec
	}()
	testkit.Eventually(t, 5*time.Second, "the blocking query to wait", func() bool { return cc.waiting.Load() == 1 })
	f.register(t, "web-late", "web")
	rec := <-done
	checkEncoding(t, "woken read", rec, true)
	if got, _ := strconv.ParseUint(rec.Header().Get("X-Consul-Index"), 10, 64); got <= idx {
		t.Errorf("woken with X-Consul-Index %d, want > %d", got, idx)
	}
	body, err := gunzip(rec.Body.Bytes())
	if err != nil || !strings.Contains(string(body), `"web-late"`) {
		t.Errorf("woken answer (%v) lacks web-late", err)
	}
}

// TestWatchIsNotCompressed: the /v1/rumor/watch stream is flushed event by event
// and never gzipped, even for a client that accepts gzip (Go's client asks by default).
func TestWatchIsNotCompressed(t *testing.T) {
	f := newFixture(t)
	ws := newWatchServer(t, f.h)
	s := ws.open(t, "?service=web")
	if s.resp.StatusCode != http.StatusOK || s.resp.Uncompressed || s.resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("watch: status %d, Uncompressed %v, Content-Encoding %q; want 200 uncompressed",
			s.resp.StatusCode, s.resp.Uncompressed, s.resp.Header.Get("Content-Encoding"))
	}
	s.next(t, "first event", func(m sseMsg) bool { return m.event != "" })
}

// TestGzipConcurrentRequestsShareOneCompression: gzip clients asking together at one
// index all get the one cached compression (run with -race).
func TestGzipConcurrentRequestsShareOneCompression(t *testing.T) {
	f := gzipFixture(t)
	const target, clients = "/v1/health/service/web", 20
	bodies := make(chan []byte, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			req := httptest.NewRequest("GET", target, nil)
			req.Header.Set("Accept-Encoding", "gzip")
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, req)
			bodies <- rec.Body.Bytes()
		})
	}
	wg.Wait()
	close(bodies)
	key, _ := answerKey(httptest.NewRequest("GET", target, nil))
	e := f.h.answers.entries[key]
	for b := range bodies {
		if !bytes.Equal(b, e.gz) {
			t.Fatalf("a concurrent gzip request got bytes other than the cached compression")
		}
	}
}
