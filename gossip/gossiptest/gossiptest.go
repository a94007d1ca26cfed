// Package gossiptest crafts gossip packets for tests: the messages an attacker (or a
// buggy peer) could send an agent, and a memberlist endpoint outside any pool to send
// them from, so tests can reproduce forged records and leaves against real agents.
// The encodings duplicate gossip's wire format (gossip/wire.go) on purpose, so a test
// sees the bytes; gossip's own tests check that gossip decodes them.
package gossiptest

import (
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"

	"github.com/hashicorp/memberlist"

	"github.com/rumor-sd/rumor/catalog"
)

// Message type bytes of gossip's wire format.
const (
	TypeRecords byte = 1
	TypeLeave   byte = 5
)

// Records returns a records message carrying recs, as gossip sends on its fast path.
// The records are not validated: that is the point.
func Records(recs ...catalog.Record) []byte {
	return catalog.AppendRecords([]byte{TypeRecords}, recs)
}

// Leave returns a leave intent naming node.
func Leave(node string) []byte {
	b := binary.AppendUvarint([]byte{TypeLeave}, uint64(len(node)))
	return append(b, node...)
}

// Sender is a memberlist endpoint that belongs to no pool: it only sends user
// messages, as anyone who can reach a gossip port could.
type Sender struct {
	ml *memberlist.Memberlist
}

// NewSender starts a Sender named name. With transport nil it binds UDP and TCP on
// 127.0.0.1 at a free port; otherwise it uses transport (internal/memnet's in tests).
func NewSender(name string, transport memberlist.NodeAwareTransport) (*Sender, error) {
	mc := memberlist.DefaultLocalConfig()
	mc.Name = name
	mc.Logger = log.New(io.Discard, "", 0)
	if transport != nil {
		mc.Transport = transport
		ip, port, err := addrOf(transport)
		if err != nil {
			return nil, err
		}
		mc.BindAddr, mc.BindPort, mc.AdvertiseAddr, mc.AdvertisePort = ip, port, ip, port
	} else {
		mc.BindAddr, mc.BindPort = "127.0.0.1", 0
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("gossiptest: start sender: %w", err)
	}
	return &Sender{ml: ml}, nil
}

// addrOf finds a transport's address by asking it for its advertise address.
func addrOf(t memberlist.NodeAwareTransport) (string, int, error) {
	ip, port, err := t.FinalAdvertiseAddr("", 0)
	if err != nil {
		return "", 0, fmt.Errorf("gossiptest: transport address: %w", err)
	}
	return ip.String(), port, nil
}

func node(to netip.AddrPort) *memberlist.Node {
	return &memberlist.Node{Name: "target", Addr: net.IP(to.Addr().AsSlice()), Port: to.Port()}
}

// SendPacket sends msg to the gossip port at to as one UDP user message (the fast path).
func (s *Sender) SendPacket(to netip.AddrPort, msg []byte) error {
	if err := s.ml.SendBestEffort(node(to), msg); err != nil {
		return fmt.Errorf("gossiptest: send packet to %s: %w", to, err)
	}
	return nil
}

// SendStream sends msg to the gossip port at to over TCP (the reliable path, which
// carries anti-entropy's records).
func (s *Sender) SendStream(to netip.AddrPort, msg []byte) error {
	if err := s.ml.SendReliable(node(to), msg); err != nil {
		return fmt.Errorf("gossiptest: send stream to %s: %w", to, err)
	}
	return nil
}

// Close stops the Sender.
func (s *Sender) Close() error { return s.ml.Shutdown() }
