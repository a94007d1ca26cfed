package httpapi

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rumor-sd/rumor/catalog"
)

func TestAnswerKey(t *testing.T) {
	key := func(target string) string {
		k, ok := answerKey(httptest.NewRequest("GET", target, nil))
		if !ok {
			return "(not cached)"
		}
		return k
	}
	same := [][]string{
		{"/v1/health/service/web?passing", "/v1/health/service/web?passing&index=7&wait=5m&stale", "/v1/health/service/web?consistent&passing&cached"},
		{"/v1/health/service/web?tag=a&tag=b", "/v1/health/service/web?tag=a&index=3&tag=b"},
	}
	for _, group := range same {
		for _, target := range group[1:] {
			if got, want := key(target), key(group[0]); got != want {
				t.Errorf("key(%s) = %q, want %q as for %s: blocking and consistency options do not change the answer", target, got, want, group[0])
			}
		}
	}
	differ := []string{
		"/v1/health/service/web", "/v1/health/service/web?passing", "/v1/health/service/web?passing&pretty",
		"/v1/health/service/web?tag=a", "/v1/health/service/web?tag=b", "/v1/health/service/web?node-meta=rack:r1",
		"/v1/catalog/service/web", "/v1/health/service/db",
		"/v1/health/service/web?filter=Service.Port%3D%3D80", "/v1/health/service/web?filter=Service.Port%3D%3D81",
	}
	seen := map[string]string{}
	for _, target := range differ {
		k := key(target)
		if other, dup := seen[k]; dup {
			t.Errorf("%s and %s share the key %q, but their answers differ", target, other, k)
		}
		seen[k] = target
	}
	if got := key("/v1/health/service/web?near=_agent"); got != "(not cached)" {
		t.Errorf("key(?near=_agent) = %q, want no caching: the order follows coordinates, not the index", got)
	}
}

func TestAnswerCacheReusesPerIndex(t *testing.T) {
	var c answerCache
	calls := 0
	enc := func(s string) func() ([]byte, error) {
		return func() ([]byte, error) { calls++; return []byte(s), nil }
	}
	steps := []struct {
		idx       uint64
		fresh     string
		want      string
		wantCalls int
	}{
		{5, "a@5", "a@5", 1},
		{5, "b@5", "a@5", 1}, // same index: the cached encoding
		{6, "c@6", "c@6", 2}, // the topic moved: encode again
		{5, "d@5", "d@5", 3}, // an older index than cached: encoded, not cached
		{6, "e@6", "c@6", 3}, // and the newer entry stays
	}
	for i, s := range steps {
		got, err := c.get("k", s.idx, enc(s.fresh))
		if err != nil || string(got) != s.want || calls != s.wantCalls {
			t.Errorf("step %d: get(k, %d) = %q, %v after %d encodings; want %q after %d", i, s.idx, got, err, calls, s.want, s.wantCalls)
		}
	}

	boom := errors.New("boom")
	if _, err := c.get("bad", 1, func() ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("get with a failing encoder: %v, want boom", err)
	}
	if got, err := c.get("bad", 1, enc("ok")); err != nil || string(got) != "ok" {
		t.Errorf("after a failure, get = %q, %v; want a fresh encoding (errors are not cached)", got, err)
	}
	big := strings.Repeat("x", answerCacheMaxBody+1)
	c.get("big", 1, enc(big))
	before := calls
	c.get("big", 1, enc(big))
	if calls != before+1 {
		t.Errorf("an answer over %d bytes was cached", answerCacheMaxBody)
	}
}

func TestAnswerCacheEncodesOnceForConcurrentRequests(t *testing.T) {
	var c answerCache
	var encodings atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{})
	const waiters = 50
	var wg sync.WaitGroup
	results := make(chan string, waiters+1)
	wg.Go(func() {
		got, _ := c.get("k", 9, func() ([]byte, error) {
			encodings.Add(1)
			close(started)
			<-release
			return []byte("answer"), nil
		})
		results <- string(got)
	})
	<-started // the first request is encoding; the others find it in flight
	for range waiters {
		wg.Go(func() {
			got, _ := c.get("k", 9, func() ([]byte, error) {
				encodings.Add(1)
				return []byte("second encoding"), nil
			})
			results <- string(got)
		})
	}
	close(release)
	wg.Wait()
	close(results)
	for got := range results {
		if got != "answer" {
			t.Errorf("a request got %q, want the one encoding's answer", got)
		}
	}
	if n := encodings.Load(); n != 1 {
		t.Errorf("%d encodings for %d concurrent requests at one index, want 1", n, waiters+1)
	}
}

func TestAnswerCacheStaysWithinBudget(t *testing.T) {
	var c answerCache
	body := strings.Repeat("x", answerCacheMaxBody)
	for i := range 3 * answerCacheBudget / answerCacheMaxBody {
		key := fmt.Sprint("k", i)
		e := c.entry(key, 1, func() ([]byte, error) { return []byte(body), nil })
		if e.err != nil {
			t.Fatal(e.err)
		}
		if i%2 == 0 { // half of them asked for by gzip clients too
			if gz, err := gunzip(c.gzipped(key, e)); err != nil || string(gz) != body {
				t.Fatalf("gzipped answer %d does not decompress to the plain one (%v)", i, err)
			}
		}
		if c.bytes > answerCacheBudget {
			t.Fatalf("after %d answers the cache holds %d bytes, over its budget of %d", i+1, c.bytes, answerCacheBudget)
		}
	}
	total := 0
	for _, e := range c.entries {
		total += len(e.body) + len(e.gz)
	}
	if total != c.bytes {
		t.Errorf("the cache counts %d bytes but holds %d", c.bytes, total)
	}
}

// TestCachedAnswersFollowTheCatalog checks the cache through the handler: a read
// after a change sees the change, and ?pretty gets its own encoding.
func TestCachedAnswersFollowTheCatalog(t *testing.T) {
	f := newFixture(t)
	ids := func(target string) []string {
		rec := f.do(t, "GET", target, "")
		checkReadHeaders(t, rec)
		var out []string
		for _, e := range decode[[]serviceEntry](t, rec) {
			out = append(out, e.Service.ID)
		}
		return out
	}
	before := ids("/v1/health/service/web")
	if again := ids("/v1/health/service/web"); fmt.Sprint(again) != fmt.Sprint(before) {
		t.Fatalf("the same read twice: %v then %v", before, again)
	}
	f.register(t, "web-3", "web")
	after := ids("/v1/health/service/web")
	if len(after) != len(before)+1 {
		t.Errorf("after registering web-3, web = %v (was %v): the cache served a stale answer", after, before)
	}
	rec := f.do(t, "GET", "/v1/catalog/service/web?index=1&wait=1ms", "")
	checkReadHeaders(t, rec)
	if got := decode[[]catalogService](t, rec); len(got) != len(after) {
		t.Errorf("catalog/service/web has %d instances, want %d as health/service/web", len(got), len(after))
	}
	plain := f.do(t, "GET", "/v1/health/service/web", "").Body.String()
	pretty := f.do(t, "GET", "/v1/health/service/web?pretty", "").Body.String()
	if plain == pretty || !strings.Contains(pretty, "\n    ") {
		t.Errorf("?pretty answered %q, want an indented encoding of its own", pretty[:min(len(pretty), 80)])
	}
	if _, err := f.cat.Apply(catalog.NewWriter("n2", 2).PutService(&catalog.Service{ID: "web-9", Name: "web", Port: 1, Weights: catalog.DefaultWeights})); err != nil {
		t.Fatal(err)
	}
	if got := ids("/v1/health/service/web?index=1"); !strings.Contains(fmt.Sprint(got), "web-9") {
		t.Errorf("after a peer's new generation, web = %v, want web-9 in it", got)
	}
}
