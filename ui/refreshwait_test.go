package ui

import (
	"testing"
	"time"
)

func TestRefreshWait(t *testing.T) {
	const coalesce = 250 * time.Millisecond
	t0 := time.Date(2026, 12, 3, 19, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		last time.Time
		now  time.Time
		want time.Duration
	}{
		{"first read at once", time.Time{}, t0, 0},
		{"a change after a quiet spell waits a fifth", t0, t0.Add(10 * time.Second), coalesce / 5},
		{"right after a read: the rest of the window", t0, t0.Add(100 * time.Millisecond), 150 * time.Millisecond},
		{"near the window's end: still a fifth", t0, t0.Add(240 * time.Millisecond), coalesce / 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := refreshWait(coalesce, tc.last, tc.now); got != tc.want {
				t.Errorf("refreshWait = %s, want %s", got, tc.want)
			}
		})
	}
}
