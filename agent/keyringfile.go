package agent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
)

// The gossip keyring is persisted in the data dir's local.keyring (as Consul's
// serf/local.keyring): a JSON array of base64 keys, the primary first, written
// atomically (mode 0600) after every change, whether asked on this node or by a
// pool-wide rotation. A start with a keyring file uses it; --encrypt only seeds the
// keyring of a data dir that has none, so a restart after a rotation keeps the
// rotated keys instead of going back to a key the pool no longer uses.
const keyringFile = "local.keyring"

// keyringKeys decides the keys gossip starts with: those of the data dir's keyring
// if it has one, else the configured key (saved as the keyring). It warns when both
// exist and disagree.
func (a *Agent) keyringKeys() ([][]byte, error) {
	configured, err := a.cfg.keys() // checked by New
	if err != nil {
		return nil, err
	}
	if a.dir == nil {
		return configured, nil
	}
	saved, found, err := a.dir.loadKeyring()
	switch {
	case err != nil:
		return nil, err
	case !found && len(configured) > 0:
		if err := a.dir.saveKeyring(configured); err != nil {
			return nil, err
		}
		return configured, nil
	case !found:
		return nil, nil
	}
	if len(configured) > 0 && !slices.ContainsFunc(saved, func(k []byte) bool { return bytes.Equal(k, configured[0]) }) {
		a.log.Warn("the data dir's keyring does not hold the --encrypt key; using the keyring (changed by `rumor keyring`), not --encrypt",
			"file", a.dir.file(keyringFile), "keys", len(saved))
	}
	return saved, nil
}

// loadKeyring reads local.keyring: its keys, primary first, and whether it exists.
func (d *dataDir) loadKeyring() ([][]byte, bool, error) {
	p := d.file(keyringFile)
	var encoded []string
	found, err := readJSON(p, &encoded)
	if err != nil {
		return nil, false, fmt.Errorf("agent: gossip keyring: %w (restore it from a backup, or remove it to start with --encrypt's key)", err)
	}
	if !found {
		return nil, false, nil
	}
	if len(encoded) == 0 {
		return nil, false, fmt.Errorf("agent: gossip keyring %s holds no key (remove it to start with --encrypt's key)", p)
	}
	keys := make([][]byte, len(encoded))
	for i, e := range encoded {
		cfg := Config{EncryptKey: e}
		k, err := cfg.keys()
		if err != nil {
			return nil, false, fmt.Errorf("agent: gossip keyring %s: key %d: %w", p, i+1, err)
		}
		keys[i] = k[0]
	}
	return keys, true, nil
}

// saveKeyring replaces local.keyring with keys, primary first.
func (d *dataDir) saveKeyring(keys [][]byte) error {
	encoded := make([]string, len(keys))
	for i, k := range keys {
		encoded[i] = base64.StdEncoding.EncodeToString(k)
	}
	b, err := json.Marshal(encoded)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(d.file(keyringFile), append(b, '\n')); err != nil {
		return fmt.Errorf("agent: save the gossip keyring: %w", err)
	}
	return nil
}
