package docker

import (
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"

	"github.com/rumor-sd/rumor/catalog"
)

// TestExitedFromEvent: a fresh die or destroy event is enough to know a container
// stopped (its exit code and labels are attributes), so the watcher does not wait
// on an inspect that Docker holds during teardown; a replayed one (older than the
// last full reconcile) is not trusted.
func TestExitedFromEvent(t *testing.T) {
	w := &Watcher{fresh: time.Unix(100, 0)}
	ev := func(action events.Action, at int64, attrs map[string]string) events.Message {
		return events.Message{Type: events.ContainerEventType, Action: action, TimeNano: at * 1e9,
			Actor: events.Actor{ID: testID, Attributes: attrs}}
	}
	tests := []struct {
		name       string
		m          events.Message
		ok, keep   bool
		wantOutput string
	}{
		{"fresh die", ev(events.ActionDie, 101, map[string]string{"name": "a", "exitCode": "0"}), true, false, "container exited with code 0"},
		{"die, on-success, failed", ev(events.ActionDie, 101, map[string]string{"name": "a", "exitCode": "2", LabelDeregister: "on-success"}), true, true, "container exited with code 2"},
		{"die, on-success, killed", ev(events.ActionDie, 101, map[string]string{"name": "a", "exitCode": "137", LabelDeregister: "on-success"}), true, false, "container exited with code 137"},
		{"die, never", ev(events.ActionDie, 101, map[string]string{"name": "a", "exitCode": "0", LabelDeregister: "never"}), true, true, "container exited with code 0"},
		{"destroy", ev(events.ActionDestroy, 101, map[string]string{"name": "a"}), true, false, ""},
		{"replayed die", ev(events.ActionDie, 99, map[string]string{"name": "a", "exitCode": "0"}), false, false, ""},
		{"die without exit code", ev(events.ActionDie, 101, map[string]string{"name": "a"}), false, false, ""},
		{"start", ev(events.ActionStart, 101, map[string]string{"name": "a"}), false, false, ""},
	}
	for _, tt := range tests {
		s, ok := w.exited(tt.m)
		if ok != tt.ok || s.live || s.keep != tt.keep || s.output != tt.wantOutput {
			t.Errorf("%s: ok %v live %v keep %v output %q; want ok %v keep %v output %q", tt.name, ok, s.live, s.keep, s.output, tt.ok, tt.keep, tt.wantOutput)
		}
		if ok && tt.m.Action == events.ActionDie && s.status != catalog.StatusCritical {
			t.Errorf("%s: status %s, want critical", tt.name, s.status)
		}
	}
}
