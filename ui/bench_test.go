package ui_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
// reports the memory they hold and the CPU they cost the agent. The readers run in a
// child process (this test binary again, TestTabReaders), so this process's CPU time
// (getrusage RUSAGE_SELF, which leaves children out) is the agent's alone: the UI,
// the catalog and the HTTP server. Each of tabRounds rounds measures tabPeriod of
// changes without the streams, then tabPeriod with them; the CPU cost is the
// difference over the wall time, and the median of the rounds is reported (other
// jobs on the machine make single rounds noisy).
func BenchmarkTabs(b *testing.B) {
	g := loadBig(b)
	const tabs, rate, tabRounds, tabPeriod = 100, 10, 5, 10 * time.Second
	pages := []string{"/ui/", "/ui/services", "/ui/services?health=critical", "/ui/nodes", "/ui/agent"}
	var urls []string
	for i := range tabs {
		urls = append(urls, g.srv.URL+pages[i%len(pages)])
	}
	i := 0
	churn := func(d time.Duration) {
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		end := time.Now().Add(d)
		for ; time.Now().Before(end); i++ {
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
	readers := startTabReaders(b, urls)
	for b.Loop() {
		var cpus, idles, mems, rates []float64
		for range tabRounds {
			c0 := cpu()
			churn(tabPeriod)
			idle := cpu() - c0
			m0 := mem()
			readers.open(b)
			testkit.Eventually(b, time.Minute, "100 streams open", func() bool { return g.ui.Streams() == tabs })
			c1 := cpu()
			churn(tabPeriod)
			busy := cpu() - c1
			m1 := mem()
			events := readers.close(b)
			testkit.Eventually(b, time.Minute, "the streams closed", func() bool { return g.ui.Streams() == 0 })
			cpus = append(cpus, 100*float64(busy-idle)/float64(tabPeriod))
			idles = append(idles, 100*float64(idle)/float64(tabPeriod))
			mems = append(mems, float64(int64(m1)-int64(m0))/(1<<20))
			rates = append(rates, float64(events)/tabPeriod.Seconds()/tabs)
			b.Logf("round: %.2f %%CPU for the tabs, %.2f %%CPU without, %.1f MB, %.2f updates/s/tab", cpus[len(cpus)-1], idles[len(idles)-1], mems[len(mems)-1], rates[len(rates)-1])
		}
		b.ReportMetric(median(mems), "MB-for-100-tabs")
		b.ReportMetric(median(cpus), "%CPU-for-100-tabs")
		b.ReportMetric(median(idles), "%CPU-without-tabs")
		b.ReportMetric(median(rates), "updates/s/tab")
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// tabReaders is a child process holding the benchmark's streams: TestTabReaders.
type tabReaders struct {
	in  io.WriteCloser
	out *bufio.Scanner
}

// startTabReaders starts the child, which opens a stream on each of urls when told
// to and closes them all when told to.
func startTabReaders(b *testing.B, urls []string) *tabReaders {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTabReaders$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), "RUMOR_UI_TAB_READERS="+strings.Join(urls, " "))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		in.Close() // the child exits at the end of its input
		_ = cmd.Wait()
	})
	return &tabReaders{in: in, out: bufio.NewScanner(out)}
}

// say sends the child a command and returns its answer.
func (t *tabReaders) say(b *testing.B, cmd string) string {
	b.Helper()
	if _, err := io.WriteString(t.in, cmd+"\n"); err != nil {
		b.Fatal(err)
	}
	for t.out.Scan() { // skip what the test framework prints
		if reply, ok := strings.CutPrefix(t.out.Text(), "tabs: "); ok {
			return reply
		}
	}
	b.Fatalf("the tab readers ended: %v", t.out.Err())
	return ""
}

func (t *tabReaders) open(b *testing.B) { t.say(b, "open") }

// close ends the streams and returns how many page updates they read.
func (t *tabReaders) close(b *testing.B) int {
	n, err := strconv.Atoi(t.say(b, "close"))
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// TestTabReaders is BenchmarkTabs's child process (it does nothing in a normal test
// run): on "open" it opens a live stream on each URL of $RUMOR_UI_TAB_READERS and
// reads them; on "close" it closes them and prints how many page updates they read.
func TestTabReaders(t *testing.T) {
	list := os.Getenv("RUMOR_UI_TAB_READERS")
	if list == "" {
		t.Skip("BenchmarkTabs's child process")
	}
	var (
		cancel context.CancelFunc
		wg     sync.WaitGroup
		events atomic.Int64
	)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "open":
			var ctx context.Context
			ctx, cancel = context.WithCancel(context.Background())
			events.Store(0)
			for _, u := range strings.Fields(list) {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
				req.Header.Set("Accept", "text/event-stream")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				wg.Go(func() {
					defer resp.Body.Close()
					sc := bufio.NewScanner(resp.Body)
					sc.Buffer(make([]byte, 64<<10), 1<<20)
					for sc.Scan() {
						if strings.HasPrefix(sc.Text(), "event: main") {
							events.Add(1)
						}
					}
				})
			}
			fmt.Println("tabs: open")
		case "close":
			if cancel != nil {
				cancel()
			}
			wg.Wait()
			fmt.Printf("tabs: %d\n", events.Load())
		}
	}
	if cancel != nil {
		cancel()
	}
	wg.Wait()
}
