package gossip

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// A pool-wide keyring operation (Consul's `consul keyring`, serf's internal key
// queries): the node asked sends a key query to every live member over memberlist's
// reliable stream — encrypted with the pool's keyring like all gossip — and each
// member applies it to its own keyring and answers with its keys, or its error. The
// asking node collects answers until every member answered or the deadline passed, and
// reports per-node results. A member that does not answer in time is reported, never
// waited for beyond the deadline.
//
// Anyone holding the pool's key can send a key query, as with serf: the key is the
// credential. A query carries its deadline; members drop one whose deadline passed
// (allowing MaxKeyQuerySkew of clock difference) and one they have already answered,
// so a recorded query cannot be replayed later to roll a key back.

// KeyOp is a keyring operation.
type KeyOp byte

// The keyring operations.
const (
	KeyList    KeyOp = 1 // report the installed keys
	KeyInstall KeyOp = 2 // add a key, not yet used for encryption
	KeyUse     KeyOp = 3 // make an installed key the one used to encrypt
	KeyRemove  KeyOp = 4 // remove an installed key that is not the primary
)

func (op KeyOp) String() string {
	switch op {
	case KeyList:
		return "list"
	case KeyInstall:
		return "install"
	case KeyUse:
		return "use"
	case KeyRemove:
		return "remove"
	}
	return fmt.Sprintf("keyop(%d)", byte(op))
}

// Limits of key queries.
const (
	// DefaultKeyQueryTimeout bounds a pool-wide key operation whose context has no
	// deadline.
	DefaultKeyQueryTimeout = 10 * time.Second
	// MaxKeyQuerySkew is how far a member's clock may be ahead of the asking node's
	// before it treats a query as expired.
	MaxKeyQuerySkew = time.Minute
	// maxKeys bounds the keys a response may list; memberlist keyrings hold a few.
	maxKeys = 64
	// maxKeyErrLen bounds an error message in a response.
	maxKeyErrLen = 1024
)

// ErrPrimaryKey is returned by KeyringQuery for an attempt to remove the key this
// node encrypts with.
var ErrPrimaryKey = errors.New("gossip: remove key: it is the primary key, which encrypts gossip: make another key primary first (use)")

// ErrKeyringPartial is wrapped by KeyringQuery's error when some members failed or
// did not answer; the result says which.
var ErrKeyringPartial = errors.New("not every member succeeded")

// KeyringResult is the outcome of a pool-wide keyring operation.
type KeyringResult struct {
	// NumNodes is how many members were asked, this node included.
	NumNodes int
	// Keys counts, per key (base64), the members that have it installed.
	Keys map[string]int
	// PrimaryKeys counts, per key (base64), the members that encrypt with it.
	PrimaryKeys map[string]int
	// Errors holds, per member that failed or did not answer, why.
	Errors map[string]string
}

// keyQuery is a query in flight from this node, waiting for answers.
type keyQuery struct {
	answers chan keyAnswer // buffered: one slot per member asked
}

type keyAnswer struct {
	node    string
	err     string
	primary []byte
	keys    [][]byte
}

// keyQueries tracks this node's queries in flight and the queries it has answered.
type keyQueries struct {
	opMu     sync.Mutex // serialises changes to the keyring and copies of it
	mu       sync.Mutex
	pending  map[uint64]*keyQuery
	answered map[string]time.Time // sender/id → deadline, pruned once past
}

// KeyringQuery runs op on every live member, this node included, and collects their
// results until all answered or ctx ends (DefaultKeyQueryTimeout if ctx has no
// deadline). key is ignored for KeyList. Errors: ErrNoEncryption when this node has
// no keyring; a malformed key or an attempt to remove this node's primary key fails
// before anything is sent; otherwise the result comes back with an error wrapping
// ErrKeyringPartial if any member failed or did not answer.
func (g *Gossip) KeyringQuery(ctx context.Context, op KeyOp, key []byte) (KeyringResult, error) {
	if g.keyring == nil {
		return KeyringResult{}, ErrNoEncryption
	}
	switch op {
	case KeyList:
		key = nil
	case KeyInstall, KeyUse, KeyRemove:
		if l := len(key); l != 16 && l != 24 && l != 32 {
			return KeyringResult{}, fmt.Errorf("gossip: %s key: %d bytes, want 16, 24 or 32", op, l)
		}
		if op == KeyRemove && bytes.Equal(key, g.keyring.GetPrimaryKey()) {
			return KeyringResult{}, ErrPrimaryKey
		}
	default:
		return KeyringResult{}, fmt.Errorf("gossip: unknown keyring operation %d", op)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultKeyQueryTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()

	var targets []string
	g.mu.Lock()
	for name, ms := range g.members {
		if name != g.cfg.NodeName && (ms.state == catalog.LivenessAlive || ms.state == catalog.LivenessSuspect) {
			targets = append(targets, name)
		}
	}
	g.mu.Unlock()
	slices.Sort(targets)

	id := rand.Uint64()
	q := &keyQuery{answers: make(chan keyAnswer, len(targets))}
	g.keyq.mu.Lock()
	g.keyq.pending[id] = q
	g.keyq.mu.Unlock()
	defer func() {
		g.keyq.mu.Lock()
		delete(g.keyq.pending, id)
		g.keyq.mu.Unlock()
	}()

	msg := encodeKeyQuery(g.cfg.NodeName, id, deadline, op, key)
	res := KeyringResult{NumNodes: len(targets) + 1, Keys: map[string]int{}, PrimaryKeys: map[string]int{}, Errors: map[string]string{}}
	waiting := map[string]bool{}
	for _, name := range targets {
		to := g.nodeByName(name)
		if to == nil {
			res.Errors[name] = "no address known"
			continue
		}
		waiting[name] = true
		g.sendReliable(to, msg, "keyquery")
	}
	res.add(g.applyKeyOp(g.cfg.NodeName, op, key))

	for len(waiting) > 0 {
		select {
		case a := <-q.answers:
			if waiting[a.node] {
				delete(waiting, a.node)
				res.add(a)
			}
		case <-ctx.Done():
			for name := range waiting {
				res.Errors[name] = "no answer before the deadline"
			}
			waiting = nil
		case <-g.ctx.Done():
			return res, fmt.Errorf("gossip: %s key: shutting down", op)
		}
	}
	if n := len(res.Errors); n > 0 {
		var parts []string
		for _, name := range slices.Sorted(maps.Keys(res.Errors)) {
			parts = append(parts, name+": "+res.Errors[name])
		}
		return res, fmt.Errorf("gossip: %s key: %d of %d nodes failed (%s): %w", op, n, res.NumNodes, strings.Join(parts, "; "), ErrKeyringPartial)
	}
	return res, nil
}

// add counts one member's answer.
func (r *KeyringResult) add(a keyAnswer) {
	if a.err != "" {
		r.Errors[a.node] = a.err
		return
	}
	for _, k := range a.keys {
		r.Keys[base64.StdEncoding.EncodeToString(k)]++
	}
	if a.primary != nil {
		r.PrimaryKeys[base64.StdEncoding.EncodeToString(a.primary)]++
	}
}

// applyKeyOp runs op on this node's keyring and returns its answer.
func (g *Gossip) applyKeyOp(self string, op KeyOp, key []byte) keyAnswer {
	a := keyAnswer{node: self}
	var err error
	switch op {
	case KeyList:
	case KeyInstall:
		err = g.InstallKey(key)
	case KeyUse:
		err = g.UseKey(key)
	case KeyRemove:
		err = g.RemoveKey(key)
	default:
		err = fmt.Errorf("unknown keyring operation %d", op)
	}
	if err != nil {
		a.err = err.Error()
		return a
	}
	primary, keys, err := g.Keys()
	if err != nil {
		a.err = err.Error()
		return a
	}
	a.primary, a.keys = primary, keys
	if op != KeyList {
		g.cfg.Logger.Info("gossip: keyring changed", "op", op.String(), "keys", len(keys))
	}
	return a
}

// onKeyQuery answers a member's key query: it applies the operation (once per query,
// and only before its deadline) and sends back this node's keys or its error.
func (g *Gossip) onKeyQuery(sender string, id uint64, deadline time.Time, op KeyOp, key []byte) {
	now := time.Now()
	if now.After(deadline.Add(MaxKeyQuerySkew)) {
		g.drop("expired_keyquery", fmt.Errorf("key query from %s expired at %s", sender, deadline))
		return
	}
	tag := fmt.Sprintf("%s/%d", sender, id)
	g.keyq.mu.Lock()
	for k, dl := range g.keyq.answered {
		if now.After(dl.Add(MaxKeyQuerySkew)) {
			delete(g.keyq.answered, k)
		}
	}
	_, dup := g.keyq.answered[tag]
	if !dup {
		g.keyq.answered[tag] = deadline
	}
	g.keyq.mu.Unlock()
	if dup {
		g.drop("replayed_keyquery", errors.New(tag))
		return
	}
	to := g.nodeByName(sender)
	if to == nil {
		g.drop("unknown_sender", errors.New(sender))
		return
	}
	var a keyAnswer
	if g.keyring == nil {
		a = keyAnswer{node: g.cfg.NodeName, err: ErrNoEncryption.Error()}
	} else {
		a = g.applyKeyOp(g.cfg.NodeName, op, key)
	}
	g.sendReliable(to, encodeKeyResponse(g.cfg.NodeName, id, a), "keyresponse")
}

// onKeyResponse hands a member's answer to the query waiting for it; answers to
// queries no longer waiting are dropped.
func (g *Gossip) onKeyResponse(id uint64, a keyAnswer) {
	g.keyq.mu.Lock()
	q := g.keyq.pending[id]
	g.keyq.mu.Unlock()
	if q == nil {
		g.drop("late_keyresponse", fmt.Errorf("answer from %s to no pending query", a.node))
		return
	}
	select {
	case q.answers <- a:
	default: // more answers than members asked: a duplicate; the first one counts
	}
}

// Wire format:
//
//	keyquery    = 7 sender:str id:uvarint deadline_ms:uvarint op:byte key:bytes
//	keyresponse = 8 sender:str id:uvarint err:bytes nkeys:uvarint key:bytes… primary:uvarint
//
// bytes are uvarint-length-prefixed; primary is the index of the primary key among
// the keys plus one, 0 for none.
const (
	msgKeyQuery    byte = 7
	msgKeyResponse byte = 8
)

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// keyReader reads the fields of a key message, remembering the first error.
type keyReader struct {
	b   []byte
	err error
}

func (r *keyReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad varint", errMalformed)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *keyReader) bytes(max int) []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: field of %d bytes", errMalformed, n)
		return nil
	}
	out := bytes.Clone(r.b[:n])
	r.b = r.b[n:]
	return out
}

func (r *keyReader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errMalformed, len(r.b))
	}
	return r.err
}

func encodeKeyQuery(sender string, id uint64, deadline time.Time, op KeyOp, key []byte) []byte {
	b := appendSender(nil, msgKeyQuery, sender)
	b = binary.AppendUvarint(b, id)
	b = binary.AppendUvarint(b, uint64(max(deadline.UnixMilli(), 0)))
	b = append(b, byte(op))
	return appendBytes(b, key)
}

func decodeKeyQuery(b []byte) (sender string, id uint64, deadline time.Time, op KeyOp, key []byte, err error) {
	sender, rest, err := readSender(b, msgKeyQuery)
	if err != nil {
		return "", 0, time.Time{}, 0, nil, err
	}
	r := &keyReader{b: rest}
	id = r.uvarint()
	ms := r.uvarint()
	if r.err == nil {
		if len(r.b) == 0 {
			r.err = fmt.Errorf("%w: no operation", errMalformed)
		} else {
			op, r.b = KeyOp(r.b[0]), r.b[1:]
		}
	}
	key = r.bytes(32)
	if err := r.end(); err != nil {
		return "", 0, time.Time{}, 0, nil, err
	}
	if op < KeyList || op > KeyRemove || ms > 1<<62 {
		return "", 0, time.Time{}, 0, nil, fmt.Errorf("%w: bad operation %d or deadline", errMalformed, op)
	}
	return sender, id, time.UnixMilli(int64(ms)), op, key, nil
}

func encodeKeyResponse(sender string, id uint64, a keyAnswer) []byte {
	b := appendSender(nil, msgKeyResponse, sender)
	b = binary.AppendUvarint(b, id)
	errMsg := a.err
	if len(errMsg) > maxKeyErrLen {
		errMsg = errMsg[:maxKeyErrLen]
	}
	b = appendBytes(b, []byte(errMsg))
	keys := a.keys[:min(len(a.keys), maxKeys)]
	b = binary.AppendUvarint(b, uint64(len(keys)))
	primary := 0
	for i, k := range keys {
		b = appendBytes(b, k)
		if a.primary != nil && bytes.Equal(k, a.primary) {
			primary = i + 1
		}
	}
	return binary.AppendUvarint(b, uint64(primary))
}

func decodeKeyResponse(b []byte) (id uint64, a keyAnswer, err error) {
	sender, rest, err := readSender(b, msgKeyResponse)
	if err != nil {
		return 0, a, err
	}
	r := &keyReader{b: rest}
	id = r.uvarint()
	a.node = sender
	a.err = string(r.bytes(maxKeyErrLen))
	n := r.uvarint()
	if r.err == nil && n > maxKeys {
		r.err = fmt.Errorf("%w: %d keys", errMalformed, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		k := r.bytes(32)
		if l := len(k); r.err == nil && l != 16 && l != 24 && l != 32 {
			r.err = fmt.Errorf("%w: key of %d bytes", errMalformed, l)
		}
		a.keys = append(a.keys, k)
	}
	primary := r.uvarint()
	if err := r.end(); err != nil {
		return 0, keyAnswer{}, err
	}
	if primary > uint64(len(a.keys)) {
		return 0, keyAnswer{}, fmt.Errorf("%w: primary key %d of %d", errMalformed, primary, len(a.keys))
	}
	if primary > 0 {
		a.primary = a.keys[primary-1]
	}
	return id, a, nil
}
