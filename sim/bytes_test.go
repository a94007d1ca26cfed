package sim

import (
	"bytes"
	"compress/lzw"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// byteCounter classifies what every node sends by memberlist message type (and, for
// memberlist's user messages, by gossip's own type), so the model's byte accounting
// can be compared with tier 1 item by item (-sim.bytes). It counts only while on is
// set: from the moment the measured part of a scenario starts.
type byteCounter struct {
	on atomic.Bool
	mu sync.Mutex
	by map[string]float64 // kind → bytes on the wire (compressed, as memnet counts them)
	n  map[string]int     // kind → messages
}

func newByteCounter() *byteCounter {
	return &byteCounter{by: map[string]float64{}, n: map[string]int{}}
}

// wrap is a gossip.Config.WrapTransport.
func (c *byteCounter) wrap(t memberlist.NodeAwareTransport) (memberlist.NodeAwareTransport, error) {
	return &countingTransport{NodeAwareTransport: t, c: c}, nil
}

// add attributes wire bytes to the parts of a message in proportion to their
// decompressed sizes.
func (c *byteCounter) add(prefix string, wire int, parts []part) {
	if !c.on.Load() || wire == 0 {
		return
	}
	total := 0
	for _, p := range parts {
		total += p.size
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if total == 0 {
		c.by[prefix+"?"] += float64(wire)
		c.n[prefix+"?"]++
		return
	}
	for _, p := range parts {
		c.by[prefix+p.kind] += float64(wire) * float64(p.size) / float64(total)
		c.n[prefix+p.kind]++
	}
}

// table prints bytes per node-second by kind, largest first.
func (c *byteCounter) table(nodeSecs float64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	kinds := make([]string, 0, len(c.by))
	var sum float64
	for k, v := range c.by {
		kinds = append(kinds, k)
		sum += v
	}
	slices.SortFunc(kinds, func(a, b string) int {
		if c.by[a] > c.by[b] {
			return -1
		}
		return 1
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%-28s %10s %10s %8s\n", "kind", "B/s/node", "msgs/s/nd", "B/msg")
	for _, k := range kinds {
		fmt.Fprintf(&b, "%-28s %10.1f %10.3f %8.0f\n", k, c.by[k]/nodeSecs, float64(c.n[k])/nodeSecs, c.by[k]/float64(c.n[k]))
	}
	fmt.Fprintf(&b, "%-28s %10.1f\n", "total", sum/nodeSecs)
	return b.String()
}

// perNodeSec is the bytes by kind per node-second.
func (c *byteCounter) perNodeSec(nodeSecs float64) map[string]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]float64, len(c.by))
	for k, v := range c.by {
		out[k] = v / nodeSecs
	}
	return out
}

type countingTransport struct {
	memberlist.NodeAwareTransport
	c *byteCounter
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	parts := classify(b)
	t.c.add("udp ", len(b), parts)
	if *detail {
		kinds := map[string]bool{}
		for _, p := range parts {
			kinds[p.kind] = true
		}
		if len(kinds) == 1 && (kinds["suspect"] || kinds["dead"] || kinds["alive"]) {
			t.c.add(fmt.Sprintf("packet of %02d member msgs ", len(parts)), len(b), []part{{"", 1}})
		}
	}
	return t.NodeAwareTransport.WriteToAddress(b, a)
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.c.add("udp ", len(b), classify(b))
	return t.NodeAwareTransport.WriteTo(b, addr)
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, d time.Duration) (net.Conn, error) {
	conn, err := t.NodeAwareTransport.DialAddressTimeout(a, d)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, c: t.c}, nil
}

func (t *countingTransport) DialTimeout(addr string, d time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, d)
}

// countingConn keeps what a dialled stream wrote and read (the dialler's message and
// the listener's answer) and classifies both when it closes.
type countingConn struct {
	net.Conn
	c         *byteCounter
	once      sync.Once
	out, in   bytes.Buffer
	outMu     sync.Mutex
	nout, nin int
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.outMu.Lock()
	c.out.Write(b[:n])
	c.nout += n
	c.outMu.Unlock()
	return n, err
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.outMu.Lock()
	c.in.Write(b[:n])
	c.nin += n
	c.outMu.Unlock()
	return n, err
}

func (c *countingConn) Close() error {
	c.once.Do(func() {
		c.outMu.Lock()
		defer c.outMu.Unlock()
		c.c.add("tcp ", c.nout, classifyStream(c.out.Bytes()))
		c.c.add("tcp answer ", c.nin, classifyStream(c.in.Bytes()))
	})
	return c.Conn.Close()
}

var detail = flag.Bool("sim.bytes.detail", false, "with -sim.bytes, split eager messages by their record count and count packets of membership messages by size")

type part struct {
	kind string
	size int
}

// memberlist's message types (net.go).
var mlTypes = map[byte]string{0: "ping", 1: "indirect-ping", 2: "ack", 3: "suspect", 4: "alive", 5: "dead",
	6: "push-pull", 7: "compound", 8: "user", 9: "compress", 10: "encrypt", 11: "nack", 12: "crc", 13: "err"}

// gossip's message types (gossip/wire.go, eager.go).
func userKind(b []byte) string {
	if len(b) == 0 {
		return "user ?"
	}
	switch b[0] {
	case 1:
		return "user records"
	case 2:
		return "user digest"
	case 3:
		return "user keys"
	case 4:
		return "user state"
	case 5:
		return "user leave"
	case 6:
		return "user keysack"
	case 9:
		if *detail {
			if l, n := binary.Uvarint(b[1:]); n > 0 && 1+n+int(l)+1 < len(b) {
				if k, m := binary.Uvarint(b[1+n+int(l)+1:]); m > 0 {
					return fmt.Sprintf("user eager k=%02d", k)
				}
			}
		}
		return "user eager"
	}
	return fmt.Sprintf("user %d", b[0])
}

// classify splits one packet into its messages.
func classify(b []byte) []part {
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case 12: // crc32 header
		if len(b) < 5 {
			return nil
		}
		return classify(b[5:])
	case 9:
		inner, ok := decompress(b[1:])
		if !ok {
			return []part{{"compress ?", len(b)}}
		}
		return classify(inner)
	case 7:
		if len(b) < 2 {
			return nil
		}
		n := int(b[1])
		if len(b) < 2+2*n {
			return nil
		}
		var parts []part
		off := 2 + 2*n
		for i := range n {
			l := int(binary.BigEndian.Uint16(b[2+2*i:]))
			if off+l > len(b) {
				break
			}
			parts = append(parts, classify(b[off:off+l])...)
			off += l
		}
		return parts
	case 8:
		return []part{{userKind(b[1:]), len(b)}}
	}
	if k, ok := mlTypes[b[0]]; ok {
		return []part{{k, len(b)}}
	}
	return []part{{fmt.Sprintf("type %d", b[0]), len(b)}}
}

// classifyStream classifies a stream's bytes by its first message; a push-pull is
// split into its member list and the user (catalog) state.
func classifyStream(b []byte) []part {
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case 9:
		inner, ok := decompress(b[1:])
		if !ok {
			return []part{{"compress ?", len(b)}}
		}
		return classifyStream(inner)
	case 6:
		us := msgpackInt(b, "UserStateLen")
		if us < 0 || us > len(b) {
			return []part{{"push-pull", len(b)}}
		}
		return []part{{"push-pull nodes", len(b) - us}, {"push-pull " + userKind(b[len(b)-us:]), us}}
	}
	return classify(b)
}

// decompress undoes memberlist's compressPayload: msgpack of {Algo, Buf}, LZW.
func decompress(b []byte) ([]byte, bool) {
	i := bytes.Index(b, []byte("\xa3Buf"))
	if i < 0 || i+5 > len(b) {
		return nil, false
	}
	p := b[i+4:]
	var n, h int
	switch c := p[0]; {
	case c >= 0xa0 && c <= 0xbf: // fixstr: go-msgpack writes []byte as raw
		n, h = int(c&0x1f), 1
	case c == 0xc4 || c == 0xd9:
		n, h = int(p[1]), 2
	case c == 0xc5 || c == 0xda:
		n, h = int(binary.BigEndian.Uint16(p[1:])), 3
	case c == 0xc6 || c == 0xdb:
		n, h = int(binary.BigEndian.Uint32(p[1:])), 5
	default:
		return nil, false
	}
	if h+n > len(p) {
		return nil, false
	}
	r := lzw.NewReader(bytes.NewReader(p[h:h+n]), lzw.LSB, 8)
	defer r.Close()
	out, err := io.ReadAll(r)
	return out, err == nil
}

// msgpackInt finds key in a msgpack map and reads its non-negative integer value.
func msgpackInt(b []byte, key string) int {
	k := append([]byte{0xa0 | byte(len(key))}, key...)
	i := bytes.Index(b, k)
	if i < 0 || i+len(k) >= len(b) {
		return -1
	}
	p := b[i+len(k):]
	switch c := p[0]; {
	case c < 0x80:
		return int(c)
	case c == 0xcc || c == 0xd0:
		return int(p[1])
	case (c == 0xcd || c == 0xd1) && len(p) >= 3:
		return int(binary.BigEndian.Uint16(p[1:]))
	case (c == 0xce || c == 0xd2) && len(p) >= 5:
		return int(binary.BigEndian.Uint32(p[1:]))
	case (c == 0xcf || c == 0xd3) && len(p) >= 9:
		return int(binary.BigEndian.Uint64(p[1:]))
	}
	return -1
}
