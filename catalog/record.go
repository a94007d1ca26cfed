package catalog

import (
	"fmt"
	"math"
	"strings"
)

// Version orders an origin's records. Gen is fixed when the origin's agent starts and
// grows across restarts; Counter grows with every change the origin makes within a
// generation. Versions of different origins are never compared.
type Version struct {
	Gen     uint64
	Counter uint64
}

// MaxVersionPart is the largest generation or counter a valid record may carry. The
// value above it (2^64-1) is reserved so that an owner can always write a version
// above anything others hold of its origin: version arithmetic saturates there and
// never wraps (Validate refuses it, Writer never issues it).
const MaxVersionPart = math.MaxUint64 - 1

// Less reports whether v is older than w.
func (v Version) Less(w Version) bool {
	return v.Gen < w.Gen || v.Gen == w.Gen && v.Counter < w.Counter
}

// String returns "gen.counter".
func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Gen, v.Counter) }

// Kind says what a record describes.
type Kind uint8

// The record kinds. An origin has at most one node record (with ID "").
const (
	KindNode Kind = iota + 1
	KindService
	KindCheck
	// KindMove is a forward pointer (Move) that an instance's old origin publishes
	// when the instance reappears on another node; its ID is the instance's old
	// service ID. It is the first extension kind: on the wire every kind from
	// KindMove up carries its value behind a length, so an agent that does not know
	// a kind skips that record alone (see the codec).
	KindMove
)

// Extension reports whether k is an extension kind (KindMove and later), whose value
// travels behind its length so that a decoder that does not know k skips the record.
func (k Kind) Extension() bool { return k >= KindMove }

// String returns "node", "service", "check" or "move".
func (k Kind) String() string {
	switch k {
	case KindNode:
		return "node"
	case KindService:
		return "service"
	case KindCheck:
		return "check"
	case KindMove:
		return "move"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Key identifies a record within its origin.
type Key struct {
	Kind Kind
	ID   string // service or check ID; "" for the node record
}

// String returns e.g. "service/web-1".
func (k Key) String() string { return k.Kind.String() + "/" + k.ID }

// Record is the unit of replication: one origin's versioned value for one key, or a
// tombstone saying the key was deleted at that version. Exactly one of Node, Service,
// Check and Move is set, matching Kind, unless Deleted.
type Record struct {
	Origin  string // the node (or external source) that owns and alone writes this record
	Key     Key
	Version Version
	Deleted bool // a tombstone: the key was removed at Version

	Node    *Node
	Service *Service
	Check   *Check
	Move    *Move
}

// Validate checks that r is well formed: a known kind, the value matching the kind and
// valid itself, a node record named after its origin, an ID matching the value's ID.
func (r *Record) Validate() error {
	var v validator
	v.name("record.origin", r.Origin)
	if r.Version.Gen == 0 {
		v.addf("record.version", "generation must be at least 1")
	}
	if r.Version.Gen > MaxVersionPart || r.Version.Counter > MaxVersionPart {
		v.addf("record.version", "%s is reserved: generation and counter must be at most %d", r.Version, uint64(MaxVersionPart))
	}
	set := 0
	for _, p := range []bool{r.Node != nil, r.Service != nil, r.Check != nil, r.Move != nil} {
		if p {
			set++
		}
	}
	if r.Deleted && set != 0 {
		v.addf("record", "a tombstone must carry no value")
	}
	if !r.Deleted && set != 1 {
		v.addf("record", "must carry exactly one value, has %d", set)
	}
	switch r.Key.Kind {
	case KindNode:
		if r.Key.ID != "" {
			v.addf("record.key", "a node record has no ID, got %q", r.Key.ID)
		}
		if !r.Deleted && r.Node == nil {
			v.addf("record", "node record without a node")
		}
	case KindService, KindCheck:
		v.name("record.key.id", r.Key.ID)
		if !r.Deleted && (r.Key.Kind == KindService) != (r.Service != nil) {
			v.addf("record", "%s record with the wrong value", r.Key.Kind)
		}
	case KindMove:
		v.name("record.key.id", r.Key.ID)
		if !r.Deleted && r.Move == nil {
			v.addf("record", "move record with the wrong value")
		}
	default:
		v.addf("record.key.kind", "unknown kind %d", uint8(r.Key.Kind))
	}
	if err := v.err(); err != nil {
		return fmt.Errorf("record %s %s: %w", r.Origin, r.Key, err)
	}
	var err error
	switch {
	case r.Node != nil:
		err = r.Node.Validate()
		if err == nil && r.Node.Name != r.Origin {
			err = &FieldError{Field: "node.name", Reason: fmt.Sprintf("%q differs from the record's origin %q", r.Node.Name, r.Origin)}
		}
	case r.Service != nil:
		err = r.Service.Validate()
		if err == nil && r.Service.ID != r.Key.ID {
			err = &FieldError{Field: "service.id", Reason: fmt.Sprintf("%q differs from the record's key %q", r.Service.ID, r.Key.ID)}
		}
	case r.Check != nil:
		err = r.Check.Validate()
		if err == nil && r.Check.ID != r.Key.ID {
			err = &FieldError{Field: "check.id", Reason: fmt.Sprintf("%q differs from the record's key %q", r.Check.ID, r.Key.ID)}
		}
	case r.Move != nil:
		err = r.Move.Validate()
		if err == nil && r.Move.ToNode == r.Origin {
			err = &FieldError{Field: "move.to_node", Reason: fmt.Sprintf("%q is the record's origin: an instance cannot move to its own node", r.Origin)}
		}
	}
	if err != nil {
		return fmt.Errorf("record %s %s: %w", r.Origin, r.Key, err)
	}
	return nil
}

// String is a short description for logs.
func (r *Record) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s@%s", r.Origin, r.Key, r.Version)
	if r.Deleted {
		b.WriteString(" (deleted)")
	}
	return b.String()
}

// Writer versions the records of one origin: it is how the origin's own agent (or an
// external source's adapter) produces records. It keeps no record values, only the
// version counter, so the caller owns what it publishes.
//
// A Writer is not safe for concurrent use; its owner serialises writes.
type Writer struct {
	origin string
	gen    uint64
	last   uint64
}

// NewWriter returns a Writer for origin at generation gen (≥ 1). The caller picks a
// generation above every one it used before (see the agent's data dir), so its records
// replace the previous incarnation's everywhere.
func NewWriter(origin string, gen uint64) *Writer {
	gen = min(max(gen, 1), MaxVersionPart)
	return &Writer{origin: origin, gen: gen}
}

// Origin returns the origin the Writer writes for.
func (w *Writer) Origin() string { return w.origin }

// Generation returns the current generation.
func (w *Writer) Generation() uint64 { return w.gen }

// Issued returns the version of the last record the Writer issued (counter 0 before
// the first one of its generation). A version of the origin above it was not written
// by this Writer.
func (w *Writer) Issued() Version { return Version{Gen: w.gen, Counter: w.last} }

// Supersede moves the Writer past v, a version of its own origin seen elsewhere (a
// previous incarnation whose generation was not persisted, for example, or a forged
// record): the generation becomes v.Gen+1 and the counter restarts. It reports whether
// it moved; when it did, the caller must republish all its records, since the new
// generation replaces the old set on every replica. The arithmetic saturates: a v.Gen
// at MaxVersionPart (which no valid record carries) cannot be passed and Supersede
// returns false.
func (w *Writer) Supersede(v Version) bool {
	if v.Gen < w.gen || v.Gen >= MaxVersionPart {
		return false
	}
	w.gen = v.Gen + 1
	w.last = 0
	return true
}

// next returns the next version. The counter saturates at MaxVersionPart (2^64-2
// writes in one generation: never in practice) rather than wrapping to an old version.
func (w *Writer) next() Version {
	if w.last < MaxVersionPart {
		w.last++
	}
	return Version{Gen: w.gen, Counter: w.last}
}

// PutNode returns the record publishing n, which must be named after the origin.
func (w *Writer) PutNode(n *Node) Record {
	return Record{Origin: w.origin, Key: Key{Kind: KindNode}, Version: w.next(), Node: n.clone()}
}

// PutService returns the record publishing s.
func (w *Writer) PutService(s *Service) Record {
	return Record{Origin: w.origin, Key: Key{Kind: KindService, ID: s.ID}, Version: w.next(), Service: s.clone()}
}

// PutCheck returns the record publishing c.
func (w *Writer) PutCheck(c *Check) Record {
	return Record{Origin: w.origin, Key: Key{Kind: KindCheck, ID: c.ID}, Version: w.next(), Check: c.clone()}
}

// PutMove returns the record saying that this origin's instance serviceID moved as m
// says (a forward pointer, see Move).
func (w *Writer) PutMove(serviceID string, m *Move) Record {
	c := *m
	return Record{Origin: w.origin, Key: Key{Kind: KindMove, ID: serviceID}, Version: w.next(), Move: &c}
}

// Delete returns the tombstone for key.
func (w *Writer) Delete(key Key) Record {
	return Record{Origin: w.origin, Key: key, Version: w.next(), Deleted: true}
}
