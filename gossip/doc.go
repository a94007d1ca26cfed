// Package gossip adapts hashicorp/memberlist to rumor: membership and SWIM failure
// detection (with Lifeguard), dissemination of every node's catalog records,
// anti-entropy, partition healing, encryption and network coordinates.
//
// It turns membership events into catalog facts ("node X failed") and never decides
// health itself. It alone imports memberlist and serf/coordinate.
//
// Records travel three ways. The eager path (eager.go) sends a node's own change at
// once, without waiting for a gossip tick: to every live member in a pool of up to 65
// nodes, else to a few random members who forward what is new to them once; bursts
// are coalesced. The fast path piggybacks each new record on SWIM's own
// packets (memberlist's TransmitLimitedQueue; a newer version of the same origin/key
// replaces a queued older one), and a node passes on records it sees for the first
// time; a record too large for a packet goes over TCP to a few random peers, who pass
// it on the same way. The repair path is anti-entropy on memberlist's push-pull: the
// two nodes swap the 8-byte hash of their 2 KiB catalog summaries (a join swaps the
// summaries); where the hashes differ each sends the other its summary over TCP, each
// then sends the other its digest of the buckets that differ, and gets back only the
// records it lacks, in bounded chunks over TCP — so a joining node receives the full
// catalog in its first exchange, and a steady cluster exchanges hashes only.
//
// memberlist never probes a node it declared dead, so failed members are retried in
// the background (after 1 s, backing off to ReconnectMaxBackoff, 2 s; after 5 minutes
// to 30 s) until ReconnectTimeout: two halves of a healed partition find each other by
// themselves.
//
// A node that leaves tells every live member over TCP before memberlist's own leave
// (whose event looks like a death), so peers mark it left and drop its records at
// once. ForceLeave sends the same message on behalf of a failed node, as serf's
// force-leave does, so an operator can drop a host that is gone for good.
//
// A node whose records arrive by anti-entropy but which memberlist never reported (it
// died before this node joined) is marked failed after three push-pull intervals, so
// it is reported critical and reaped rather than alive forever (unknown.go). A digest
// can reach a node before memberlist there has reported its sender (memberlist answers
// a push-pull before merging it); such messages are parked until the sender is
// reported (park.go).
//
// # Concurrency
//
// A Gossip is safe for concurrent use. memberlist's callbacks copy their bytes and hand
// them to one worker goroutine; network sends run in goroutines tracked by a wait
// group. Shutdown stops everything and waits for it.
//
// # Testing
//
// Tests run real memberlist clusters over memnet's in-memory lossy network inside
// testing/synctest bubbles (seconds of protocol time in milliseconds), and over real
// loopback sockets; the message decoders are fuzzed.
package gossip
