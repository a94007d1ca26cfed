package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/rumor-sd/rumor/catalog"
)

// Gossip's own messages travel as memberlist user messages (fast path: piggybacked on
// SWIM packets; repair path: memberlist's reliable TCP stream) and as the user state of
// memberlist's push-pull. The first byte says what follows:
//
//	records = 1 catalog.AppendRecords
//	digest  = 2 sender:str catalog.AppendDigest            "send me what I lack"
//	keys    = 3 sender:str catalog.AppendOriginKeys          "these are my keys"
//	state   = 4 sender:str catalog.AppendSummary            push-pull user state
//	leave   = 5 node:str                                    "node is leaving": the sender itself, or a failed node forced out
//	keysack = 6 like keys                                   the answer to keys
//	keyquery, keyresponse = 7, 8                            pool-wide keyring operations (keyquery.go)
//	eager   = 9 sender:str flags:byte catalog.AppendRecords  a change sent at once (eager.go)
//	statehash = 10 sender:str hash:uint64 (big endian)      push-pull user state: the summary's Hash
//
// A message that names its sender does so because memberlist does not say who sent
// it, and the answer goes back to that node.
const (
	msgRecords byte = 1
	msgDigest  byte = 2
	msgKeys    byte = 3
	msgState   byte = 4
	msgLeave   byte = 5
	msgKeysAck byte = 6
	// msgStateHash is what a periodic push-pull carries instead of the summary: in
	// an idle pool summaries agree, and 8 bytes say so as well as 2 KiB (a join still
	// sends the summary). A node whose summary hashes differently answers with its
	// summary (msgState) over the reliable path, and the exchange goes on from there.
	msgStateHash byte = 10
)

// errMalformed is wrapped by every decoding error of gossip's messages.
var errMalformed = errors.New("malformed gossip message")

// maxSenderLen bounds a sender name: node names are at most catalog.MaxNameLen bytes.
const maxSenderLen = catalog.MaxNameLen

func appendSender(dst []byte, typ byte, sender string) []byte {
	dst = append(dst, typ)
	dst = binary.AppendUvarint(dst, uint64(len(sender)))
	return append(dst, sender...)
}

// readSender splits a message of type typ into its sender and the rest.
func readSender(b []byte, typ byte) (string, []byte, error) {
	if len(b) == 0 || b[0] != typ {
		return "", nil, fmt.Errorf("%w: want type %d", errMalformed, typ)
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || n == 0 || n > maxSenderLen || n > uint64(len(b)-1-k) {
		return "", nil, fmt.Errorf("%w: bad sender", errMalformed)
	}
	start := 1 + k
	return string(b[start : start+int(n)]), b[start+int(n):], nil
}

func encodeLeave(sender string) []byte { return appendSender(nil, msgLeave, sender) }

func decodeLeave(b []byte) (string, error) {
	sender, rest, err := readSender(b, msgLeave)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%w: %d trailing bytes", errMalformed, len(rest))
	}
	return sender, err
}

func encodeRecords(recs []catalog.Record) []byte {
	return catalog.AppendRecords([]byte{msgRecords}, recs)
}

func decodeRecords(b []byte) ([]catalog.Record, error) {
	if len(b) == 0 || b[0] != msgRecords {
		return nil, fmt.Errorf("%w: not a records message", errMalformed)
	}
	recs, err := catalog.DecodeRecords(b[1:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return recs, nil
}

func encodeState(sender string, s *catalog.Summary) []byte {
	return catalog.AppendSummary(appendSender(nil, msgState, sender), s)
}

func decodeState(b []byte) (string, catalog.Summary, error) {
	sender, rest, err := readSender(b, msgState)
	if err != nil {
		return "", catalog.Summary{}, err
	}
	s, err := catalog.DecodeSummary(rest)
	if err != nil {
		return "", s, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return sender, s, nil
}

func encodeStateHash(sender string, h uint64) []byte {
	return binary.BigEndian.AppendUint64(appendSender(nil, msgStateHash, sender), h)
}

func decodeStateHash(b []byte) (string, uint64, error) {
	sender, rest, err := readSender(b, msgStateHash)
	if err != nil {
		return "", 0, err
	}
	if len(rest) != 8 {
		return "", 0, fmt.Errorf("%w: state hash of %d bytes", errMalformed, len(rest))
	}
	return sender, binary.BigEndian.Uint64(rest), nil
}

func encodeDigest(sender string, d *catalog.Digest) []byte {
	return catalog.AppendDigest(appendSender(nil, msgDigest, sender), d)
}

func decodeDigest(b []byte) (string, catalog.Digest, error) {
	sender, rest, err := readSender(b, msgDigest)
	if err != nil {
		return "", catalog.Digest{}, err
	}
	d, err := catalog.DecodeDigest(rest)
	if err != nil {
		return "", d, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return sender, d, nil
}

func encodeKeys(typ byte, sender string, keys []catalog.OriginKeys) []byte {
	return catalog.AppendOriginKeys(appendSender(nil, typ, sender), keys)
}

func decodeKeys(typ byte, b []byte) (string, []catalog.OriginKeys, error) {
	sender, rest, err := readSender(b, typ)
	if err != nil {
		return "", nil, err
	}
	keys, err := catalog.DecodeOriginKeys(rest)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return sender, keys, nil
}

// chunkRecords splits recs into encoded records messages of at most about max bytes
// each (a single record larger than max gets a message of its own), so a full catalog
// streams to a joining node in bounded pieces. Records of extension kinds go in
// messages of their own (byWireKind).
func chunkRecords(recs []catalog.Record, max int) [][]byte {
	base, ext := byWireKind(recs)
	return append(chunkRecordsOf(base, max), chunkRecordsOf(ext, max)...)
}

// byWireKind splits recs into the records of the first three kinds and those of
// extension kinds (catalog.KindMove and later), keeping their order. Batched messages
// carry the two apart: an agent from before extension kinds refuses a whole message
// holding one, and then loses only the pointers, not the services sent with them.
func byWireKind(recs []catalog.Record) (base, ext []catalog.Record) {
	n := 0
	for i := range recs {
		if recs[i].Key.Kind.Extension() {
			n++
		}
	}
	if n == 0 {
		return recs, nil
	}
	base = make([]catalog.Record, 0, len(recs)-n)
	ext = make([]catalog.Record, 0, n)
	for i := range recs {
		if recs[i].Key.Kind.Extension() {
			ext = append(ext, recs[i])
		} else {
			base = append(base, recs[i])
		}
	}
	return base, ext
}

func chunkRecordsOf(recs []catalog.Record, max int) [][]byte {
	var out [][]byte
	var body []byte
	count := 0
	frame := func(body []byte, count int) []byte {
		msg := binary.AppendUvarint([]byte{msgRecords}, uint64(count))
		return append(msg, body...)
	}
	for i := range recs {
		start := len(body)
		body = catalog.AppendRecord(body, &recs[i])
		if count > 0 && len(body) > max {
			out = append(out, frame(body[:start], count))
			body, count = append([]byte(nil), body[start:]...), 0
		}
		count++
	}
	if count > 0 {
		out = append(out, frame(body, count))
	}
	return out
}
