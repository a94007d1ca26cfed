package catalog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// The record wire format: compact, versioned, and deterministic (map keys sorted), so
// equal records encode to equal bytes. Values repeat nothing the key already says: a
// service's ID is the key's ID, a node's name is the origin.
//
//	record  = format(1) origin:str kind:u8 id:str gen:uvarint counter:uvarint flags:u8 [value]
//	str     = len:uvarint bytes
//	map     = n:uvarint (key:str value:str)*n   keys ascending
//	node    = id address datacenter meta:map tagged:map
//	service = name tags:(n:uvarint str*n) address port:varint meta:map
//	          wpassing:varint wwarning:varint tagged:map kind
//	check   = name service_id status:u8 output notes type interval:varint timeout:varint
//	ext     = len:uvarint body                   every kind ≥ 4 (KindMove and later)
//	move    = service to_node to_service_id at:varint(unix ns) until:varint(unix ns) flags:u8
//
// Kinds from KindMove up are extension kinds: their value travels as ext, so a decoder
// that does not know a kind skips its body and returns the record without a value,
// which Validate (and so Catalog.Apply) refuses alone: the other records of the
// message still apply. Within a known extension body, bytes after the fields it knows
// are ignored, so later versions can append fields. (Agents from before KindMove
// refuse a whole message that holds a kind they do not know.)
//
// The decoder checks structure only (lengths against what remains, counts against
// generous caps) and never allocates more than the input justifies; Catalog.Apply
// validates content.
const recordFormat = 1

// Caps the decoder enforces before Validate sees a record: far above the real limits,
// they only stop a hostile length prefix from costing memory.
const (
	maxWireString = 64 << 10
	maxWireItems  = 1024
	// prealloc bounds what a decoder allocates for a count before the items are
	// decoded; longer lists grow as they are read.
	prealloc = 64
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed record")

const flagDeleted = 1

// AppendRecord appends r's encoding to dst.
func AppendRecord(dst []byte, r *Record) []byte {
	dst = append(dst, recordFormat)
	dst = appendString(dst, r.Origin)
	dst = append(dst, byte(r.Key.Kind))
	dst = appendString(dst, r.Key.ID)
	dst = binary.AppendUvarint(dst, r.Version.Gen)
	dst = binary.AppendUvarint(dst, r.Version.Counter)
	var flags byte
	if r.Deleted {
		flags |= flagDeleted
	}
	dst = append(dst, flags)
	if r.Deleted {
		return dst
	}
	switch r.Key.Kind {
	case KindNode:
		n := r.Node
		dst = appendString(dst, n.ID)
		dst = appendString(dst, n.Address)
		dst = appendString(dst, n.Datacenter)
		dst = appendMap(dst, n.Meta)
		dst = appendMap(dst, n.TaggedAddresses)
	case KindService:
		s := r.Service
		dst = appendString(dst, s.Name)
		dst = binary.AppendUvarint(dst, uint64(len(s.Tags)))
		for _, t := range s.Tags {
			dst = appendString(dst, t)
		}
		dst = appendString(dst, s.Address)
		dst = binary.AppendVarint(dst, int64(s.Port))
		dst = appendMap(dst, s.Meta)
		dst = binary.AppendVarint(dst, int64(s.Weights.Passing))
		dst = binary.AppendVarint(dst, int64(s.Weights.Warning))
		dst = appendMap(dst, s.TaggedAddresses)
		dst = appendString(dst, s.Kind)
	case KindCheck:
		c := r.Check
		dst = appendString(dst, c.Name)
		dst = appendString(dst, c.ServiceID)
		dst = append(dst, byte(c.Status))
		dst = appendString(dst, c.Output)
		dst = appendString(dst, c.Notes)
		dst = appendString(dst, c.Type)
		dst = binary.AppendVarint(dst, int64(c.Interval))
		dst = binary.AppendVarint(dst, int64(c.Timeout))
	case KindMove:
		if r.Move == nil {
			return binary.AppendUvarint(dst, 0) // invalid, as decoded: kept decodable in length
		}
		dst = appendExt(dst, func(dst []byte) []byte {
			m := r.Move
			dst = appendString(dst, m.Service)
			dst = appendString(dst, m.ToNode)
			dst = appendString(dst, m.ToServiceID)
			dst = binary.AppendVarint(dst, m.At.UnixNano())
			dst = binary.AppendVarint(dst, m.Until.UnixNano())
			var flags byte
			if m.Explicit {
				flags |= moveExplicit
			}
			return append(dst, flags)
		})
	default:
		if r.Key.Kind.Extension() {
			// An extension kind this version does not know, as the decoder returns
			// it: an empty value keeps the record skippable.
			dst = binary.AppendUvarint(dst, 0)
		}
	}
	return dst
}

// moveExplicit is the move body's flag for Move.Explicit.
const moveExplicit = 1

// appendExt appends an extension value: its length, then the body body appends.
func appendExt(dst []byte, body func([]byte) []byte) []byte {
	b := body(nil)
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// AppendRecords appends a count and then each record.
func AppendRecords(dst []byte, recs []Record) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(recs)))
	for i := range recs {
		dst = AppendRecord(dst, &recs[i])
	}
	return dst
}

// DecodeRecord decodes one record from the front of b and returns it with the number
// of bytes it used. Errors wrap ErrMalformed.
func DecodeRecord(b []byte) (Record, int, error) {
	d := decoder{b: b}
	r := d.record()
	if d.err != nil {
		return Record{}, 0, fmt.Errorf("catalog: decode record at byte %d: %w", d.off, d.err)
	}
	return r, d.off, nil
}

// DecodeRecords decodes what AppendRecords wrote; trailing bytes are an error.
func DecodeRecords(b []byte) ([]Record, error) {
	d := decoder{b: b}
	n := d.uvarint()
	// Every record takes at least 8 bytes: never trust a count beyond what b can hold.
	if d.err == nil && n > uint64(len(b)-d.off)/8 {
		d.fail("record count %d exceeds what %d bytes can hold", n, len(b)-d.off)
	}
	var recs []Record
	if d.err == nil {
		// Allocate from what has been decoded, not from the count: a Record is 11
		// times the 8 bytes a hostile count can claim per record.
		recs = make([]Record, 0, min(n, prealloc))
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		recs = append(recs, d.record())
	}
	if d.err == nil && d.off != len(b) {
		d.fail("%d trailing bytes", len(b)-d.off)
	}
	if d.err != nil {
		return nil, fmt.Errorf("catalog: decode records at byte %d: %w", d.off, d.err)
	}
	return recs, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendMap(dst []byte, m map[string]string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(m)))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		dst = appendString(dst, k)
		dst = appendString(dst, m[k])
	}
	return dst
}

// decoder reads the wire format; the first error sticks and later reads return zero
// values, so record() reads straight through and checks once.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte1() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated")
		return 0
	}
	v := d.b[d.off]
	d.off++
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad unsigned varint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return v
}

// int decodes a varint that must fit an int32 (ports, weights).
func (d *decoder) int() int {
	v := d.varint()
	if v < -1<<31 || v > 1<<31-1 {
		d.fail("integer %d out of range", v)
		return 0
	}
	return int(v)
}

func (d *decoder) count() uint64 {
	n := d.uvarint()
	if n > maxWireItems {
		d.fail("count %d over %d", n, maxWireItems)
		return 0
	}
	return n
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > maxWireString || n > uint64(len(d.b)-d.off) {
		d.fail("string of %d bytes with %d left", n, len(d.b)-d.off)
		return ""
	}
	s := string(d.b[d.off : d.off+int(n)])
	d.off += int(n)
	return s
}

func (d *decoder) strMap() map[string]string {
	n := d.count()
	if n == 0 || d.err != nil {
		return nil
	}
	m := make(map[string]string, min(n, 16))
	prev := ""
	for i := uint64(0); i < n && d.err == nil; i++ {
		k, v := d.str(), d.str()
		if i > 0 && k <= prev {
			d.fail("map keys out of order or repeated at %q", k)
		}
		m[k], prev = v, k
	}
	return m
}

func (d *decoder) record() Record {
	var r Record
	if f := d.byte1(); d.err == nil && f != recordFormat {
		d.fail("unknown format %d", f)
	}
	r.Origin = d.str()
	r.Key.Kind = Kind(d.byte1())
	r.Key.ID = d.str()
	r.Version.Gen = d.uvarint()
	r.Version.Counter = d.uvarint()
	flags := d.byte1()
	if flags&^flagDeleted != 0 {
		d.fail("unknown flags %#x", flags)
	}
	r.Deleted = flags&flagDeleted != 0
	if d.err != nil || r.Deleted {
		return r
	}
	switch r.Key.Kind {
	case KindNode:
		r.Node = &Node{Name: r.Origin, ID: d.str(), Address: d.str(), Datacenter: d.str(),
			Meta: d.strMap(), TaggedAddresses: d.strMap()}
	case KindService:
		s := &Service{ID: r.Key.ID, Name: d.str()}
		if n := d.count(); n > 0 && d.err == nil {
			s.Tags = make([]string, 0, min(n, 16))
			for i := uint64(0); i < n && d.err == nil; i++ {
				s.Tags = append(s.Tags, d.str())
			}
		}
		s.Address = d.str()
		s.Port = d.int()
		s.Meta = d.strMap()
		s.Weights.Passing = d.int()
		s.Weights.Warning = d.int()
		s.TaggedAddresses = d.strMap()
		s.Kind = d.str()
		r.Service = s
	case KindCheck:
		c := &Check{ID: r.Key.ID, Name: d.str(), ServiceID: d.str(), Status: Status(d.byte1()),
			Output: d.str(), Notes: d.str(), Type: d.str()}
		c.Interval = time.Duration(d.varint())
		c.Timeout = time.Duration(d.varint())
		r.Check = c
	case KindMove:
		body := decoder{b: d.ext()}
		m := &Move{Service: body.str(), ToNode: body.str(), ToServiceID: body.str(),
			At: time.Unix(0, body.varint()), Until: time.Unix(0, body.varint())}
		flags := body.byte1()
		m.Explicit = flags&moveExplicit != 0
		if d.err == nil && body.err != nil {
			d.fail("move value: %v", body.err)
		}
		if d.err == nil {
			r.Move = m
		}
	default:
		if !r.Key.Kind.Extension() {
			d.fail("unknown kind %d", r.Key.Kind)
			break
		}
		// An extension kind this version does not know: skip its value. The record
		// comes back without one, and Validate refuses it.
		d.ext()
	}
	return r
}

// ext returns an extension value's body (see the format above).
func (d *decoder) ext() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > maxWireString || n > uint64(len(d.b)-d.off) {
		d.fail("extension value of %d bytes with %d left", n, len(d.b)-d.off)
		return nil
	}
	b := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return b
}

// The anti-entropy messages' wire format, so their size is what benchmarks measure:
//
//	summary = format(1) hash:u64le*256
//	digest  = format(1) nbuckets:uvarint(0 = all, else count+1) bucket:uvarint*n
//	          norigins:uvarint (origin:str gen:uvarint max:uvarint hash:u64le)*n

// AppendSummary appends s's encoding (2,049 bytes) to dst.
func AppendSummary(dst []byte, s *Summary) []byte {
	dst = append(dst, recordFormat)
	for _, h := range s.Buckets {
		dst = binary.LittleEndian.AppendUint64(dst, h)
	}
	return dst
}

// DecodeSummary decodes what AppendSummary wrote.
func DecodeSummary(b []byte) (Summary, error) {
	var s Summary
	if len(b) != 1+8*NumBuckets || b[0] != recordFormat {
		return s, fmt.Errorf("catalog: decode summary: %w: %d bytes, want %d", ErrMalformed, len(b), 1+8*NumBuckets)
	}
	for i := range s.Buckets {
		s.Buckets[i] = binary.LittleEndian.Uint64(b[1+8*i:])
	}
	return s, nil
}

// AppendDigest appends d's encoding to dst.
func AppendDigest(dst []byte, d *Digest) []byte {
	dst = append(dst, recordFormat)
	if d.Buckets == nil {
		dst = binary.AppendUvarint(dst, 0)
	} else {
		dst = binary.AppendUvarint(dst, uint64(len(d.Buckets))+1)
		for _, b := range d.Buckets {
			dst = binary.AppendUvarint(dst, uint64(b))
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(d.Origins)))
	for _, o := range d.Origins {
		dst = appendString(dst, o.Origin)
		dst = binary.AppendUvarint(dst, o.Version.Gen)
		dst = binary.AppendUvarint(dst, o.Version.Counter)
		dst = binary.LittleEndian.AppendUint64(dst, o.Hash)
	}
	return dst
}

// DecodeDigest decodes what AppendDigest wrote; buckets must ascend within range and
// origins must be sorted and distinct, since Missing relies on both.
func DecodeDigest(b []byte) (Digest, error) {
	d := decoder{b: b}
	var dg Digest
	if f := d.byte1(); d.err == nil && f != recordFormat {
		d.fail("unknown format %d", f)
	}
	if nb := d.uvarint(); nb > NumBuckets+1 {
		d.fail("%d buckets", nb-1)
	} else if nb > 0 {
		dg.Buckets = make([]int, 0, nb-1)
		for i := uint64(0); i < nb-1 && d.err == nil; i++ {
			bk := d.uvarint()
			if bk >= NumBuckets || len(dg.Buckets) > 0 && int(bk) <= dg.Buckets[len(dg.Buckets)-1] {
				d.fail("bucket %d out of order or range", bk)
			}
			dg.Buckets = append(dg.Buckets, int(bk))
		}
	}
	n := d.uvarint()
	// Each origin takes at least 11 bytes: never trust a count beyond what b holds.
	if d.err == nil && n > uint64(len(b)-d.off)/11 {
		d.fail("origin count %d exceeds what %d bytes can hold", n, len(b)-d.off)
	}
	if d.err == nil && n > 0 {
		dg.Origins = make([]OriginDigest, 0, min(n, prealloc))
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		od := OriginDigest{Origin: d.str(), Version: Version{Gen: d.uvarint(), Counter: d.uvarint()}}
		if d.err == nil && len(b)-d.off < 8 {
			d.fail("truncated hash")
		}
		if d.err != nil {
			break
		}
		od.Hash = binary.LittleEndian.Uint64(b[d.off:])
		d.off += 8
		if i > 0 && od.Origin <= dg.Origins[i-1].Origin {
			d.fail("origin %q out of order", od.Origin)
		}
		dg.Origins = append(dg.Origins, od)
	}
	if d.err == nil && d.off != len(b) {
		d.fail("%d trailing bytes", len(b)-d.off)
	}
	if d.err != nil {
		return Digest{}, fmt.Errorf("catalog: decode digest at byte %d: %w", d.off, d.err)
	}
	return dg, nil
}

// AppendOriginKeys appends the key lists of the third anti-entropy step:
//
//	keys = n:uvarint (origin:str gen:uvarint m:uvarint (kind:u8 id:str counter:uvarint)*m)*n
func AppendOriginKeys(dst []byte, keys []OriginKeys) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for _, ok := range keys {
		dst = appendString(dst, ok.Origin)
		dst = binary.AppendUvarint(dst, ok.Gen)
		dst = binary.AppendUvarint(dst, uint64(len(ok.Keys)))
		for _, kv := range ok.Keys {
			dst = append(dst, byte(kv.Key.Kind))
			dst = appendString(dst, kv.Key.ID)
			dst = binary.AppendUvarint(dst, kv.Counter)
		}
	}
	return dst
}

// DecodeOriginKeys decodes what AppendOriginKeys wrote; trailing bytes are an error.
// Counts are checked against what the input can hold (3 bytes an entry at least).
func DecodeOriginKeys(b []byte) ([]OriginKeys, error) {
	d := decoder{b: b}
	count := func() int {
		n := d.uvarint()
		if d.err == nil && n > uint64(len(b)-d.off)/3 {
			d.fail("count %d exceeds what %d bytes can hold", n, len(b)-d.off)
			return 0
		}
		return int(n)
	}
	name := func() string {
		s := d.str()
		if len(s) > MaxNameLen {
			d.fail("name of %d bytes, more than %d", len(s), MaxNameLen)
		}
		return s
	}
	// Allocate from what has been decoded, not from the counts (an entry is 16 times
	// the 3 bytes a hostile count can claim per entry).
	n := count()
	out := make([]OriginKeys, 0, min(n, prealloc))
	for i := 0; i < n && d.err == nil; i++ {
		ok := OriginKeys{Origin: name(), Gen: d.uvarint()}
		m := count()
		ok.Keys = make([]KeyVersion, 0, min(m, prealloc))
		for j := 0; j < m && d.err == nil; j++ {
			kind := Kind(d.byte1())
			ok.Keys = append(ok.Keys, KeyVersion{Key: Key{Kind: kind, ID: name()}, Counter: d.uvarint()})
		}
		out = append(out, ok)
	}
	if d.err == nil && d.off != len(b) {
		d.fail("%d trailing bytes", len(b)-d.off)
	}
	if d.err != nil {
		return nil, fmt.Errorf("catalog: decode origin keys at byte %d: %w", d.off, d.err)
	}
	return out, nil
}
