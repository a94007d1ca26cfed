package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/config"
)

// move_retention and move_window reach agent.Config; a non-positive retention is
// refused naming the key.
func TestMoveKeys(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "moves.hcl", `move_retention = "48h"`+"\n"+`move_window = "30m"`)
	c, err := config.Load([]string{f}, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var cfg agent.Config
	c.Settings.Apply(&cfg)
	if cfg.MoveRetention != 48*time.Hour || cfg.MoveWindow != 30*time.Minute {
		t.Errorf("MoveRetention %s, MoveWindow %s; want 48h and 30m", cfg.MoveRetention, cfg.MoveWindow)
	}
	bad := write(t, dir, "bad.json", `{"move_retention": "0s"}`)
	if _, err := config.Load([]string{bad}, config.Options{}); err == nil || !strings.Contains(err.Error(), "move_retention") {
		t.Errorf("move_retention 0s: %v, want an error naming move_retention", err)
	}
}
