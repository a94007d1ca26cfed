package memnet

import (
	"fmt"
	"sync/atomic"
)

// DropReason says why the network dropped a packet.
type DropReason int

// The reasons a packet is dropped, in the order the network checks them.
const (
	// DropDown: the sender or the receiver is down or shut down, or no node
	// has the address.
	DropDown DropReason = iota
	// DropPartition: a Partition or a Cut lies between sender and receiver.
	DropPartition
	// DropLoss: the link's loss probability came up.
	DropLoss
	// DropQueueFull: the receiver's queue was full when the packet arrived.
	DropQueueFull
)

// String returns the reason's name as used in reports.
func (r DropReason) String() string {
	switch r {
	case DropDown:
		return "down"
	case DropPartition:
		return "partition"
	case DropLoss:
		return "loss"
	case DropQueueFull:
		return "queue-full"
	}
	return fmt.Sprintf("DropReason(%d)", int(r))
}

// Drops counts dropped packets by reason.
type Drops struct {
	Down      uint64
	Partition uint64
	Loss      uint64
	QueueFull uint64
}

// Total returns the number of dropped packets, whatever the reason.
func (d Drops) Total() uint64 { return d.Down + d.Partition + d.Loss + d.QueueFull }

// Stats are one node's counters, or the sum over a network.
//
// Drops are counted against the sender, whatever the reason, so that for a
// whole network PacketsSent + Duplicated = PacketsReceived + Dropped.Total() +
// packets still in flight.
type Stats struct {
	PacketsSent     uint64 // WriteTo calls, including packets then dropped
	BytesSent       uint64 // payload bytes of PacketsSent
	PacketsReceived uint64 // packets put into this node's queue
	BytesReceived   uint64 // payload bytes of PacketsReceived
	Dropped         Drops  // this node's packets that never reached a queue
	Duplicated      uint64 // this node's packets the network delivered twice (Link.Duplicate)

	Dials               uint64 // streams this node opened
	DialsFailed         uint64 // dials that failed: unreachable or refused
	StreamBytesSent     uint64 // bytes written to this node's streams
	StreamBytesReceived uint64 // bytes read from this node's streams
}

func (s *Stats) add(o Stats) {
	s.PacketsSent += o.PacketsSent
	s.BytesSent += o.BytesSent
	s.PacketsReceived += o.PacketsReceived
	s.BytesReceived += o.BytesReceived
	s.Dropped.Down += o.Dropped.Down
	s.Dropped.Partition += o.Dropped.Partition
	s.Dropped.Loss += o.Dropped.Loss
	s.Dropped.QueueFull += o.Dropped.QueueFull
	s.Duplicated += o.Duplicated
	s.Dials += o.Dials
	s.DialsFailed += o.DialsFailed
	s.StreamBytesSent += o.StreamBytesSent
	s.StreamBytesReceived += o.StreamBytesReceived
}

// counters are the live, atomically updated form of Stats: they are bumped
// on every packet from many goroutines, and must not contend on the network
// lock when read.
type counters struct {
	packetsSent, bytesSent         atomic.Uint64
	packetsReceived, bytesReceived atomic.Uint64
	dropped                        [DropQueueFull + 1]atomic.Uint64
	duplicated                     atomic.Uint64

	dials, dialsFailed                   atomic.Uint64
	streamBytesSent, streamBytesReceived atomic.Uint64
}

func (c *counters) drop(r DropReason) { c.dropped[r].Add(1) }

func (c *counters) snapshot() Stats {
	return Stats{
		PacketsSent:     c.packetsSent.Load(),
		BytesSent:       c.bytesSent.Load(),
		PacketsReceived: c.packetsReceived.Load(),
		BytesReceived:   c.bytesReceived.Load(),
		Dropped: Drops{
			Down:      c.dropped[DropDown].Load(),
			Partition: c.dropped[DropPartition].Load(),
			Loss:      c.dropped[DropLoss].Load(),
			QueueFull: c.dropped[DropQueueFull].Load(),
		},
		Duplicated:          c.duplicated.Load(),
		Dials:               c.dials.Load(),
		DialsFailed:         c.dialsFailed.Load(),
		StreamBytesSent:     c.streamBytesSent.Load(),
		StreamBytesReceived: c.streamBytesReceived.Load(),
	}
}
