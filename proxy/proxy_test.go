package proxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/internal/testkit"
	"github.com/rumor-sd/rumor/proxy"
)

// backendServer is a TCP server that greets each connection with its name and a
// newline, then echoes until the client half-closes, then half-closes itself.
type backendServer struct {
	name string
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	open map[net.Conn]struct{}
}

func newBackend(t *testing.T, name string) *backendServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backendServer{name: name, ln: ln, open: map[net.Conn]struct{}{}}
	b.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.open[c] = struct{}{}
			b.mu.Unlock()
			b.wg.Go(func() {
				defer func() {
					b.mu.Lock()
					delete(b.open, c)
					b.mu.Unlock()
					c.Close()
				}()
				if _, err := io.WriteString(c, name+"\n"); err != nil {
					return
				}
				if _, err := io.Copy(c, c); err != nil {
					return
				}
				_ = c.(*net.TCPConn).CloseWrite()
				_, _ = io.Copy(io.Discard, c)
			})
		}
	})
	t.Cleanup(b.close)
	return b
}

func (b *backendServer) port() int { return b.ln.Addr().(*net.TCPAddr).Port }

func (b *backendServer) close() {
	_ = b.ln.Close()
	b.mu.Lock()
	for c := range b.open {
		_ = c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// cluster is a catalog with one writer per node, for publishing instances.
type cluster struct {
	t   *testing.T
	cat *catalog.Catalog
	w   map[string]*catalog.Writer
}

func newCluster(t *testing.T) *cluster {
	cat, _ := catalogtest.New(t, catalog.Config{})
	return &cluster{t: t, cat: cat, w: map[string]*catalog.Writer{}}
}

func (c *cluster) writer(node string) *catalog.Writer {
	w := c.w[node]
	if w == nil {
		w = catalog.NewWriter(node, 1)
		c.w[node] = w
		c.apply(w.PutNode(catalogtest.Node(node, "127.0.0.1")))
	}
	return w
}

func (c *cluster) apply(recs ...catalog.Record) {
	c.t.Helper()
	if _, err := c.cat.Apply(recs...); err != nil {
		c.t.Fatal(err)
	}
}

// add publishes an instance of "web" on node at port, with a passing check.
func (c *cluster) add(node, id string, port int, weight int) {
	w := c.writer(node)
	s := catalogtest.Service(id, "web", port)
	s.Weights.Passing = weight
	c.apply(w.PutService(s), w.PutCheck(catalogtest.Check(id+"-chk", id, catalog.StatusPassing)))
}

func (c *cluster) status(node, id string, st catalog.Status) {
	c.apply(c.writer(node).PutCheck(catalogtest.Check(id+"-chk", id, st)))
}

func (c *cluster) remove(node, id string) {
	w := c.writer(node)
	c.apply(w.Delete(catalog.Key{Kind: catalog.KindService, ID: id}), w.Delete(catalog.Key{Kind: catalog.KindCheck, ID: id + "-chk"}))
}

// forEngines runs test once with each engine this system has.
func forEngines(t *testing.T, test func(t *testing.T, eng proxy.Engine)) {
	for _, eng := range testEngines {
		t.Run(string(eng), func(t *testing.T) { test(t, eng) })
	}
}

func newProxy(t *testing.T, eng proxy.Engine, c *cluster, cfg proxy.Config) (*proxy.Proxy, string) {
	t.Helper()
	testkit.NoLeaks(t)
	cfg.Catalog = c.cat
	cfg.Engine = eng
	cfg.SlowStart = -1
	p, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if err := p.Set([]proxy.Upstream{{Service: "web", LocalBindPort: 0}}); err != nil {
		t.Fatal(err)
	}
	return p, p.Upstreams()[0].Listen
}

// hello connects through the proxy and returns the backend's name, or an error.
func hello(addr string) (string, net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		c.Close()
		return "", nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return strings.TrimSpace(line), c, nil
}

func helloClose(t *testing.T, addr string) string {
	t.Helper()
	name, c, err := hello(addr)
	if err != nil {
		t.Fatalf("connect through the proxy: %v", err)
	}
	c.Close()
	return name
}

func TestForwardAndHalfClose(t *testing.T) {
	forEngines(t, func(t *testing.T, eng proxy.Engine) {
		c := newCluster(t)
		b := newBackend(t, "a")
		c.add("n1", "web-1", b.port(), 1)
		_, addr := newProxy(t, eng, c, proxy.Config{})
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		payload := strings.Repeat("x", 1<<20)
		go func() {
			_, _ = io.WriteString(conn, payload)
			_ = conn.(*net.TCPConn).CloseWrite() // the backend sees EOF only if the proxy forwards it
		}()
		got, err := io.ReadAll(conn)
		if err != nil {
			t.Fatal(err)
		}
		if want := "a\n" + payload; string(got) != want {
			t.Fatalf("got %d bytes, want %d (greeting and echo, then EOF)", len(got), len(want))
		}
	})
}

func TestBalanceWeighted(t *testing.T) {
	forEngines(t, func(t *testing.T, eng proxy.Engine) {
		c := newCluster(t)
		a, b := newBackend(t, "a"), newBackend(t, "b")
		c.add("n1", "web-1", a.port(), 1)
		c.add("n2", "web-2", b.port(), 3)
		_, addr := newProxy(t, eng, c, proxy.Config{})
		// Hold connections open, so least-connections weighted by 1:3 shows.
		count := map[string]int{}
		var conns []net.Conn
		for range 40 {
			name, conn, err := hello(addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, conn)
			count[name]++
		}
		for _, conn := range conns {
			conn.Close()
		}
		if count["a"] < 5 || count["a"] > 15 || count["b"] < 25 {
			t.Errorf("40 open connections split %v, want about 10:30 (weights 1:3)", count)
		}
	})
}

func TestChangesTakeEffect(t *testing.T) {
	forEngines(t, func(t *testing.T, eng proxy.Engine) {
		c := newCluster(t)
		a, b := newBackend(t, "a"), newBackend(t, "b")
		c.add("n1", "web-1", a.port(), 1)
		_, addr := newProxy(t, eng, c, proxy.Config{})
		if got := helloClose(t, addr); got != "a" {
			t.Fatalf("got %q, want a", got)
		}
		c.add("n2", "web-2", b.port(), 1)
		c.remove("n1", "web-1")
		testkit.Eventually(t, 5*time.Second, "the proxy to use the new instance only", func() bool {
			return helloClose(t, addr) == "b"
		})
		for range 20 {
			if got := helloClose(t, addr); got != "b" {
				t.Fatalf("after the change got %q, want b", got)
			}
		}
		c.status("n2", "web-2", catalog.StatusCritical)
		testkit.Eventually(t, 5*time.Second, "a critical instance to get nothing", func() bool {
			_, conn, err := hello(addr)
			if err == nil {
				conn.Close()
			}
			return err != nil
		})
	})
}

func TestEjection(t *testing.T) {
	forEngines(t, func(t *testing.T, eng proxy.Engine) {
		c := newCluster(t)
		a := newBackend(t, "a")
		b := newBackend(t, "b")
		dead := newBackend(t, "dead")
		deadPort := dead.port()
		dead.close() // connection refused from now on
		c.add("n1", "web-1", a.port(), 1)
		c.add("n2", "web-2", b.port(), 1)
		c.add("n3", "web-3", deadPort, 1)
		p, addr := newProxy(t, eng, c, proxy.Config{EjectAfter: 3, BaseEjection: time.Hour})
		for i := range 30 {
			if got := helloClose(t, addr); got != "a" && got != "b" {
				t.Fatalf("connection %d: got %q", i, got)
			}
		}
		var ejected bool
		for _, in := range p.Upstreams()[0].Instances {
			if in.ServiceID == "web-3" {
				ejected = in.Ejections == 1 && !in.EjectedUntil.IsZero()
			}
		}
		if !ejected {
			t.Errorf("the refusing instance is not ejected: %+v", p.Upstreams()[0].Instances)
		}
	})
}

// Never more than half ejected: with every instance refusing, one stays in.
func TestPanicThreshold(t *testing.T) {
	forEngines(t, func(t *testing.T, eng proxy.Engine) {
		c := newCluster(t)
		for i := range 2 {
			d := newBackend(t, "dead")
			port := d.port()
			d.close()
			c.add("n"+strconv.Itoa(i), "web-"+strconv.Itoa(i), port, 1)
		}
		p, addr := newProxy(t, eng, c, proxy.Config{EjectAfter: 1, BaseEjection: time.Hour})
		for range 10 {
			if _, _, err := hello(addr); err == nil {
				t.Fatal("a connection to refusing instances succeeded")
			}
		}
		out := 0
		for _, in := range p.Upstreams()[0].Instances {
			if !in.EjectedUntil.IsZero() {
				out++
			}
		}
		if out != 1 {
			t.Errorf("%d of 2 instances ejected, want 1 (never more than half)", out)
		}
	})
}

func TestDrainClosesAfterTimeout(t *testing.T) {
	forEngines(t, func(t *testing.T, eng proxy.Engine) {
		c := newCluster(t)
		a := newBackend(t, "a")
		c.add("n1", "web-1", a.port(), 1)
		_, addr := newProxy(t, eng, c, proxy.Config{DrainTimeout: 200 * time.Millisecond})
		_, conn, err := hello(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c.status("n1", "web-1", catalog.StatusMaintenance)
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		if err == nil || errors.Is(err, io.ErrNoProgress) {
			t.Fatalf("read on a drained connection: %v, want it closed", err)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the drained connection was not closed within 10s")
		}
	})
}

func TestSetValidates(t *testing.T) {
	forEngines(t, func(t *testing.T, eng proxy.Engine) {
		c := newCluster(t)
		p, _ := newProxy(t, eng, c, proxy.Config{})
		for _, tt := range []struct {
			name string
			ups  []proxy.Upstream
			want string
		}{
			{"no service", []proxy.Upstream{{LocalBindPort: 1}}, "service: required"},
			{"bad address", []proxy.Upstream{{Service: "web", LocalBindAddress: "nope", LocalBindPort: 1}}, "local_bind_address"},
			{"bad port", []proxy.Upstream{{Service: "web", LocalBindPort: 70000}}, "local_bind_port"},
			{"same address", []proxy.Upstream{{Service: "web", LocalBindPort: 9}, {Service: "db", LocalBindPort: 9}}, "already the address"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				err := p.Set(tt.ups)
				if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, catalog.ErrInvalid) {
					t.Fatalf("Set: %v, want an ErrInvalid naming %q", err, tt.want)
				}
				if n := len(p.Upstreams()); n != 1 {
					t.Fatalf("a refused Set changed the upstreams: %d", n)
				}
			})
		}
		if err := p.Set(nil); err != nil || len(p.Upstreams()) != 0 {
			t.Fatalf("Set(nil): %v, %d upstreams", err, len(p.Upstreams()))
		}
	})
}

func TestParseUpstream(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want proxy.Upstream
		err  string
	}{
		{"web=9001", proxy.Upstream{Service: "web", LocalBindPort: 9001}, ""},
		{"web=127.0.0.2:9001", proxy.Upstream{Service: "web", LocalBindAddress: "127.0.0.2", LocalBindPort: 9001}, ""},
		{"web:v2=[::1]:9001", proxy.Upstream{Service: "web", Tag: "v2", LocalBindAddress: "::1", LocalBindPort: 9001}, ""},
		{"web", proxy.Upstream{}, "want service="},
		{"web=x", proxy.Upstream{}, "port"},
		{"web=host:1", proxy.Upstream{}, "not an IP"},
		{"=1", proxy.Upstream{}, "want service="},
	} {
		got, err := proxy.ParseUpstream(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseUpstream(%q) = %v, want error containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseUpstream(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// No connection fails while instances are added and removed under load: a removed
// instance drains, new connections go to the new set.
func TestNoFailureUnderChurn(t *testing.T) {
	forEngines(t, func(t *testing.T, eng proxy.Engine) {
		c := newCluster(t)
		var bs []*backendServer
		for i := range 3 {
			bs = append(bs, newBackend(t, "b"+strconv.Itoa(i)))
			c.add("n"+strconv.Itoa(i), "web-"+strconv.Itoa(i), bs[i].port(), 1)
		}
		_, addr := newProxy(t, eng, c, proxy.Config{})
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var fails []error
		conns := 0
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					_, conn, err := hello(addr)
					mu.Lock()
					conns++
					if err != nil {
						fails = append(fails, err)
					}
					mu.Unlock()
					if err == nil {
						conn.Close()
					}
				}
			})
		}
		for i := range 300 { // each change removes one instance or adds it back: two stay
			k := i / 2 % 3
			n := strconv.Itoa(k)
			if i%2 == 0 {
				c.remove("n"+n, "web-"+n)
			} else {
				c.add("n"+n, "web-"+n, bs[k].port(), 1)
			}
			time.Sleep(time.Millisecond) // pacing the changes, not synchronising
		}
		close(stop)
		wg.Wait()
		if len(fails) > 0 || conns == 0 {
			t.Fatalf("%d of %d connections failed during 300 changes: %v", len(fails), conns, fails[0])
		}
		t.Logf("%d connections, none failed, during 300 changes", conns)
	})
}

// On a tie (no open connections, equal weights) the nearer instance wins.
func TestNearestOnTies(t *testing.T) {
	forEngines(t, func(t *testing.T, eng proxy.Engine) {
		c := newCluster(t)
		far, near := newBackend(t, "far"), newBackend(t, "near")
		c.add("n1", "web-1", far.port(), 1)
		c.add("n2", "web-2", near.port(), 1)
		p, addr := newProxy(t, eng, c, proxy.Config{RTTs: func() map[string]time.Duration {
			return map[string]time.Duration{"n1": 40 * time.Millisecond, "n2": time.Millisecond}
		}})
		idle := func() bool {
			for _, in := range p.Upstreams()[0].Instances {
				if in.Active != 0 {
					return false
				}
			}
			return true
		}
		for i := range 20 {
			// A tie needs both idle: the previous connection's proxying has ended.
			testkit.Eventually(t, 5*time.Second, "no open connection", idle)
			if got := helloClose(t, addr); got != "near" {
				t.Fatalf("connection %d went to %q, want the nearer instance", i, got)
			}
		}
	})
}

// TestResetForwarded: a client that aborts its connection (a reset) aborts the
// instance's too, rather than closing it normally.
func TestResetForwarded(t *testing.T) {
	forEngines(t, func(t *testing.T, eng proxy.Engine) {
		c := newCluster(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		got := make(chan error, 1)
		go func() {
			s, err := ln.Accept()
			if err != nil {
				got <- err
				return
			}
			defer s.Close()
			_ = s.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(s, "b\n"); err != nil {
				got <- err
				return
			}
			_, err = io.Copy(io.Discard, s)
			got <- err // nil on a normal close
		}()
		c.add("n1", "web-1", ln.Addr().(*net.TCPAddr).Port, 1)
		_, addr := newProxy(t, eng, c, proxy.Config{})
		name, conn, err := hello(addr)
		if err != nil || name != "b" {
			t.Fatalf("hello = %q, %v", name, err)
		}
		_ = conn.(*net.TCPConn).SetLinger(0)
		_ = conn.Close()
		select {
		case err := <-got:
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("the instance's connection ended with %v, want a reset", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the instance's connection still open 10s after the client's reset")
		}
	})
}

// An instance registered by host name is resolved at connect (the event loops hand
// the lookup to a goroutine and take the address back).
func TestInstanceByName(t *testing.T) {
	forEngines(t, func(t *testing.T, eng proxy.Engine) {
		c := newCluster(t)
		b := newBackend(t, "named")
		w := c.writer("n1")
		s := catalogtest.Service("web-1", "web", b.port())
		s.Address = "localhost"
		c.apply(w.PutService(s), w.PutCheck(catalogtest.Check("web-1-chk", "web-1", catalog.StatusPassing)))
		_, addr := newProxy(t, eng, c, proxy.Config{})
		for i := range 3 {
			if got := helloClose(t, addr); got != "named" {
				t.Fatalf("connection %d: %q, want the instance named localhost", i, got)
			}
		}
	})
}
