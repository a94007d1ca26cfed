package localstate

import (
	"maps"
	"slices"

	"github.com/rumor-sd/rumor/definition"
)

// Upstreams returns the upstreams (local proxy listeners) of every local service,
// by service ID in order. It visits every service: call it when a Ready says
// UpstreamsChanged, and once at start.
func (c *Core) Upstreams() []definition.Upstream {
	var out []definition.Upstream
	for _, id := range slices.Sorted(maps.Keys(c.st.Services)) {
		out = append(out, c.st.Services[id].Upstreams...)
	}
	return out
}
