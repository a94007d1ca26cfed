// Package memnet is an in-memory, lossy network for memberlist: a [Network]
// hands out [Transport]s (one per simulated node) that implement
// memberlist.NodeAwareTransport, and decides for every packet whether it is
// lost, delayed, cut off by a partition or dropped because a node is down.
//
// It exists because memberlist's own MockNetwork delivers on unbuffered
// channels: a send to a stopped peer blocks forever, so it cannot test the one
// thing gossip most needs testing, failure detection. Here sends never block:
// each node has a bounded receive queue and a packet that does not fit is
// dropped, as UDP would drop it. Stream connections ([Transport.DialTimeout])
// are in-memory pipes; a dial to a node that is down or cut off fails at once
// rather than waiting out its timeout, which keeps tests short.
//
// It is the network of the simulator (sim, `rumor sim`) and of the gossip
// adapter's tests, so it is production code, not a test package: the shipped
// binary links it for `rumor sim`. It opens no sockets, starts no long-lived
// goroutines and imports nothing of this module.
//
// # Model
//
// Nodes are named by the caller and addressed by the network ("10.0.0.N:7946");
// every method that takes a node accepts either. A packet travels over a
// directed link whose [Link] (loss, latency, jitter) is the network default
// unless [Network.SetLink] overrides it; a link may also duplicate packets and
// cap its bandwidth, queueing packets behind each other. A packet is dropped when it is sent
// if either end is down or the two ends are separated ([Network.Partition],
// [Network.Cut]), or by the link's loss; and again when it would arrive if the
// receiver is down or the ends are separated by then, or if the receiver's
// queue is full. Delayed packets are delivered by their own timer, so packets
// with different delays overtake each other.
//
// Streams model TCP: no loss, no latency. When a partition, a cut or a down
// node separates the two ends of an established stream, the network closes
// both ends (as a reset would), so readers see an error at once instead of
// hanging; readers also honour deadlines, as memberlist sets them.
//
// Every decision is counted in [Stats], per node: what it sent, what it
// received, and why each of its packets was dropped.
//
// # Concurrency
//
// All methods of [Network] and [Transport] are safe for concurrent use. No
// method blocks: sends, dials and configuration changes take one short mutex.
// Configuration changes apply to packets sent afterwards and to delayed packets
// when they arrive.
//
// # Testing
//
// The network is built to run inside a testing/synctest bubble, where
// memberlist's probe intervals and suspicion timeouts pass in fake time: a
// 5-node cluster detects a crashed node after seconds of bubble time in
// milliseconds of real time. Delayed delivery uses [time.AfterFunc] and pipes
// use channels, so everything they wait on is durably blocking. Create the
// Network, its transports and the memberlists inside the same bubble: bubbled
// timers and channels may not be touched from outside it.
//
// The random source is seeded from [Config.Seed], so loss and jitter repeat
// when calls arrive in the same order; memberlist itself uses the global
// math/rand and goroutine scheduling varies, so tests of a cluster should
// assert bounds ("dead within 3 × the suspicion timeout"), not instants.
package memnet
