package agent

// This file stands in for agent/ui.go when scripts/ui-size.sh builds rumor without
// its web UI (go build -overlay): the same names, and no import of package ui, so
// the difference in size between the two binaries is what the UI costs. It lives
// under testdata so that no ordinary build sees it. TestNoUIOverlay builds the agent
// with it, so it cannot drift from agent/ui.go unnoticed.

import (
	"net/http"
	"sync/atomic"
)

// webUI is what the agent uses of its web UI.
type webUI interface {
	http.Handler
	Start()
	Close() error
}

// newUI returns no UI: this build has none.
func (a *Agent) newUI() (webUI, error) { return nil, nil }

// countRequests counts every HTTP request the agent answers, as agent/ui.go's does.
func countRequests(next http.Handler, n *atomic.Uint64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		next.ServeHTTP(w, r)
	})
}
