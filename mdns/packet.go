package mdns

import (
	"errors"
	"fmt"

	"github.com/miekg/dns"
)

// maxPacket is the largest mDNS packet read (RFC 6762 §17: 9000 bytes).
const maxPacket = 9000

// maxRecordsPerPacket bounds the records taken from one packet.
const maxRecordsPerPacket = 256

// errNotResponse is returned by parseResponse for queries and other packets that
// carry nothing for a cache.
var errNotResponse = errors.New("mdns: not a response")

// parseResponse decodes an mDNS response and returns the records it carries
// (answers, then authority and additional records), each a fresh copy. Queries,
// truncated or malformed packets, non-zero opcodes or rcodes (RFC 6762 §18.3, §18.11)
// yield an error; records of types the querier does not use are left out.
func parseResponse(b []byte) ([]dns.RR, error) {
	if len(b) > maxPacket {
		return nil, fmt.Errorf("mdns: packet of %d bytes, more than %d", len(b), maxPacket)
	}
	var m dns.Msg
	if err := m.Unpack(b); err != nil {
		return nil, fmt.Errorf("mdns: malformed packet: %w", err)
	}
	if !m.Response || m.Opcode != dns.OpcodeQuery || m.Rcode != dns.RcodeSuccess {
		return nil, errNotResponse
	}
	var out []dns.RR
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if len(out) >= maxRecordsPerPacket {
				return out, nil
			}
			if rr == nil || rr.Header().Class&^cacheFlushBit != dns.ClassINET {
				continue
			}
			if _, ok := rdata(rr); !ok {
				continue
			}
			out = append(out, dns.Copy(rr))
		}
	}
	return out, nil
}
