package gossip

import (
	"bytes"
	"errors"
	"fmt"
)

// ErrNoEncryption is returned by the keyring operations of a node started without
// keys: memberlist can only encrypt if it started with a keyring.
var ErrNoEncryption = errors.New("gossip: encryption is off: start every agent with --encrypt to use a keyring")

// The keyring operations rotate this node's keys without a restart. A pool-wide
// rotation runs them on every node in turn: install the new key everywhere, then make
// it primary everywhere, then remove the old one — at every step all nodes can still
// read each other, since each tries every installed key to decrypt.

// InstallKey adds a 16, 24 or 32-byte key that this node accepts but does not yet use.
func (g *Gossip) InstallKey(key []byte) error {
	return g.keyOp("install", key, func() error { return g.keyring.AddKey(key) })
}

// UseKey makes an installed key the one this node encrypts with.
func (g *Gossip) UseKey(key []byte) error {
	return g.keyOp("use", key, func() error { return g.keyring.UseKey(key) })
}

// RemoveKey removes an installed key that is not the primary one.
func (g *Gossip) RemoveKey(key []byte) error {
	return g.keyOp("remove", key, func() error { return g.keyring.RemoveKey(key) })
}

// Keys returns the primary key and every installed key (primary first), or
// ErrNoEncryption.
func (g *Gossip) Keys() (primary []byte, all [][]byte, err error) {
	if g.keyring == nil {
		return nil, nil, ErrNoEncryption
	}
	// memberlist hands out its own slice, which RemoveKey rewrites in place: copy it
	// while no operation of ours runs.
	g.keyq.opMu.Lock()
	defer g.keyq.opMu.Unlock()
	for _, k := range g.keyring.GetKeys() {
		all = append(all, bytes.Clone(k))
	}
	return bytes.Clone(g.keyring.GetPrimaryKey()), all, nil
}

func (g *Gossip) keyOp(op string, key []byte, f func() error) error {
	if g.keyring == nil {
		return ErrNoEncryption
	}
	if l := len(key); l != 16 && l != 24 && l != 32 {
		return fmt.Errorf("gossip: %s key: %d bytes, want 16, 24 or 32", op, l)
	}
	g.keyq.opMu.Lock()
	defer g.keyq.opMu.Unlock()
	if err := f(); err != nil {
		return fmt.Errorf("gossip: %s key: %w", op, err)
	}
	if g.cfg.OnKeyringChange != nil {
		var all [][]byte // memberlist's slice is rewritten in place: hand out copies
		for _, k := range g.keyring.GetKeys() {
			all = append(all, bytes.Clone(k))
		}
		if err := g.cfg.OnKeyringChange(all); err != nil {
			return fmt.Errorf("gossip: %s key: applied, but not saved: %w", op, err)
		}
	}
	return nil
}
