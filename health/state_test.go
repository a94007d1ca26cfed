package health

import (
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

const (
	P = catalog.StatusPassing
	W = catalog.StatusWarning
	C = catalog.StatusCritical
)

// statusLetters turns "PWC" into statuses, and back, so sequences read as one word.
func statusLetters(s string) []catalog.Status {
	var out []catalog.Status
	for _, r := range s {
		switch r {
		case 'P':
			out = append(out, P)
		case 'W':
			out = append(out, W)
		case 'C':
			out = append(out, C)
		case '-':
			out = append(out, 0)
		}
	}
	return out
}

func letters(ss []catalog.Status) string {
	var b strings.Builder
	for _, s := range ss {
		switch s {
		case P:
			b.WriteByte('P')
		case W:
			b.WriteByte('W')
		case C:
			b.WriteByte('C')
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

// Consul's StatusHandler semantics (agent/checks/check.go): for each result, the
// status reported, "-" when the result must not change anything yet.
func TestDebouncer(t *testing.T) {
	tests := []struct {
		name                  string
		success, warn, crit   int
		results, wantReported string
	}{
		{"no thresholds: every result reported", 0, 0, 0, "PCWPC", "PCWPC"},
		{"first result reported at once", 3, 3, 3, "C", "C"},
		{"first success reported at once", 3, 3, 3, "P", "P"},
		{"success threshold after a failure", 3, 0, 0, "CPPPP", "C--PP"},
		{"failure threshold after a success", 0, 3, 3, "PCCCC", "P--CC"},
		{"interrupted failures start over", 0, 3, 3, "PCCPCCC", "P--P--C"},
		{"interrupted successes start over", 2, 0, 0, "CPCPP", "C-C-P"},
		{"warning before critical", 0, 2, 4, "PCCCCC", "P-WWCC"},
		{"warning threshold 1, critical 3", 0, 1, 3, "PCCCP", "PWWCP"},
		{"a warning result counts as success", 2, 0, 0, "CWW", "C-W"},
		{"warning results reset failures", 0, 2, 2, "PCWCC", "P-W-C"},
		{"warning beyond critical never warns", 0, 5, 2, "PCCC", "P-CC"},
		{"success_before_passing 1 is immediate", 1, 0, 0, "CPCP", "CPCP"},
		{"both thresholds", 2, 2, 2, "PCCPPCP", "P-C-P--"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDebouncer(tt.success, tt.warn, tt.crit)
			var got []catalog.Status
			for _, r := range statusLetters(tt.results) {
				s, ok := d.observe(r)
				if !ok {
					s = 0
				}
				got = append(got, s)
			}
			if g := letters(got); g != tt.wantReported {
				t.Errorf("results %s: reported %s, want %s", tt.results, g, tt.wantReported)
			}
		})
	}
}

func TestDebouncerSaturates(t *testing.T) {
	d := newDebouncer(0, 0, 0)
	d.successes = int(^uint(0) >> 1)
	if s, ok := d.observe(P); !ok || s != P || d.successes < 0 {
		t.Fatalf("got %v %v successes %d, want passing and no overflow", s, ok, d.successes)
	}
}

func TestReporter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		at       time.Duration // since t0
		status   catalog.Status
		output   string
		flush    bool // call flush instead of offer
		wantSend bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"status change is sent at once", []step{
			{0, C, "down", false, true},
			{time.Second, P, "up", false, true},
			{2 * time.Second, C, "down", false, true},
		}},
		{"same status and output is not sent", []step{
			{0, P, "ok", false, true},
			{time.Second, P, "ok", false, false},
		}},
		{"first output change is sent, the next waits", []step{
			{0, C, "a", false, true}, // initial status was critical: output-only, never sent before
			{time.Second, C, "b", false, false},
			{30 * time.Second, C, "c", false, false},
			{59 * time.Second, C, "d", true, false},
			{60 * time.Second, C, "", true, true}, // flush sends the newest ("c")
			{61 * time.Second, C, "d", false, false},
		}},
		{"output reverting cancels the pending report", []step{
			{0, C, "a", false, true},
			{time.Second, C, "b", false, false},
			{2 * time.Second, C, "a", false, false},
			{2 * time.Minute, C, "", true, false},
		}},
		{"status change carries the pending output", []step{
			{0, C, "a", false, true},
			{time.Second, C, "b", false, false},
			{2 * time.Second, P, "c", false, true},
			{2 * time.Minute, P, "", true, false},
		}},
		{"output after the interval is sent at once", []step{
			{0, C, "a", false, true},
			{time.Minute, C, "b", false, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReporter(C, time.Minute)
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				var send bool
				if s.flush {
					send = r.flush(now)
				} else {
					send, _ = r.offer(s.status, s.output, now)
				}
				if send != s.wantSend {
					t.Fatalf("step %d (%+v): send %v, want %v", i, s, send, s.wantSend)
				}
			}
		})
	}
	t.Run("flush sends the newest output", func(t *testing.T) {
		r := newReporter(C, time.Minute)
		r.offer(P, "a", t0)
		r.offer(P, "b", t0.Add(time.Second))
		r.offer(P, "c", t0.Add(2*time.Second))
		if got, want := r.due(), t0.Add(time.Minute); !got.Equal(want) {
			t.Fatalf("due %v, want %v", got, want)
		}
		if !r.flush(t0.Add(time.Minute)) || r.sent != "c" || r.status != P {
			t.Fatalf("flush: sent %q status %v, want \"c\" passing", r.sent, r.status)
		}
		if !r.due().IsZero() {
			t.Fatalf("due after flush %v, want none", r.due())
		}
	})
}

func TestReaper(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		at       time.Duration
		status   catalog.Status // 0: call fire only
		wantFire bool
	}
	tests := []struct {
		name  string
		after time.Duration
		steps []step
	}{
		{"fires after the critical spell", time.Minute, []step{
			{0, C, false},
			{59 * time.Second, 0, false},
			{60 * time.Second, 0, true},
			{90 * time.Second, 0, false}, // once per spell
		}},
		{"recovery resets", time.Minute, []step{
			{0, C, false},
			{30 * time.Second, P, false},
			{40 * time.Second, C, false},
			{90 * time.Second, 0, false},
			{100 * time.Second, 0, true},
		}},
		{"warning is not critical", time.Minute, []step{
			{0, W, false},
			{2 * time.Minute, 0, false},
		}},
		{"staying critical keeps the start", time.Minute, []step{
			{0, C, false},
			{50 * time.Second, C, false},
			{60 * time.Second, 0, true},
		}},
		{"a new spell fires again", time.Minute, []step{
			{0, C, false},
			{time.Minute, 0, true},
			{2 * time.Minute, P, false},
			{3 * time.Minute, C, false},
			{4 * time.Minute, 0, true},
		}},
		{"disabled", 0, []step{
			{0, C, false},
			{time.Hour, 0, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := reaper{after: tt.after}
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				if s.status != 0 {
					r.observe(s.status, now)
				}
				if got := r.fire(now); got != s.wantFire {
					t.Fatalf("step %d (%+v): fire %v, want %v", i, s, got, s.wantFire)
				}
			}
		})
	}
}

func TestEarliest(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := earliest(); !got.IsZero() {
		t.Errorf("earliest() = %v, want zero", got)
	}
	if got := earliest(time.Time{}, t0.Add(2), t0.Add(1), time.Time{}); !got.Equal(t0.Add(1)) {
		t.Errorf("earliest = %v, want %v", got, t0.Add(1))
	}
}

func TestClampOutput(t *testing.T) {
	long := strings.Repeat("é", catalog.MaxOutputLen) // 2 bytes a rune
	tests := []struct {
		name, in string
		wantLen  int // -1: unchanged
	}{
		{"short", "ok", -1},
		{"exactly max", strings.Repeat("x", catalog.MaxOutputLen), -1},
		{"long, cut at a rune boundary", long, catalog.MaxOutputLen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := clampOutput(tt.in)
			if tt.wantLen < 0 {
				if got != tt.in {
					t.Fatalf("changed an output that fits")
				}
				return
			}
			if len(got) > tt.wantLen || !strings.HasSuffix(got, truncationMark) {
				t.Fatalf("len %d (max %d), suffix %q", len(got), tt.wantLen, got[max(0, len(got)-20):])
			}
			if !strings.HasPrefix(got, "éé") || strings.ContainsRune(got, '\uFFFD') {
				t.Fatalf("cut inside a rune")
			}
		})
	}
	if got := clampOutput("a\xffb"); got != "a\uFFFDb" {
		t.Errorf("invalid UTF-8: got %q", got)
	}
}
