package proxy

import (
	"testing"
	"time"
)

// A Reporter hears of an instance's successes at most once per reportEvery, and at
// once after a failure.
func TestReportDue(t *testing.T) {
	var b backend
	t0 := time.Unix(1000, 0)
	steps := []struct {
		name string
		at   time.Time
		fail bool // a failure before this connect
		want bool
	}{
		{"first success", t0, false, true},
		{"again at once", t0.Add(time.Millisecond), false, false},
		{"just before reportEvery", t0.Add(reportEvery - time.Nanosecond), false, false},
		{"after reportEvery", t0.Add(reportEvery), false, true},
		{"after a failure", t0.Add(reportEvery + time.Millisecond), true, true},
		{"then quiet again", t0.Add(reportEvery + 2*time.Millisecond), false, false},
	}
	for _, st := range steps {
		if st.fail {
			b.failedNow()
		}
		if got := b.reportDue(st.at); got != st.want {
			t.Errorf("%s: reportDue = %v, want %v", st.name, got, st.want)
		}
	}
}
