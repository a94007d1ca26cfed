//go:build unix

package proxy_test

import (
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/proxy"
)

// A connect that gets no answer fails after ConnectTimeout and counts against the
// instance; the connection goes to another instance. The silent instance is a
// listener whose accept queue is full, so the kernel drops further SYNs.
func TestConnectTimeout(t *testing.T) {
	forEngines(t, func(t *testing.T, eng proxy.Engine) {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(fd)
		if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Listen(fd, 0); err != nil {
			t.Fatal(err)
		}
		sa, err := syscall.Getsockname(fd)
		if err != nil {
			t.Fatal(err)
		}
		silentPort := sa.(*syscall.SockaddrInet4).Port
		// Fill the accept queue (a backlog of 0 holds one), until a dial hangs.
		for full := false; !full; {
			d, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(silentPort), 200*time.Millisecond)
			if err != nil {
				full = true
				continue
			}
			defer d.Close()
		}
		c := newCluster(t)
		good := newBackend(t, "good")
		c.add("n1", "web-1", silentPort, 1)
		c.add("n2", "web-2", good.port(), 1)
		p, addr := newProxy(t, eng, c, proxy.Config{ConnectTimeout: 100 * time.Millisecond, EjectAfter: 100})
		failed := func() int32 {
			for _, in := range p.Upstreams()[0].Instances {
				if in.ServiceID == "web-1" {
					return in.Failures
				}
			}
			return 0
		}
		for i := 0; failed() == 0; i++ {
			if i == 50 {
				t.Fatal("50 connections and not one tried the silent instance")
			}
			if got := helloClose(t, addr); got != "good" {
				t.Fatalf("connection %d: %q, want the answering instance", i, got)
			}
		}
	})
}
