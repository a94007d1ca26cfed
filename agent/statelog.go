package agent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/agent/localstate"
)

// stateLog is the local state's Store: the data dir's services.log (format in
// statelog_format.go), an append-only log of changes whose cost per change does not
// grow with the number of services.
//
//   - Save appends the change's record (the touched entries only) with one write(2),
//     under the agent's lock: from then on a kill -9 cannot lose it. A failed write
//     is cut off again, and the change undone by the core.
//   - flush makes records durable (fsync) with group commit: the first caller that
//     finds records unsynced fsyncs for everyone, and those who come while it runs
//     wait for it and the next one, so concurrent changes share one fsync. The agent
//     acknowledges a registration only after flush, outside its locks; check
//     statuses, runtime state, are flushed by the next flush of anyone, at most a
//     second later (the agent's maintenance loop).
//   - The log keeps the JSON of every live entry as it last appended it. Once the log
//     holds twice as many superseded bytes as live ones (and at least minGarbage), a
//     compaction rewrites it in the background from a copy of those (no entry is
//     encoded again: it copies bytes): it writes the new log beside the old one,
//     appends what was logged meanwhile, fsyncs it, then, under the lock, appends the
//     last few records, fsyncs again and renames it over the old log. A crash at any
//     moment leaves the old or the new log, both whole. Each compaction writes the
//     live bytes after twice as many were appended, so it costs at most half a byte
//     more per byte appended, and the log stays within three times the live bytes.
//   - After a write that could not be cut off, or a failed fsync (after which the
//     kernel may have dropped what it had not written), the log cannot be trusted:
//     the next Save rewrites it whole.
type stateLog struct {
	path string
	log  *slog.Logger
	m    stateMetrics
	// minGarbage is the least superseded bytes worth a compaction.
	minGarbage int64

	mu         sync.Mutex
	cond       *sync.Cond        // broadcast when a sync or a compaction ends
	f          *os.File          // the log, opened for appending
	size       int64             // bytes in f
	appended   uint64            // records appended since open
	synced     uint64            // of those, how many are known durable
	syncing    bool              // a flush is fsyncing f
	entries    map[string][]byte // JSON of each live entry, by key, as last appended
	live       int64             // their bytes: what a compacted log would hold
	compacting bool
	installing bool  // a compaction's new log is in place, its rename not yet durable
	retryAt    int64 // after a failed compaction, the size to reach before the next
	broken     error // the log may not hold what was appended: Save rewrites it whole
	closed     bool
	wg         sync.WaitGroup // the compaction

	// beforeInstall, if set, runs in a compaction between writing the new log and
	// installing it: tests hold it there while they append.
	beforeInstall func()
}

// defaultMinGarbage is the least superseded bytes worth compacting: below it a log
// is small enough to replay in milliseconds.
const defaultMinGarbage = 1 << 20

var _ localstate.Store = (*stateLog)(nil)

// stateMetrics are the log's series on the agent's registry.
type stateMetrics struct {
	records, bytes, fsyncs, compactions prometheus.Counter
	syncSeconds                         prometheus.Histogram
	size                                prometheus.Gauge
}

func newStateMetrics(reg prometheus.Registerer) stateMetrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "rumor", Subsystem: "local_state", Name: name, Help: help})
	}
	m := stateMetrics{
		records:     c("records_total", "Changes appended to the local state's log (services.log)."),
		bytes:       c("bytes_total", "Bytes appended to the local state's log."),
		fsyncs:      c("fsyncs_total", "fsyncs of the local state's log: group commits and compactions."),
		compactions: c("compactions_total", "Compactions of the local state's log."),
		syncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "rumor", Subsystem: "local_state", Name: "fsync_duration_seconds",
			Help: "How long one fsync of the local state's log took.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 8)}),
		size: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "rumor", Subsystem: "local_state", Name: "log_bytes",
			Help: "Size of the local state's log; compaction brings it back to the live entries."}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.bytes, m.fsyncs, m.compactions, m.syncSeconds, m.size)
	}
	return m
}

// openStateLog opens the log at path for appending after the replay r of it, whose
// whole records end at r.end: a torn tail beyond is cut off first.
func openStateLog(path string, r *replayed, logger *slog.Logger, m stateMetrics) (*stateLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if r.end < r.size {
		logger.Warn("dropped the torn end of the local state's log (a write cut short by a crash, never acknowledged)",
			"file", path, "offset", r.end, "bytes", r.size-r.end)
		if err = f.Truncate(r.end); err == nil {
			err = f.Sync()
		}
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("cut the torn end of %s: %w", path, err)
		}
	}
	s := &stateLog{path: path, log: logger, m: m, minGarbage: defaultMinGarbage, f: f, size: r.end}
	s.setEntries(r.entries)
	s.cond = sync.NewCond(&s.mu)
	m.size.Set(float64(s.size))
	return s, nil
}

// Save implements localstate.Store: it appends the change to the log (see stateLog).
func (s *stateLog) Save(st *localstate.State, touched []string) error {
	ch, err := encodeChange(st, touched)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return errors.New("local state log is closed")
	case s.broken != nil:
		// Writing the state whole saves this change too.
		entries := maps.Clone(s.entries)
		s.account(entries, ch.entries)
		if err := s.rewriteLocked(entries); err != nil {
			return fmt.Errorf("rewrite %s after %v: %w", s.path, s.broken, err)
		}
		return nil
	}
	n, err := s.f.Write(ch.line)
	if err != nil {
		if terr := s.f.Truncate(s.size); terr != nil {
			s.broken = fmt.Errorf("cut off a failed append: %w", terr)
		}
		return fmt.Errorf("append to %s: %w", s.path, err)
	}
	s.size += int64(n)
	s.appended++
	s.m.records.Inc()
	s.m.bytes.Add(float64(n))
	s.m.size.Set(float64(s.size))
	s.live += s.account(s.entries, ch.entries)
	if !s.compacting && s.size-s.live > max(2*s.live, s.minGarbage) && s.size >= s.retryAt {
		s.compacting = true
		snap, mark := maps.Clone(s.entries), s.size
		s.wg.Go(func() { s.compact(snap, mark) })
	}
	return nil
}

// account applies a change's entries (nil: deleted) to entries and returns by how
// many bytes they grew.
func (s *stateLog) account(entries, change map[string][]byte) int64 {
	var grew int64
	for key, b := range change {
		grew -= int64(len(entries[key]))
		if b == nil {
			delete(entries, key)
		} else {
			entries[key] = b
			grew += int64(len(b))
		}
	}
	return grew
}

// setEntries makes entries the live ones.
func (s *stateLog) setEntries(entries map[string][]byte) {
	s.entries, s.live = entries, 0
	for _, b := range entries {
		s.live += int64(len(b))
	}
}

// last is the sequence number of the last record appended: flush(last()) makes every
// change saved so far durable.
func (s *stateLog) last() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appended
}

// flush returns once record seq and every one before it are durable (see stateLog:
// group commit). An fsync error is returned to every waiter it concerns, and the
// next Save rewrites the log.
func (s *stateLog) flush(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.synced < seq {
		if s.syncing || s.installing {
			s.cond.Wait()
			continue
		}
		if s.broken != nil {
			return fmt.Errorf("local state log %s: %w", s.path, s.broken)
		}
		s.syncing = true
		f, target := s.f, s.appended
		s.mu.Unlock()
		start := time.Now()
		err := f.Sync()
		s.m.syncSeconds.Observe(time.Since(start).Seconds())
		s.m.fsyncs.Inc()
		s.mu.Lock()
		s.syncing = false
		s.cond.Broadcast()
		if err != nil {
			s.broken = fmt.Errorf("fsync: %w", err)
			return fmt.Errorf("local state log %s: %w", s.path, s.broken)
		}
		s.synced = max(s.synced, target)
	}
	return nil
}

// compact writes snap, the entries as of byte mark of the log, as a new log and puts
// it in the old one's place with what was appended after mark (see stateLog). Only
// the last step holds the lock: appending the few records logged since the copy
// before it, one fsync of them and the rename; the data dir's fsync that makes the
// rename durable comes after, while flushes wait for it (installing).
func (s *stateLog) compact(snap map[string][]byte, mark int64) {
	start := time.Now()
	b := encodeSnapshot(snap)
	size := int64(len(b))
	tmp, err := writeTemp(s.path, b)
	s.m.fsyncs.Inc()
	if err == nil {
		// Records below the log's size never change, so they are copied without
		// the lock (a compaction and a rewrite never overlap).
		s.mu.Lock()
		upTo := s.size
		s.mu.Unlock()
		var n int64
		if n, err = copyTail(tmp, s.path, mark, upTo); err == nil && n > 0 {
			err = tmp.Sync()
			s.m.fsyncs.Inc()
		}
		size, mark = size+n, upTo
	}
	if s.beforeInstall != nil {
		s.beforeInstall()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		// Only now: a second compaction started meanwhile would take its mark in
		// the log being replaced.
		s.compacting = false
		s.cond.Broadcast()
	}()
	if err == nil && (s.broken != nil || s.closed) {
		err = errors.New("abandoned: the log is being rewritten or closed")
	}
	if err == nil {
		err = s.installLocked(tmp, size, mark)
	}
	if err != nil {
		if tmp != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
		s.retryAt = s.size + max(2*s.live, s.minGarbage)
		s.log.Warn("compaction of the local state's log failed; it goes on growing until the next one", "file", s.path, "error", err)
		return
	}
	s.installing = true
	swapped := s.appended
	s.mu.Unlock()
	err = syncDir(filepath.Dir(s.path))
	s.mu.Lock()
	s.installing = false
	s.installedLocked(swapped, err)
	s.m.compactions.Inc()
	s.log.Debug("compacted the local state's log", "file", s.path, "bytes", s.size, "entries", len(snap), "took", time.Since(start))
}

// installedLocked records the end of an install: once the data dir's fsync made the
// rename durable, every record appended before the switch (swapped) is durable, in
// the new log. If it failed, the rename may not survive a power failure, and the
// log is rewritten by the next Save.
func (s *stateLog) installedLocked(swapped uint64, dirErr error) {
	s.m.fsyncs.Inc()
	if dirErr != nil {
		s.broken = fmt.Errorf("fsync of the data dir after replacing the log: %w", dirErr)
		return
	}
	s.synced = max(s.synced, swapped)
}

// copyTail appends the bytes [from, to) of the file at path to dst.
func copyTail(dst *os.File, path string, from, to int64) (int64, error) {
	if from >= to {
		return 0, nil
	}
	r, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer func() { _ = r.Close() }()
	return io.Copy(dst, io.NewSectionReader(r, from, to-from))
}

// writeTemp writes b to a new temp file beside path and fsyncs it, returning it open
// for appending (O_APPEND: after a failed write is cut off, the next one still goes
// at the end).
func writeTemp(path string, b []byte) (*os.File, error) {
	var f *os.File
	var err error
	for range 10 {
		f, err = os.OpenFile(path+tmpSuffix+strconv.FormatUint(rand.Uint64(), 36), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

// installLocked makes tmp (size bytes, the log up to byte mark) the log: it appends
// the log's records after mark, fsyncs, renames tmp over the log and switches to
// it. The caller makes the rename durable (an fsync of the data dir) and then calls
// installedLocked.
func (s *stateLog) installLocked(tmp *os.File, size, mark int64) error {
	for s.syncing { // never close the file a flush is fsyncing
		s.cond.Wait()
	}
	n, err := copyTail(tmp, s.path, mark, s.size)
	if err != nil {
		return err
	}
	if n > 0 {
		if err := tmp.Sync(); err != nil {
			return err
		}
		s.m.fsyncs.Inc()
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return err
	}
	_ = s.f.Close()
	s.f, s.size = tmp, size+n
	s.m.size.Set(float64(s.size))
	return nil
}

// rewriteLocked replaces the log with entries written whole, synchronously: the
// repair after the log could not be trusted.
func (s *stateLog) rewriteLocked(entries map[string][]byte) error {
	for s.compacting {
		s.cond.Wait()
	}
	b := encodeSnapshot(entries)
	tmp, err := writeTemp(s.path, b)
	if err != nil {
		return err
	}
	s.m.fsyncs.Inc()
	if err := s.installLocked(tmp, int64(len(b)), s.size); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		// The log may still be the old one after a power failure: the next Save
		// tries again. (Until then the new one may hold this change, undone.)
		s.broken = fmt.Errorf("fsync of the data dir after replacing the log: %w", err)
		return s.broken
	}
	s.setEntries(entries)
	s.broken = nil
	s.installedLocked(s.appended, nil)
	return nil
}

// close waits for a compaction in progress, makes everything appended durable and
// closes the log. Saves fail afterwards.
func (s *stateLog) close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	err := s.flush(s.last())
	s.mu.Lock()
	defer s.mu.Unlock()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}
