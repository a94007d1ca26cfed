package httpapi

import (
	"context"
	"net/http"
)

// Reloader is an Agent that re-reads its config files on PUT /v1/agent/reload
// (Consul's endpoint; `rumor reload` and SIGHUP do the same). It is optional: the
// endpoint answers 501 for an Agent without it. Reload may block briefly (it reads
// files and persists the change).
type Reloader interface {
	// Reload applies the config files' services as a diff. An error wrapping
	// catalog.ErrInvalid means the files are wrong and nothing changed (400); its
	// message names every problem by file and field.
	Reload(ctx context.Context) (ReloadResult, error)
}

// ReloadResult says what a reload changed, by service ID. Consul answers an empty
// 200; rumor adds this summary as the body, which Consul clients ignore.
type ReloadResult struct {
	Added     []string
	Changed   []string
	Removed   []string
	Unchanged []string
}

// PUT /v1/agent/reload: re-read the config files and apply what changed.
func (h *Handler) agentReload(w http.ResponseWriter, r *http.Request) {
	rl, ok := h.ag.(Reloader)
	if !ok {
		h.fail(w, r, http.StatusNotImplemented, "this agent has no config files to reload")
		return
	}
	res, err := rl.Reload(r.Context())
	if err != nil {
		h.failErr(w, r, err, "reload", map[int]string{http.StatusBadRequest: "Invalid configuration; nothing was changed and the previous configuration stays in force:\n" + err.Error()})
		return
	}
	for _, l := range []*[]string{&res.Added, &res.Changed, &res.Removed, &res.Unchanged} {
		*l = emptySlice(*l)
	}
	h.writeJSON(w, query{}, res)
}
