package proxy

import (
	"bufio"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// openFDs maps the process's open file descriptors to what they are.
func openFDs(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	fds := make(map[string]string, len(ents))
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			fds[e.Name()] = target
		}
	}
	return fds
}

// TestLoopsLeaveNothing: Close ends the event loops' threads and closes every file
// descriptor the engine opened — epoll, eventfd, listener, and both sides of a
// connection still open at Close.
func TestLoopsLeaveNothing(t *testing.T) {
	testkit.NoLeaks(t)
	// The backend greets, then holds the connection until the proxy closes it.
	bln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer bln.Close()
	wg.Go(func() {
		for {
			c, err := bln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_, _ = io.WriteString(c, "hi\n")
				_, _ = io.Copy(io.Discard, c)
			})
		}
	})
	cat, _ := catalogtest.New(t, catalog.Config{})
	w := catalog.NewWriter("n1", 1)
	if _, err := cat.Apply(w.PutNode(catalogtest.Node("n1", "127.0.0.1")),
		w.PutService(catalogtest.Service("web-1", "web", bln.Addr().(*net.TCPAddr).Port))); err != nil {
		t.Fatal(err)
	}
	before := openFDs(t)

	p, err := New(Config{Catalog: cat, Engine: EngineEpoll, Loops: 2, SlowStart: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Set([]Upstream{{Service: "web"}}); err != nil {
		t.Fatal(err)
	}
	var tids []int
	for _, lp := range p.eng.(*loops).ls {
		testkit.Eventually(t, 5*time.Second, "the loop to start", func() bool { return lp.tid.Load() != 0 })
		tids = append(tids, int(lp.tid.Load()))
	}
	if len(tids) != 2 {
		t.Fatalf("%d loops, want 2", len(tids))
	}
	var open net.Conn // left open across Close
	for i := range 5 {
		c, err := net.DialTimeout("tcp", p.Upstreams()[0].Listen, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "hi\n" {
			t.Fatalf("connection %d: %q, %v", i, line, err)
		}
		if i == 4 {
			open = c
			break
		}
		_ = c.Close()
	}
	defer open.Close()
	if len(openFDs(t)) <= len(before) {
		t.Fatal("the proxy opened no file descriptor: the test sees nothing")
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// The open connection was closed by the proxy.
	if _, err := open.Read(make([]byte, 1)); err == nil {
		t.Error("a connection open at Close is still open")
	}
	for _, tid := range tids {
		if tid == os.Getpid() {
			continue // the main thread, which a loop hands back rather than ends
		}
		testkit.Eventually(t, 5*time.Second, "loop thread "+strconv.Itoa(tid)+" to end", func() bool {
			_, err := os.Stat("/proc/self/task/" + strconv.Itoa(tid))
			return os.IsNotExist(err)
		})
	}
	_ = open.Close()
	testkit.Eventually(t, 5*time.Second, "every file descriptor of the proxy to close", func() bool {
		for fd, target := range openFDs(t) {
			if before[fd] != target {
				return false
			}
		}
		return true
	})
}
