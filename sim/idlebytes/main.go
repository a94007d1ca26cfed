// Command idlebytes breaks idle gossip traffic down by message type. It runs N agents
// in this process on loopback (no root), each registering a few services, waits for
// their retransmits to drain, then counts for a window what every agent's gossip
// transport sends: each UDP packet (decompressed, its compound parts split) by
// memberlist message type and, for user messages, rumor's own type; each TCP stream
// by what opens it (push-pull, a reliable user message). Bytes on the wire are
// estimated as the payload plus 42 bytes per UDP packet (Ethernet, IPv4, UDP) and
// 66 bytes per TCP segment (Ethernet, IPv4, TCP with timestamps) with 10 segments
// per short stream (handshake, data both ways, ACKs, FINs): what sim/netbench counts
// on the bridge, attributed. The bytes of a packet holding several messages are split
// in proportion to their uncompressed sizes.
//
//	go run ./sim/idlebytes --nodes 50 --settle 60s --window 60s
package main

import (
	"bytes"
	"compress/lzw"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/gossip"
)

// Per-frame overheads on the wire, as the bridge counts them.
const (
	udpOverhead        = 14 + 20 + 8
	tcpSegmentOverhead = 14 + 20 + 32
	tcpSegmentsPerConn = 10
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "idlebytes:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("idlebytes", flag.ContinueOnError)
	nodes := fs.Int("nodes", 20, "agents")
	services := fs.Int("services", 10, "services each agent registers")
	settle := fs.Duration("settle", 60*time.Second, "wait after the registrations before counting")
	window := fs.Duration("window", 60*time.Second, "how long to count")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := newCounter()
	dir, err := os.MkdirTemp("", "idlebytes-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var agents []*agent.Agent
	defer func() {
		for _, a := range agents {
			_ = a.Shutdown()
		}
	}()
	for i := range *nodes {
		cfg := agent.DefaultConfig()
		cfg.NodeName = fmt.Sprintf("h%d", i+1)
		cfg.DataDir = fmt.Sprintf("%s/h%d", dir, i+1)
		cfg.BindAddr, cfg.BindPort = "127.0.0.1", 0
		cfg.HTTPAddr = "127.0.0.1:0"
		cfg.Logger = log
		if i > 0 {
			cfg.Join = []string{agents[0].GossipAddr().String()}
		}
		cfg.GossipHook = func(gc *gossip.Config) {
			gc.WrapTransport = func(t memberlist.NodeAwareTransport) (memberlist.NodeAwareTransport, error) {
				return c.wrap(t), nil
			}
		}
		a, err := agent.New(cfg)
		if err != nil {
			return err
		}
		if err := a.Start(ctx); err != nil {
			return fmt.Errorf("start %s: %w", cfg.NodeName, err)
		}
		agents = append(agents, a)
		for j := range *services {
			name := fmt.Sprintf("svc-%d", j)
			if err := a.RegisterService(ctx, definition.Service{ID: name, Name: name, Port: 8000 + j, Tags: []string{"v1"}}); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(os.Stderr, "%d agents started; settling %s\n", *nodes, *settle)
	if err := sleep(ctx, *settle); err != nil {
		return err
	}
	for _, a := range agents {
		if got := len(a.Members()); got != *nodes {
			return fmt.Errorf("%s sees %d members, want %d", a.NodeName(), got, *nodes)
		}
	}
	c.reset()
	fmt.Fprintf(os.Stderr, "counting for %s\n", *window)
	if err := sleep(ctx, *window); err != nil {
		return err
	}
	c.print(os.Stdout, *nodes, *window)
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// stat is what one kind of message cost.
type stat struct {
	msgs    int     // messages (or streams)
	payload int     // bytes before compression
	wire    float64 // estimated bytes on the wire
}

type counter struct {
	mu    sync.Mutex
	stats map[string]*stat
	pkts  int
}

func newCounter() *counter { return &counter{stats: map[string]*stat{}} }

func (c *counter) reset() {
	c.mu.Lock()
	c.stats = map[string]*stat{}
	c.pkts = 0
	c.mu.Unlock()
}

func (c *counter) add(kind string, msgs, payload int, wire float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats[kind]
	if s == nil {
		s = &stat{}
		c.stats[kind] = s
	}
	s.msgs += msgs
	s.payload += payload
	s.wire += wire
}

// packet counts one UDP packet.
func (c *counter) packet(b []byte) {
	c.mu.Lock()
	c.pkts++
	c.mu.Unlock()
	parts := split(b, "udp ")
	total := 0
	for _, p := range parts {
		total += p.size
	}
	wire := float64(len(b) + udpOverhead)
	for _, p := range parts {
		c.add(p.kind, 1, p.size, wire*float64(p.size)/float64(max(total, 1)))
	}
}

// stream counts what we wrote on one TCP stream.
func (c *counter) stream(first []byte, written int) {
	kind := "tcp ?"
	if parts := split(first, "tcp "); len(parts) > 0 {
		kind = parts[0].kind
	}
	c.add(kind, 1, written, float64(written+tcpSegmentsPerConn/2*tcpSegmentOverhead))
}

func (c *counter) print(w io.Writer, n int, window time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kinds := make([]string, 0, len(c.stats))
	var total float64
	for k, s := range c.stats {
		kinds = append(kinds, k)
		total += s.wire
	}
	slices.SortFunc(kinds, func(a, b string) int {
		return int(c.stats[b].wire - c.stats[a].wire)
	})
	per := func(x float64) float64 { return x / float64(n) / window.Seconds() }
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "kind\tmessages/s per agent\tpayload B/s per agent\twire B/s per agent\tshare\t\n")
	for _, k := range kinds {
		s := c.stats[k]
		fmt.Fprintf(tw, "%s\t%.2f\t%.0f\t%.0f\t%.0f %%\t\n", k, per(float64(s.msgs)), per(float64(s.payload)), per(s.wire), 100*s.wire/total)
	}
	fmt.Fprintf(tw, "total (%.2f UDP packets/s per agent)\t\t\t%.0f\t\t\n", per(float64(c.pkts)), per(total))
	tw.Flush()
}

// part is one message inside a packet.
type part struct {
	kind string
	size int
}

var mlTypes = []string{"ping", "indirect-ping", "ack", "suspect", "alive", "dead", "push-pull", "compound",
	"user", "compress", "encrypt", "nack", "crc", "err"}

var userTypes = map[byte]string{1: "records", 2: "digest", 3: "keys", 4: "state", 5: "leave", 6: "keysack",
	7: "keyquery", 8: "keyresponse", 9: "eager", 10: "statehash"}

// split parses a memberlist message into its parts.
func split(b []byte, prefix string) []part {
	if len(b) == 0 {
		return nil
	}
	switch t := b[0]; {
	case t == 244 && len(b) >= 2: // label
		return split(b[min(len(b), 2+int(b[1])):], prefix)
	case t == 12: // crc
		return split(b[min(len(b), 5):], prefix)
	case t == 9: // compress
		raw, err := decompress(b[1:])
		if err != nil {
			return []part{{prefix + "compress (undecoded)", len(b)}}
		}
		return split(raw, prefix)
	case t == 7 && len(b) >= 2: // compound
		n := int(b[1])
		rest := b[2:]
		if len(rest) < 2*n {
			return []part{{prefix + "compound (bad)", len(b)}}
		}
		lens := rest[:2*n]
		rest = rest[2*n:]
		out := []part{{prefix + "compound header", 2 + 2*n}}
		for i := range n {
			l := int(binary.BigEndian.Uint16(lens[2*i:]))
			if l > len(rest) {
				break
			}
			out = append(out, split(rest[:l], prefix)...)
			rest = rest[l:]
		}
		return out
	case t == 8 && len(b) >= 2:
		name := userTypes[b[1]]
		if name == "" {
			name = fmt.Sprint(b[1])
		}
		return []part{{prefix + "user " + name, len(b)}}
	case int(t) < len(mlTypes):
		return []part{{prefix + mlTypes[t], len(b)}}
	default:
		return []part{{prefix + fmt.Sprint(t), len(b)}}
	}
}

// decompress undoes memberlist's compressPayload: a msgpack map {Algo: 0, Buf: lzw}.
func decompress(b []byte) ([]byte, error) {
	i := bytes.Index(b, []byte("Buf"))
	if i < 0 || i+4 > len(b) {
		return nil, fmt.Errorf("no Buf")
	}
	b = b[i+3:]
	var n int
	switch t := b[0]; {
	case t == 0xc4 || t == 0xd9:
		n, b = int(b[1]), b[2:]
	case t == 0xc5 || t == 0xda:
		n, b = int(binary.BigEndian.Uint16(b[1:])), b[3:]
	case t == 0xc6 || t == 0xdb:
		n, b = int(binary.BigEndian.Uint32(b[1:])), b[5:]
	case t&0xe0 == 0xa0:
		n, b = int(t&0x1f), b[1:]
	default:
		return nil, fmt.Errorf("compressed message: Buf of msgpack type %#x", t)
	}
	if n > len(b) {
		return nil, errors.New("compressed message: Buf shorter than its length")
	}
	r := lzw.NewReader(bytes.NewReader(b[:n]), lzw.LSB, 8)
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, 1<<20))
}

// transport counts what memberlist sends through it.
type transport struct {
	memberlist.NodeAwareTransport
	c       *counter
	streams chan net.Conn
	stop    chan struct{}
	once    sync.Once
}

func (c *counter) wrap(t memberlist.NodeAwareTransport) *transport {
	tr := &transport{NodeAwareTransport: t, c: c, streams: make(chan net.Conn), stop: make(chan struct{})}
	go func() {
		for {
			select {
			case <-tr.stop:
				return
			case conn, ok := <-t.StreamCh():
				if !ok {
					return
				}
				select {
				case tr.streams <- &countConn{Conn: conn, c: c}:
				case <-tr.stop:
					conn.Close()
					return
				}
			}
		}
	}()
	return tr
}

func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.c.packet(b)
	return t.NodeAwareTransport.WriteTo(b, addr)
}

func (t *transport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	t.c.packet(b)
	return t.NodeAwareTransport.WriteToAddress(b, addr)
}

func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	conn, err := t.NodeAwareTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countConn{Conn: conn, c: t.c}, nil
}

func (t *transport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	conn, err := t.NodeAwareTransport.DialAddressTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countConn{Conn: conn, c: t.c}, nil
}

func (t *transport) StreamCh() <-chan net.Conn { return t.streams }

func (t *transport) Shutdown() error {
	t.once.Do(func() { close(t.stop) })
	return t.NodeAwareTransport.Shutdown()
}

// countConn counts the bytes written on a stream, reported when it closes.
type countConn struct {
	net.Conn
	c       *counter
	mu      sync.Mutex
	first   []byte
	written int
	closed  bool
}

func (cc *countConn) Write(b []byte) (int, error) {
	cc.mu.Lock()
	if cc.first == nil {
		cc.first = append([]byte(nil), b...)
	}
	cc.written += len(b)
	cc.mu.Unlock()
	return cc.Conn.Write(b)
}

func (cc *countConn) Close() error {
	cc.mu.Lock()
	if !cc.closed {
		cc.closed = true
		cc.c.stream(cc.first, cc.written)
	}
	cc.mu.Unlock()
	return cc.Conn.Close()
}
