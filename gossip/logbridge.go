package gossip

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
)

// logBridge turns memberlist's *log.Logger lines ("[WARN] memberlist: ...") into slog
// records at the matching level, and counts the packets memberlist drops because it
// could not decrypt them (it reports those only in its log).
type logBridge struct {
	log     *slog.Logger
	metrics *metrics
	limit   rateLog // WARN and ERROR lines, keyed by their opening words
}

func newLogBridge(l *slog.Logger, m *metrics) *logBridge { return &logBridge{log: l, metrics: m} }

// Write implements io.Writer; memberlist writes one line per call.
func (b *logBridge) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo,
		"[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError} {
		if i := strings.Index(line, prefix); i >= 0 {
			level = l
			line = strings.TrimSpace(line[i+len(prefix):])
			break
		}
	}
	if strings.Contains(line, "Decrypt packet failed") || strings.Contains(line, "decrypt") {
		b.metrics.dropped.WithLabelValues("decrypt").Inc()
	}
	if level >= slog.LevelWarn {
		// Keyed by the words before the first detail (an address, a number), so
		// junk from many addresses still counts as one kind of line.
		b.limit.logAt(b.log, level, logKey(line), line, "lib", "memberlist")
		return len(p), nil
	}
	b.log.Log(context.Background(), level, line, "lib", "memberlist")
	return len(p), nil
}

// logKey is the opening of a log line up to its first digit or colon after the
// "memberlist:" prefix, at most 48 bytes.
func logKey(line string) string {
	rest := strings.TrimPrefix(line, "memberlist: ")
	end := len(rest)
	for i, c := range rest {
		if c >= '0' && c <= '9' || c == ':' {
			end = i
			break
		}
	}
	return rest[:min(end, 48)]
}
