package ui_test

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/ui"
)

// TestMovesShown: a move of web-0 from n000 to n001 shows as a "moved" line in the
// agent page's event log and in the service page's "Moved" table (rendered without
// JavaScript); a rewrite of the pointer logs again.
func TestMovesShown(t *testing.T) {
	f := newFixture(t, 2, ui.Config{})
	f.waitFor(t, "/ui/agent", "loaded", func(d *html.Node) bool { return strings.Contains(text(d), "2 nodes") })
	w := f.ws["n000"]
	now := f.clk.Now()
	mv := &catalog.Move{Service: "web", ToNode: "n001", ToServiceID: "web-0", At: now, Until: now.Add(72 * time.Hour), Explicit: true}
	f.apply(t, w.Delete(catalog.Key{Kind: catalog.KindService, ID: "web-0"}), w.PutMove("web-0", mv))
	f.waitFor(t, "/ui/agent", "the moved event", func(d *html.Node) bool {
		return strings.Contains(text(d), "service web (web-0) moved from n000 to n001 (web-0)")
	})
	doc := f.waitFor(t, "/ui/services/web", "the Moved table", func(d *html.Node) bool {
		return len(rows(d, "move")) == 1
	})
	if got := rows(doc, "move"); got[0] != "n000/web-0" {
		t.Errorf("moves rows %q, want n000/web-0", got)
	}
	table := find(doc, withAttr("id", "moves"))
	if len(table) != 1 || !strings.Contains(text(table[0]), "rumor service move") || !strings.Contains(text(table[0]), "n001 web-0") {
		t.Fatalf("Moved table: %v", table)
	}
	// The old node's page lists what moved away from it.
	doc = f.waitFor(t, "/ui/nodes/n000", "the node's Moved away table", func(d *html.Node) bool {
		return len(rows(d, "move")) == 1
	})
	if tbl := find(doc, withAttr("id", "node-moves")); len(tbl) != 1 || !strings.Contains(text(tbl[0]), "webweb-0n001 web-0") {
		t.Errorf("Moved away table: %q", text(tbl[0]))
	}
	// A rewrite (the chain collapsed to another node) is logged too.
	mv2 := *mv
	mv2.ToNode = "n002"
	f.apply(t, w.PutMove("web-0", &mv2))
	f.waitFor(t, "/ui/agent", "the rewrite's event", func(d *html.Node) bool {
		return strings.Contains(text(d), "moved from n000 to n002")
	})
	// Past its retention the pointer is no longer shown.
	f.clk.Advance(73 * time.Hour)
	if _, doc := f.get(t, "/ui/services/web"); len(rows(doc, "move")) != 0 {
		t.Errorf("an expired pointer is still on the service page")
	}
}
