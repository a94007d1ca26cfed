package ui_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/internal/testkit"
	"github.com/rumor-sd/rumor/ui"
	"github.com/rumor-sd/rumor/ui/uitest"
)

// The targets, at 10,000 nodes × 10 services (each with a check; the
// services spread over 500 names, as catalog's benchmarks shape them):
//
//	go test ./ui -run '^$' -bench . -benchtime 20x
//
// BenchmarkPages: the services page's first byte ≤ 100 ms; ≤ 60 KB gzipped per page.
// BenchmarkChromium: the services page rendered in Chromium ≤ 300 ms; a change on
// screen ≤ 500 ms after it reaches the catalog.
// BenchmarkTabs: 100 open tabs cost ≤ 20 MB and ≤ 2 % CPU at 10 catalog changes/s.

const benchNodes, benchPerNode = 10_000, 10

// bigUI is a UI over a catalog of benchNodes × benchPerNode, loaded once.
type bigUI struct {
	cat *catalog.Catalog
	ui  *ui.UI
	srv *httptest.Server
	ws  []*catalog.Writer
}

var (
	bigOnce sync.Once
	big     *bigUI
)

func loadBig(b *testing.B) *bigUI {
	b.Helper()
	bigOnce.Do(func() {
		cat, _ := catalogtest.New(b, catalog.Config{})
		big = &bigUI{cat: cat}
		recs := make([]catalog.Record, 0, 1000)
		flush := func() {
			if _, err := cat.Apply(recs...); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
		ag := &fakeAgent{}
		for i := range benchNodes {
			name := fmt.Sprintf("node-%05d", i)
			w := catalog.NewWriter(name, 1)
			big.ws = append(big.ws, w)
			recs = append(recs, w.PutNode(catalogtest.Node(name, fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))))
			for j := range benchPerNode {
				svcName := fmt.Sprintf("svc-%03d", (i*benchPerNode+j)%500)
				s := catalogtest.Service(fmt.Sprintf("%s-%d", svcName, j), svcName, 8000+j, "v1", "primary")
				s.Meta = map[string]string{"version": "1.2.3"}
				recs = append(recs, w.PutService(s), w.PutCheck(catalogtest.Check(s.ID+"-check", s.ID, catalog.StatusPassing)))
			}
			ag.members = append(ag.members, ui.Member{Name: name, RTT: time.Duration(i%50+1) * time.Millisecond})
			if len(recs) >= 1000 {
				flush()
			}
		}
		flush()
		u, err := ui.New(ui.Config{Catalog: cat, Agent: ag})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		u.Start()
		big.ui, big.srv = u, httptest.NewServer(u)
		testkit.Eventually(b, time.Minute, "the UI's first look at the catalog", func() bool {
			resp, err := http.Get(big.srv.URL + "/ui/agent")
			if err != nil {
				return false
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return strings.Contains(string(body), fmt.Sprintf("%d nodes", benchNodes))
		})
		b.Logf("the UI's first look at %d nodes × %d services took %s", benchNodes, benchPerNode, time.Since(start).Round(time.Millisecond))
	})
	return big
}

// get fetches path as a browser does (gzip) and returns the time to the first byte
// and the size on the wire.
func (g *bigUI) get(b *testing.B, path string) (time.Duration, int) {
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+path, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	var first time.Time
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotFirstResponseByte: func() { first = time.Now() }}))
	start := time.Now()
	resp, err := http.DefaultTransport.RoundTrip(req) // no transparent gunzip: count the wire bytes
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK { // pages under 1 KB go uncompressed
		b.Fatalf("%s: status %d", path, resp.StatusCode)
	}
	return first.Sub(start), int(n)
}

// BenchmarkPages serves each page at 10,000 nodes × 10 services: time to first byte
// and gzipped size.
func BenchmarkPages(b *testing.B) {
	g := loadBig(b)
	for _, path := range []string{"/ui/services", "/ui/services?tag=primary&health=passing&page=5", "/ui/", "/ui/services/svc-001",
		"/ui/nodes", "/ui/nodes/node-00042", "/ui/agent"} {
		b.Run(strings.ReplaceAll(path, "/", "_"), func(b *testing.B) {
			b.ReportAllocs()
			var ttfb time.Duration
			size := 0
			for b.Loop() {
				d, n := g.get(b, path)
				ttfb += d
				size = n
			}
			b.ReportMetric(float64(ttfb.Microseconds())/1000/float64(b.N), "ms-first-byte")
			b.ReportMetric(float64(size)/1000, "KB-gzip")
		})
	}
}

// BenchmarkChromium loads the services page in a real Chromium (navigation start to
// the load event), and measures how long a change applied to the catalog takes to be
// on the failing page's screen (the catalog's Apply to the row in the DOM, seen by a
// MutationObserver).
func BenchmarkChromium(b *testing.B) {
	g := loadBig(b)
	br := uitest.Start(b)
	tab := br.Tab(b, 10*time.Minute)
	b.Run("services-page-load", func(b *testing.B) {
		var total time.Duration
		for b.Loop() {
			start := time.Now()
			if err := chromedp.Do(tab, chromedp.Navigate(g.srv.URL+"/ui/services")); err != nil {
				b.Fatal(err)
			}
			total += time.Since(start)
		}
		b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms-load")
		in, err := chromedp.Run(tab, chromedp.Evaluate[float64](`(function(){var t=performance.getEntriesByType("navigation")[0];return t.loadEventEnd-t.startTime})()`))
		if err == nil {
			b.ReportMetric(in, "ms-in-browser")
		}
	})
	b.Run("change-on-screen", func(b *testing.B) {
		if err := chromedp.Do(tab, chromedp.Navigate(g.srv.URL+"/ui/")); err != nil {
			b.Fatal(err)
		}
		if err := waitLive(tab); err != nil {
			b.Fatal(err)
		}
		w := g.ws[4242]
		status := catalog.StatusPassing
		var total, worst time.Duration
		for b.Loop() {
			status = map[catalog.Status]catalog.Status{catalog.StatusPassing: catalog.StatusCritical, catalog.StatusCritical: catalog.StatusPassing}[status]
			want := `document.querySelector('[data-check="node-04242/svc-121-1-check"]') !== null`
			if status == catalog.StatusPassing {
				want = `document.querySelector('[data-check="node-04242/svc-121-1-check"]') === null`
			}
			start := time.Now()
			if _, err := g.cat.Apply(w.PutCheck(catalogtest.Check("svc-121-1-check", "svc-121-1", status))); err != nil {
				b.Fatal(err)
			}
			if _, err := chromedp.Run(tab, chromedp.Poll[bool](want, chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(10*time.Second))); err != nil {
				b.Fatal(err)
			}
			d := time.Since(start)
			total += d
			worst = max(worst, d)
		}
		b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms-to-screen")
		b.ReportMetric(float64(worst.Microseconds())/1000, "ms-worst")
	})
}

// BenchmarkTabs opens 100 live streams (what 100 tabs cost the agent: a browser tab
// is one stream) over five pages while the catalog changes 10 times a second, and
// reports the memory they hold and the CPU they cost: the process's CPU time with
// the streams open minus the same period without, divided by the wall time. The
// readers run in this process too, so both numbers include the client's side: they
// bound the agent's cost from above.
func BenchmarkTabs(b *testing.B) {
	g := loadBig(b)
	const tabs, rate, period = 100, 10, 20 * time.Second
	pages := []string{"/ui/", "/ui/services", "/ui/services?health=critical", "/ui/nodes", "/ui/agent"}
	churn := func(d time.Duration) {
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		end := time.Now().Add(d)
		for i := 0; time.Now().Before(end); i++ {
			<-tick.C
			w := g.ws[(i*7919)%benchNodes]
			st := catalog.StatusPassing
			if i%2 == 0 {
				st = catalog.StatusWarning
			}
			id := fmt.Sprintf("svc-%03d-0", ((i*7919)%benchNodes*benchPerNode)%500)
			if _, err := g.cat.Apply(w.PutCheck(catalogtest.Check(id+"-check", id, st))); err != nil {
				b.Fatal(err)
			}
		}
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	mem := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse + ms.StackInuse
	}
	for b.Loop() {
		c0 := cpu()
		churn(period)
		idle := cpu() - c0
		m0 := mem()
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var mu sync.Mutex
		events := 0
		for i := range tabs {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.srv.URL+pages[i%len(pages)], nil)
			req.Header.Set("Accept", "text/event-stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			wg.Go(func() {
				defer resp.Body.Close()
				sc := bufio.NewScanner(resp.Body)
				sc.Buffer(make([]byte, 64<<10), 1<<20)
				for sc.Scan() {
					if strings.HasPrefix(sc.Text(), "event: main") {
						mu.Lock()
						events++
						mu.Unlock()
					}
				}
			})
		}
		testkit.Eventually(b, time.Minute, "100 streams open", func() bool { return g.ui.Streams() == tabs })
		c1 := cpu()
		churn(period)
		busy := cpu() - c1
		m1 := mem()
		cancel()
		wg.Wait()
		b.ReportMetric(float64(int64(m1)-int64(m0))/(1<<20), "MB-for-100-tabs")
		b.ReportMetric(100*float64(busy-idle)/float64(period), "%CPU-for-100-tabs")
		b.ReportMetric(100*float64(idle)/float64(period), "%CPU-without-tabs")
		b.ReportMetric(float64(events)/period.Seconds()/tabs, "updates/s/tab")
	}
}
