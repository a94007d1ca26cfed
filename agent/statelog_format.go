package agent

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strconv"

	"github.com/rumor-sd/rumor/agent/localstate"
)

// The local state's log, services.log, is a text file of records, one per line:
//
//	<CRC-32C of the JSON, 8 hex digits> <JSON>\n
//
// JSON never holds a raw newline, so a record is exactly one line, written by one
// write(2). The first record is the header, {"Format":"rumor local state","Version":2};
// each later one is a change, {"Put":[entries…],"Del":[service IDs…]}, replayed whole:
// the entries replace those with their key (an entry's Service.ID; "" is the node's
// own entry, its checks and maintenance), the IDs are services deregistered. A
// compacted log is the header and the whole state as changes of up to
// snapshotChunk entries each. Entries are localstate.Service as encoding/json writes
// it, the same as in services.json before the log (format version 1), so every field
// they have or gain (a source such as "docker" included) is carried without a
// change here.
//
// A crash can cut the last write short: bytes after the last whole record with no
// newline among them are a torn tail, dropped at start (truncated; a change is
// acknowledged only once written whole). Anything else that does not read as a
// record is damage, refused with the file and the byte offset.

const (
	logFormat  = "rumor local state"
	logVersion = 2
	// snapshotChunk is how many entries one record of a compacted log holds, so
	// that no line grows with the number of services.
	snapshotChunk = 256
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// logHeader is the log's first record.
type logHeader struct {
	Format  string
	Version int
}

// logChange is every record after the header, as read back.
type logChange struct {
	Put []json.RawMessage `json:",omitempty"`
	Del []string          `json:",omitempty"`
}

// frame renders payload as a record: its checksum, a space, itself and a newline.
func frame(payload []byte) []byte {
	line := make([]byte, 9, len(payload)+10)
	return seal(append(line, payload...), 0)
}

// seal completes the record that starts at b[start:], 9 reserved bytes then its
// payload up to the end of b: it fills in the checksum and the space and appends the
// newline.
func seal(b []byte, start int) []byte {
	hex.Encode(b[start:start+8], binary.BigEndian.AppendUint32(nil, crc32.Checksum(b[start+9:], castagnoli)))
	b[start+8] = ' '
	return append(b, '\n')
}

// unframe returns the JSON of one line (without its newline), checking its checksum.
func unframe(line []byte) ([]byte, error) {
	if len(line) < 10 || line[8] != ' ' {
		return nil, errors.New("not a record (want 8 hex digits of checksum, a space and JSON)")
	}
	var sum [4]byte
	if _, err := hex.Decode(sum[:], line[:8]); err != nil {
		return nil, fmt.Errorf("checksum %q is not hex", line[:8])
	}
	payload := line[9:]
	want := binary.BigEndian.Uint32(sum[:])
	if got := crc32.Checksum(payload, castagnoli); got != want {
		return nil, fmt.Errorf("checksum mismatch (recorded %08x, computed %08x)", want, got)
	}
	return payload, nil
}

// encodedChange is one change ready to append: its record, and the JSON of each
// entry it puts, by key (nil for a service it deletes).
type encodedChange struct {
	line    []byte
	entries map[string][]byte
}

// encodeChange renders the change that touched these keys of st as one record.
func encodeChange(st *localstate.State, touched []string) (encodedChange, error) {
	var puts [][]byte
	var dels []string
	entries := make(map[string][]byte, len(touched))
	size := 32
	for _, key := range touched {
		e := st.Node
		if key != "" {
			e = st.Services[key]
		}
		if e == nil {
			dels = append(dels, key)
			entries[key] = nil
			size += len(key) + 3
			continue
		}
		b, err := json.Marshal(e)
		if err != nil {
			return encodedChange{}, fmt.Errorf("encode local state %q: %w", key, err)
		}
		puts = append(puts, b)
		entries[key] = b
		size += len(b) + 1
	}
	line := make([]byte, 9, 9+size)
	return encodedChange{line: seal(appendChange(line, puts, dels), 0), entries: entries}, nil
}

// appendChange appends the JSON of a change record, from its encoded entries, to b.
func appendChange(b []byte, puts [][]byte, dels []string) []byte {
	b = append(b, `{"Put":[`...)
	for i, p := range puts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, p...)
	}
	b = append(b, `],"Del":`...)
	d, _ := json.Marshal(dels) // a []string always encodes
	b = append(b, d...)
	return append(b, '}')
}

// encodeEntries renders st's entries as JSON, by key ("" for the node's own).
func encodeEntries(st *localstate.State) (map[string][]byte, error) {
	keys := slices.Collect(maps.Keys(st.Services))
	if st.Node != nil {
		keys = append(keys, "")
	}
	ch, err := encodeChange(st, keys)
	return ch.entries, err
}

// encodeSnapshot renders a whole log holding these entries (JSON by key): the
// header, then the entries sorted by key in records of snapshotChunk. It encodes no
// entry: a compaction copies bytes.
func encodeSnapshot(entries map[string][]byte) []byte {
	h, _ := json.Marshal(logHeader{Format: logFormat, Version: logVersion}) // cannot fail
	size := len(h) + 10
	for _, b := range entries {
		size += len(b) + 1
	}
	out := make([]byte, 0, size+(len(entries)/snapshotChunk+1)*40)
	out = append(out, frame(h)...)
	for chunk := range slices.Chunk(slices.Sorted(maps.Keys(entries)), snapshotChunk) {
		puts := make([][]byte, len(chunk))
		for i, key := range chunk {
			puts[i] = entries[key]
		}
		start := len(out)
		out = seal(appendChange(append(out, make([]byte, 9)...), puts, nil), start)
	}
	return out
}

// replayed is a log read back: the state, the JSON of each live entry, and where the
// whole records end (the rest, if any, is a torn tail).
type replayed struct {
	st      *localstate.State
	entries map[string][]byte
	end     int64 // bytes of whole records
	size    int64 // bytes of the file
}

// replayLog reads the log at path. A missing file is (nil, fs.ErrNotExist).
func replayLog(path string) (*replayed, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := &replayed{st: &localstate.State{Services: map[string]*localstate.Service{}, Node: &localstate.Service{}},
		entries: map[string][]byte{}, size: int64(len(b))}
	damaged := func(off int, err error) error {
		return fmt.Errorf("%s: damaged at byte %d: %w (rumor writes whole records and cuts only a torn last one; this is outside damage: restore the file from a backup, or move it away to start with no services)", path, off, err)
	}
	for off := 0; off < len(b); {
		n := bytes.IndexByte(b[off:], '\n')
		if n < 0 {
			if err := tornTail(b[off:]); err != nil {
				return nil, damaged(off, err)
			}
			break // a write cut short by a crash: the torn tail
		}
		payload, err := unframe(b[off : off+n])
		if err == nil {
			if off == 0 {
				err = readHeader(payload)
			} else {
				err = r.apply(payload)
			}
		}
		if err != nil {
			return nil, damaged(off, err)
		}
		off += n + 1
		r.end = int64(off)
	}
	if r.end == 0 {
		return nil, damaged(0, errors.New("no header: not a rumor local state log"))
	}
	return r, nil
}

// tornTail checks that bytes after the last newline can be what a crash leaves of
// one record's write: its beginning (hex digits of the checksum, then a space and
// JSON), or zeros where the file grew before the data reached the disk. Anything else
// (text appended by hand, another file's content) is damage, not truncated silently.
func tornTail(b []byte) error {
	if b[0] == 0 {
		return nil
	}
	for i, c := range b[:min(len(b), 9)] {
		isHex := '0' <= c && c <= '9' || 'a' <= c && c <= 'f'
		if i < 8 && !isHex || i == 8 && c != ' ' {
			return fmt.Errorf("%d bytes after the last record that are not the start of one (%s): not a write cut short",
				len(b), truncate(strconv.Quote(string(b[:min(len(b), 20)])), 40))
		}
	}
	return nil
}

func readHeader(payload []byte) error {
	var h logHeader
	if err := strictJSON(payload, &h); err != nil || h.Format != logFormat {
		return fmt.Errorf("not a rumor local state log header: %s", truncate(string(payload), 80))
	}
	if h.Version != logVersion {
		return fmt.Errorf("format version %d; this rumor reads version %d", h.Version, logVersion)
	}
	return nil
}

// apply replays one change record.
func (r *replayed) apply(payload []byte) error {
	var ch logChange
	if err := strictJSON(payload, &ch); err != nil {
		return err
	}
	// One record names each key once: rumor never writes a key twice in one change
	// (nor in a snapshot's chunk), so a repeat is damage, not a merge to guess at.
	seen := make(map[string]bool, len(ch.Put)+len(ch.Del))
	once := func(key string) error {
		if seen[key] {
			if key == "" {
				return errors.New("the node's own entry appears twice in one record")
			}
			return fmt.Errorf("service ID %q appears twice in one record", key)
		}
		seen[key] = true
		return nil
	}
	for _, raw := range ch.Put {
		var e localstate.Service
		if err := strictJSON(raw, &e); err != nil {
			return err
		}
		key := e.Service.ID
		if err := once(key); err != nil {
			return err
		}
		if key == "" {
			r.st.Node = &e
		} else {
			r.st.Services[key] = &e
		}
		r.entries[key] = bytes.Clone(raw) // not the whole file's buffer
	}
	for _, id := range ch.Del {
		if id == "" {
			return errors.New("a deletion of the node's own entry")
		}
		if err := once(id); err != nil {
			return err
		}
		delete(r.st.Services, id)
		delete(r.entries, id)
	}
	return nil
}

// strictJSON decodes b into v, refusing unknown fields: a record of a newer format
// is not half understood.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	return noTrailingData(b, dec)
}

// noTrailingData refuses anything but white space in b after what dec decoded
// (Decoder.More would let a stray ']' or '}' through).
func noTrailingData(b []byte, dec *json.Decoder) error {
	if rest := bytes.TrimSpace(b[dec.InputOffset():]); len(rest) > 0 {
		return fmt.Errorf("data after the JSON value at byte %d: %s", dec.InputOffset(), truncate(strconv.Quote(string(rest[:min(len(rest), 20)])), 40))
	}
	return nil
}

// isNotExist reports whether err says a file is missing.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
