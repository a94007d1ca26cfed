package health

import (
	"math"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// This file holds the three pieces of per-check state that decide what is reported
// and when. They are pure: no clock, no goroutines, no I/O; time comes in as an
// argument. The Manager drives them and holds the lock.

// debouncer is the anti-flapping state machine, with the semantics of Consul's
// StatusHandler (agent/checks/check.go):
//
//   - a passing or warning result counts as a success: it resets the failure count,
//     and once SuccessBeforePassing successes are consecutive it is reported as is;
//   - a critical result counts as a failure: it resets the success count; at
//     FailuresBeforeCritical consecutive failures critical is reported, else at
//     FailuresBeforeWarning warning is;
//   - otherwise nothing is reported and the previous status stands.
//
// Both counts start at their thresholds, so the first result after Add is reported
// at once: the initial status is a guess, not knowledge worth protecting.
type debouncer struct {
	successBeforePassing   int
	failuresBeforeWarning  int
	failuresBeforeCritical int
	successes, failures    int
}

func newDebouncer(successBeforePassing, failuresBeforeWarning, failuresBeforeCritical int) debouncer {
	return debouncer{
		successBeforePassing:   successBeforePassing,
		failuresBeforeWarning:  failuresBeforeWarning,
		failuresBeforeCritical: failuresBeforeCritical,
		successes:              successBeforePassing,
		failures:               failuresBeforeCritical,
	}
}

// observe feeds one probe result and returns the status to report, or ok false when
// the result must not move the reported status yet.
func (d *debouncer) observe(result catalog.Status) (report catalog.Status, ok bool) {
	if result == catalog.StatusPassing || result == catalog.StatusWarning {
		d.successes = saturatingInc(d.successes)
		d.failures = 0
		if d.successes >= d.successBeforePassing {
			return result, true
		}
		return 0, false
	}
	d.failures = saturatingInc(d.failures)
	d.successes = 0
	if d.failures >= d.failuresBeforeCritical {
		return catalog.StatusCritical, true
	}
	if d.failures >= d.failuresBeforeWarning {
		return catalog.StatusWarning, true
	}
	return 0, false
}

func saturatingInc(n int) int {
	if n < math.MaxInt {
		return n + 1
	}
	return n
}

// reporter decides when the Sink hears of a check. A status change goes out at once
// with its output. An output change alone goes out at most once per `every`: the
// newest output waits until then (flush), so a check whose output holds a timestamp
// or a counter cannot flood the cluster with records.
type reporter struct {
	every time.Duration // minimum time between two output-only reports

	status  catalog.Status // the status the Sink last heard
	sent    string         // the output the Sink last heard
	latest  string         // the newest output; differs from sent while pending
	sentAt  time.Time      // when the Sink last heard; zero: never
	pending bool           // latest is waiting for the next slot
}

func newReporter(status catalog.Status, every time.Duration) reporter {
	return reporter{every: every, status: status}
}

// offer records a result to report and says whether to tell the Sink now, and
// whether the status changed.
func (r *reporter) offer(status catalog.Status, output string, now time.Time) (send, changed bool) {
	r.latest = output
	switch {
	case status != r.status:
		r.status = status
		r.markSent(now)
		return true, true
	case output == r.sent:
		r.pending = false
		return false, false
	case r.sentAt.IsZero() || now.Sub(r.sentAt) >= r.every:
		r.markSent(now)
		return true, false
	default:
		r.pending = true
		return false, false
	}
}

// flush reports whether a pending output is due at now; if so it counts as sent.
func (r *reporter) flush(now time.Time) bool {
	if !r.pending || now.Before(r.sentAt.Add(r.every)) {
		return false
	}
	r.markSent(now)
	return true
}

// due returns when a pending output is due, or the zero time when none is pending.
func (r *reporter) due() time.Time {
	if !r.pending {
		return time.Time{}
	}
	return r.sentAt.Add(r.every)
}

func (r *reporter) markSent(now time.Time) {
	r.sent = r.latest
	r.sentAt = now
	r.pending = false
}

// reaper implements DeregisterCriticalServiceAfter: it remembers since when the
// reported status has been critical and fires once per critical spell once that has
// lasted `after`.
type reaper struct {
	after time.Duration // 0 disables it
	since time.Time     // start of the current critical spell; zero: not critical
	fired bool          // fired during the current critical spell
}

// observe records the status reported at now.
func (r *reaper) observe(status catalog.Status, now time.Time) {
	if status != catalog.StatusCritical {
		r.since, r.fired = time.Time{}, false
		return
	}
	if r.since.IsZero() {
		r.since = now
	}
}

// due returns when the reaper will fire, or the zero time if it will not.
func (r *reaper) due() time.Time {
	if r.after <= 0 || r.since.IsZero() || r.fired {
		return time.Time{}
	}
	return r.since.Add(r.after)
}

// fire reports whether the service must be deregistered at now; it says so once per
// critical spell.
func (r *reaper) fire(now time.Time) bool {
	at := r.due()
	if at.IsZero() || now.Before(at) {
		return false
	}
	r.fired = true
	return true
}

// earliest returns the earliest non-zero time, or the zero time.
func earliest(ts ...time.Time) time.Time {
	var e time.Time
	for _, t := range ts {
		if !t.IsZero() && (e.IsZero() || t.Before(e)) {
			e = t
		}
	}
	return e
}
