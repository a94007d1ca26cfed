package gossip

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// rateLog limits repeated log lines: per key, one line per rateLogEvery, the next one
// saying how many were suppressed meanwhile. A peer sending junk (40,000 bad packets
// once wrote 31,800 ERROR lines) must not be able to flood the log; the metrics still
// count every drop.
type rateLog struct {
	mu   sync.Mutex
	keys map[string]*rateLogKey
}

type rateLogKey struct {
	last       time.Time
	suppressed int
}

const (
	rateLogEvery   = 10 * time.Second
	rateLogMaxKeys = 1024 // beyond this, unseen keys share one entry
)

// allow reports whether a line under key may be logged now, and how many were
// suppressed since the last one.
func (r *rateLog) allow(key string, now time.Time) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys == nil {
		r.keys = make(map[string]*rateLogKey)
	}
	k := r.keys[key]
	if k == nil {
		if len(r.keys) >= rateLogMaxKeys {
			key = "\x00overflow"
			k = r.keys[key]
		}
		if k == nil {
			k = &rateLogKey{}
			r.keys[key] = k
		}
	}
	if !k.last.IsZero() && now.Sub(k.last) < rateLogEvery {
		k.suppressed++
		return false, 0
	}
	n := k.suppressed
	k.last, k.suppressed = now, 0
	return true, n
}

// logAt logs msg at level unless a line of the same key was logged within rateLogEvery.
func (r *rateLog) logAt(l *slog.Logger, level slog.Level, key, msg string, args ...any) {
	if !l.Enabled(context.Background(), level) {
		return
	}
	ok, n := r.allow(key, time.Now())
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	l.Log(context.Background(), level, msg, args...)
}

func (r *rateLog) debug(l *slog.Logger, key, msg string, args ...any) {
	r.logAt(l, slog.LevelDebug, key, msg, args...)
}
