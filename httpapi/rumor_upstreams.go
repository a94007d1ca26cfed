package httpapi

import (
	"net/http"

	"github.com/rumor-sd/rumor/catalog"
)

// Proxy is the agent's local proxy, for GET /v1/rumor/upstreams. Calls may run
// concurrently and do not block.
type Proxy interface {
	Upstreams() []Upstream
}

// Upstream is one local proxy listener and the instances it forwards to.
type Upstream struct {
	Service          string
	Tag              string `json:",omitempty"`
	Near             string `json:",omitempty"`
	LocalBindAddress string `json:",omitempty"`
	LocalBindPort    int
	// Listen is the address actually listened on.
	Listen    string
	Instances []UpstreamInstance
}

// UpstreamInstance is one instance as the proxy uses it.
type UpstreamInstance struct {
	Node, ServiceID, Address string
	Weight                   int64
	// Active is the connections open to it; Failures its consecutive connect
	// failures; Ejections how many times outlier detection took it out.
	Active       int64
	Failures     int32
	Ejections    int32
	EjectedUntil string `json:",omitempty"` // RFC 3339, while ejected
	Draining     bool   `json:",omitempty"` // out of rotation, its connections finishing
}

// GET /v1/rumor/upstreams: the local proxy's listeners, each with its instances,
// their open connections, failures and ejections. ?filter= applies to upstreams.
func (h *Handler) rumorUpstreams(w http.ResponseWriter, r *http.Request) {
	q, ok := h.query(w, r, Upstream{})
	if !ok {
		return
	}
	out, err := filterSlice(q.expr, h.proxy.Upstreams())
	if err != nil {
		h.failQuery(w, r, err)
		return
	}
	readHeaders(w, h.cat.TopicIndex(catalog.TopicAll))
	h.writeJSON(w, q, out)
}
