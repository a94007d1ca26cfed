package agent

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// The files of the data dir.
const (
	nodeIDFile     = "node-id"       // the node's UUID, written once
	generationFile = "generation"    // the last generation used, decimal
	stateLogFile   = "services.log"  // local state: services registered here, an append-only log
	servicesFile   = "services.json" // the local state before the log, migrated at start
	migratedSuffix = ".migrated"     // services.json once migrated
	peersFile      = "peers.json"    // gossip addresses of known peers
	lockFile       = "lock"          // held while an agent uses the dir
	// keyringFile ("local.keyring", keyringfile.go) is the gossip keyring.
	tmpSuffix = ".tmp-" // temp files of atomic writes: <name>.tmp-<random>
)

// dataDir is an agent's data directory, locked for its exclusive use.
type dataDir struct {
	path   string
	unlock func() error
}

// openDataDir creates the directory if needed, locks it and removes temp files left
// by writes a crash interrupted (the files they were replacing are intact).
func openDataDir(path string) (*dataDir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("agent: data dir: %w", err)
	}
	unlock, err := lockDir(filepath.Join(path, lockFile))
	if err != nil {
		return nil, err
	}
	d := &dataDir{path: path, unlock: unlock}
	entries, err := os.ReadDir(path)
	if err != nil {
		_ = unlock()
		return nil, fmt.Errorf("agent: data dir: %w", err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), tmpSuffix) {
			_ = os.Remove(filepath.Join(path, e.Name())) // best effort: a leftover is harmless
		}
	}
	return d, nil
}

func (d *dataDir) file(name string) string { return filepath.Join(d.path, name) }

func (d *dataDir) close() error { return d.unlock() }

// writeFileAtomic replaces path with data so that a crash at any moment leaves either
// the old or the new content: write a temp file in the same directory, fsync it,
// rename it over path, fsync the directory.
func writeFileAtomic(path string, data []byte) error {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, base+tmpSuffix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	fail := func(err error) error {
		_ = f.Close()
		_ = os.Remove(tmp)
		return err
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Chmod(0o600); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	if dir == "" {
		dir = "."
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// nodeID returns the node's persistent ID, creating it on first use. A corrupt file
// is an error rather than silently replaced: the ID is how others recognise the node.
func (d *dataDir) nodeID() (string, error) {
	p := d.file(nodeIDFile)
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		id := strings.ToLower(strings.TrimSpace(string(b)))
		if !catalog.IsUUID(id) {
			return "", fmt.Errorf("agent: %s holds %q, not a UUID: restore it, or delete it to give this node a new ID", p, truncate(string(b), 40))
		}
		return id, nil
	case errors.Is(err, fs.ErrNotExist):
		id := newUUID()
		if err := writeFileAtomic(p, []byte(id+"\n")); err != nil {
			return "", fmt.Errorf("agent: write node ID: %w", err)
		}
		return id, nil
	default:
		return "", fmt.Errorf("agent: read node ID: %w", err)
	}
}

// nextGeneration picks this run's generation and persists it before it is used:
// above every generation persisted before, and at least the current Unix time in
// milliseconds, so even a node whose data dir was lost starts above its previous
// incarnation (unless the clock went back, which the supersede check then repairs).
func (d *dataDir) nextGeneration(now time.Time) (uint64, error) {
	prev, err := d.readGeneration()
	if err != nil {
		return 0, err
	}
	gen := max(prev+1, uint64(now.UnixMilli()))
	return gen, d.saveGeneration(gen)
}

func (d *dataDir) readGeneration() (uint64, error) {
	p := d.file(generationFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("agent: read generation: %w", err)
	}
	g, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		// The file is written atomically, so this is outside damage; the clock-based
		// floor still yields a generation above any sane previous one.
		return 0, nil
	}
	return g, nil
}

func (d *dataDir) saveGeneration(gen uint64) error {
	if err := writeFileAtomic(d.file(generationFile), []byte(strconv.FormatUint(gen, 10)+"\n")); err != nil {
		return fmt.Errorf("agent: save generation: %w", err)
	}
	return nil
}

// peersState is the content of peers.json.
type peersState struct {
	Peers []string `json:"peers"` // gossip addresses, "ip:port", sorted
}

// loadPeers returns the peers saved by the last run; a missing or damaged file means
// none (it is only a hint for rejoining).
func (d *dataDir) loadPeers() []string {
	b, err := os.ReadFile(d.file(peersFile))
	if err != nil {
		return nil
	}
	var ps peersState
	if json.Unmarshal(b, &ps) != nil {
		return nil
	}
	return ps.Peers
}

func (d *dataDir) savePeers(peers []string) error {
	b, err := json.MarshalIndent(peersState{Peers: peers}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(d.file(peersFile), append(b, '\n')); err != nil {
		return fmt.Errorf("agent: save peers: %w", err)
	}
	return nil
}

// readJSON decodes path into v; a missing file leaves v as is and reports false.
// Data after the JSON value is an error: the file was written whole, so it is damage.
func readJSON(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	if err := noTrailingData(b, dec); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	return true, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
