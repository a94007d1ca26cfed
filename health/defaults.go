package health

import (
	"strings"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// Default probe timeouts, used when a check sets none; like Consul's. Either is
// lowered to the interval when the interval is shorter, so runs never overlap.
const (
	DefaultTimeout       = 10 * time.Second // http, tcp and grpc checks
	DefaultScriptTimeout = 30 * time.Second // script checks
)

// HTTPBodyLimit is how much of an HTTP check's response body ends up in its output.
const HTTPBodyLimit = 4 << 10

// withDefaults returns a deep copy of d with every default the Manager runs it with
// filled in: the form it runs and compares. d must be valid.
func withDefaults(d definition.Check) definition.Check {
	n := d.Clone()
	if len(n.Header) == 0 {
		n.Header = nil
	}
	if n.Status == 0 {
		n.Status = catalog.StatusCritical
	}
	if n.FailuresBeforeWarning == 0 {
		n.FailuresBeforeWarning = n.FailuresBeforeCritical
	}
	switch n.Type() {
	case definition.TypeHTTP:
		if n.Method == "" {
			n.Method = "GET"
		}
		n.Method = strings.ToUpper(n.Method)
		n.Timeout = defaultTimeout(n.Timeout, DefaultTimeout, n.Interval)
	case definition.TypeTCP, definition.TypeGRPC:
		n.Timeout = defaultTimeout(n.Timeout, DefaultTimeout, n.Interval)
	case definition.TypeScript:
		n.Timeout = defaultTimeout(n.Timeout, DefaultScriptTimeout, n.Interval)
	case definition.TypeTTL:
		n.Interval, n.Timeout = 0, 0 // meaningless for ttl checks; Consul ignores them too
	}
	return n
}

func defaultTimeout(set, def, interval time.Duration) time.Duration {
	if set > 0 {
		return set
	}
	if interval > 0 && interval < def {
		return interval
	}
	return def
}
