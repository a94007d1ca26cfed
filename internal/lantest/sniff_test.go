package lantest

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// sniffer listens to every mDNS packet on a testbed host's eth0 (it joins the group
// on a socket of its own, beside nothing else) and keeps, per sender and record, the
// shortest interval between two multicasts of the record with a TTL, outside probes
// (probes are queries: only responses count) and goodbyes (TTL 0).
type sniffer struct {
	udp  *net.UDPConn
	conn *ipv4.PacketConn
	done chan struct{}

	mu        sync.Mutex
	counting  bool // bytes and packets are counted only while true
	last      map[sniffKey]time.Time
	recent    map[sniffKey][]time.Time // multicasts of a record in the last second
	unstamped int                      // packets without a kernel timestamp
	maxPerSec int
	minGap    time.Duration
	minKey    string
	goodbyes  map[string]int // "src name type" → goodbye packets holding it
	instances map[string]bool
	bytes     int
	packets   int
	queries   int
	responses int
	questions map[string]int
}

type sniffKey struct{ src, rec string }

// sniff starts a sniffer on l's host i; it stops at the test's end.
func (l *lan) sniff(i int) *sniffer {
	l.t.Helper()
	s := &sniffer{done: make(chan struct{}), last: map[sniffKey]time.Time{}, recent: map[sniffKey][]time.Time{}, minGap: time.Hour,
		goodbyes: map[string]int{}, instances: map[string]bool{}, questions: map[string]int{}}
	if err := l.host(i).Do(func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353})
		if err != nil {
			return err
		}
		// Kernel receive timestamps: the intervals measured are the wire's, not the
		// reading goroutine's (it lags behind in bursts on a loaded machine).
		rc, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) }); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("SO_TIMESTAMPNS: %w", serr)
		}
		s.udp = c
		s.conn = ipv4.NewPacketConn(c)
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		return s.conn.JoinGroup(ifi, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251)})
	}); err != nil {
		l.t.Fatalf("sniffer: %v", err)
	}
	go s.read()
	l.t.Cleanup(func() { _ = s.conn.Close(); <-s.done })
	return s
}

func (s *sniffer) read() {
	defer close(s.done)
	buf := make([]byte, 9000)
	oob := make([]byte, 128)
	for {
		n, oobn, _, src, err := s.udp.ReadMsgUDP(buf, oob)
		if err != nil {
			return
		}
		at, ok := kernelTime(oob[:oobn])
		var m dns.Msg
		if m.Unpack(buf[:n]) != nil {
			continue
		}
		s.mu.Lock()
		if !ok {
			at = time.Now()
			s.unstamped++
		}
		s.take(&m, src.IP.String(), n, at)
		s.mu.Unlock()
	}
}

// kernelTime reads the SO_TIMESTAMPNS control message of a received packet.
func kernelTime(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
			ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return time.Unix(ts.Unix()), true
		}
	}
	return time.Time{}, false
}

func (s *sniffer) take(m *dns.Msg, src string, n int, now time.Time) {
	if s.counting {
		s.bytes += n + 42 // UDP, IPv4 and Ethernet headers
		s.packets++
		if m.Response {
			s.responses++
		} else {
			s.queries++
			for _, q := range m.Question {
				s.questions[q.Name+" "+dns.TypeToString[q.Qtype]]++
			}
		}
	}
	if !m.Response {
		return
	}
	inPacket := map[sniffKey]bool{}
	byeInPacket := map[string]bool{}
	for _, rr := range append(m.Answer, m.Extra...) {
		h := rr.Header()
		if ptr, ok := rr.(*dns.PTR); ok && h.Ttl > 0 && strings.HasSuffix(h.Name, "._tcp.local.") {
			s.instances[ptr.Ptr] = true
		}
		rec := strings.ToLower(h.Name) + " " + dns.TypeToString[h.Rrtype] + " " + strings.TrimPrefix(rr.String(), h.String())
		k := sniffKey{src, rec}
		if inPacket[k] {
			continue // the same record twice in one packet (answer and additional)
		}
		inPacket[k] = true
		if h.Ttl == 0 {
			byeInPacket[src+" "+strings.ToLower(h.Name)+" "+dns.TypeToString[h.Rrtype]] = true
		} else {
			if t, ok := s.last[k]; ok && now.Sub(t) < s.minGap {
				s.minGap, s.minKey = now.Sub(t), fmt.Sprintf("%s from %s", rec, src)
			}
			r := append(slices.DeleteFunc(s.recent[k], func(t time.Time) bool { return now.Sub(t) >= time.Second-receiveJitter }), now)
			s.recent[k] = r
			s.maxPerSec = max(s.maxPerSec, len(r))
		}
		s.last[k] = now
	}
	for k := range byeInPacket {
		s.goodbyes[k]++
	}
}

// count starts counting bytes and packets from now on.
func (s *sniffer) count() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counting = true
}

// seen returns how many service instances (under _tcp types) were announced.
func (s *sniffer) seen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.instances)
}

// shortest returns the shortest interval between two multicasts of one record by one
// host, and which record.
func (s *sniffer) shortest() (time.Duration, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.minGap, s.minKey
}

// unstampedCount returns how many packets came without a kernel timestamp.
func (s *sniffer) unstampedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unstamped
}

// perSecond returns the most multicasts of one record by one host seen within one
// second (less receiveJitter).
func (s *sniffer) perSecond() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxPerSec
}

// totals returns what was counted since count: bytes, packets, queries, responses,
// and the five most asked questions.
func (s *sniffer) totals() (bytes, packets, queries, responses int, top []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes, s.packets, s.queries, s.responses, topN(s.questions, 5)
}

// goodbyeCount returns the goodbye packets from src holding name's record of type typ.
func (s *sniffer) goodbyeCount(src, name, typ string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.goodbyes[src+" "+strings.ToLower(name)+" "+typ]
}

// receiveJitter is how much shorter than on the sender an interval between two
// packets may look to the sniffer: it uses the kernel's receive timestamps, so only
// the few hops of the bridge (in softirqs) differ. The responder keeps a full second
// between two multicasts of a record, timed after each send returns.
const receiveJitter = 5 * time.Millisecond

// TestRecordRate: four agents announce five services each on one bridge while a
// browser queries them and services come, change and go; a sniffer on a fifth host
// sees every record multicast at most once per second by each host (RFC 6762 §6;
// probes and goodbyes excepted), and a deregistration's and a shutdown's goodbye each
// in one packet.
func TestRecordRate(t *testing.T) {
	const agents, perAgent = 4, 5
	l := newLAN(t, agents+1)
	sn := l.sniff(agents)
	for i := range agents {
		l.agent(i, fmt.Sprintf("n%d", i+1))
	}
	for i := range agents {
		poll(t, 15*time.Second, "agent up", func() error { _, err := l.members(i); return err })
		for s := range perAgent {
			if _, err := l.do(i, "PUT", "/v1/agent/service/register", fmt.Sprintf(`{"ID": "s%d", "Name": "svc%d", "Port": %d}`, s, s, 8000+s)); err != nil {
				t.Fatal(err)
			}
		}
	}
	poll(t, 20*time.Second, "every instance announced", func() error {
		if n := sn.seen(); n < agents*perAgent {
			return fmt.Errorf("%d of %d instances seen", n, agents*perAgent)
		}
		return nil
	})
	// Queries from a browser on the sniffer's host (it sends no known answers at
	// first), a TXT change, a deregistration and a registration again.
	out, err := l.rumor(agents, "browse", "_svc0._tcp", "--timeout", "3s")
	if err != nil || strings.Count(out, "svc0") < agents {
		t.Errorf("rumor browse _svc0._tcp: %v\n%s", err, out)
	}
	if _, err := l.do(0, "PUT", "/v1/agent/service/register", `{"ID": "s1", "Name": "svc1", "Port": 8001, "Meta": {"v": "2"}}`); err != nil {
		t.Fatal(err)
	}
	if _, err := l.do(1, "PUT", "/v1/agent/service/deregister/s2", ""); err != nil {
		t.Fatal(err)
	}
	src := l.host(1).IP().String()
	poll(t, 5*time.Second, "the goodbye of s2-n2", func() error {
		if sn.goodbyeCount(src, `s2-n2._svc2._tcp.local.`, "SRV") == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	if _, err := l.do(1, "PUT", "/v1/agent/service/register", `{"ID": "s2", "Name": "svc2", "Port": 8002}`); err != nil {
		t.Fatal(err)
	}
	out, err = l.rumor(agents, "browse", "_svc2._tcp", "--timeout", "3s")
	if err != nil || !strings.Contains(out, "s2-n2") {
		t.Errorf("rumor browse _svc2._tcp after the registration again: %v\n%s", err, out)
	}
	if n := sn.goodbyeCount(src, `s2-n2._svc2._tcp.local.`, "SRV"); n != 1 {
		t.Errorf("%d goodbye packets for s2-n2's SRV, want 1", n)
	}
	// Shutdown: one goodbye packet holds the agent's records, its own instance's and
	// its host's included.
	last := agents - 1
	if err := syscall.Kill(l.agents[last].Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = l.agents[last].Wait(ctx) // exits 0, or with the signal's status
	src = l.host(last).IP().String()
	node := fmt.Sprintf("n%d", last+1)
	for _, rec := range [][2]string{{node + "._rumor._udp.local.", "SRV"}, {node + ".local.", "A"}, {fmt.Sprintf("s0-%s._svc0._tcp.local.", node), "TXT"}} {
		if n := sn.goodbyeCount(src, rec[0], rec[1]); n != 1 {
			t.Errorf("%d goodbye packets at shutdown for %s %s, want 1", n, rec[0], rec[1])
		}
	}
	if n := sn.unstampedCount(); n > 0 {
		t.Errorf("%d packets had no kernel timestamp", n)
	}
	gap, rec := sn.shortest()
	t.Logf("shortest interval between two multicasts of one record by one host: %s (%s)", gap, rec)
	if gap < time.Second-receiveJitter {
		t.Errorf("a record was multicast twice within %s: %s", gap, rec)
	}
}
