package httpapi

import (
	"slices"
	"time"
)

// Coordinates estimates round-trip times between nodes from gossip's network
// coordinates (Vivaldi, as serf computes them), for ?near=. Calls run concurrently
// and do not block.
type Coordinates interface {
	// RTTsFrom returns the estimated round-trip time from the node named from to
	// every node whose coordinate is known (from itself included, at about 0), by
	// name. ok is false when from's own coordinate is unknown.
	RTTsFrom(from string) (rtts map[string]time.Duration, ok bool)
}

// sortNear orders items by the estimated round-trip time from q.near to the node
// nodeOf names, nearest first, as Consul's ?near= does: nodes without a coordinate
// go last and keep their order, and when q.near has no coordinate (or there is no
// Coordinates) the order is left as it is.
func sortNear[T any](h *Handler, q query, items []T, nodeOf func(*T) string) {
	if q.near == "" || h.coords == nil || len(items) < 2 {
		return
	}
	rtts, ok := h.coords.RTTsFrom(q.near)
	if !ok {
		return
	}
	dist := func(x *T) (time.Duration, bool) {
		d, ok := rtts[nodeOf(x)]
		return d, ok
	}
	slices.SortStableFunc(items, func(a, b T) int {
		da, oka := dist(&a)
		db, okb := dist(&b)
		switch {
		case oka && okb:
			return int(min(max(da-db, -1), 1))
		case oka:
			return -1
		case okb:
			return 1
		}
		return 0
	})
}
