package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/rumor-sd/rumor/catalog"
)

// catalogNode is Consul's CatalogNode: a node and its services by ID.
type catalogNode struct {
	Node     node
	Services map[string]agentService
}

// GET /v1/catalog/node/{node}: a node and its services. An unknown node is answered,
// as Consul answers it, with 200 and a JSON null (consul/api's Catalog().Node then
// returns nil, and a blocking query waits for the node to appear). ?filter= applies
// to the services, as in Consul.
func (h *Handler) catalogNode(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("node")
	q, idx, ok := h.readWith(w, r, catalog.NodeTopic(name), agentService{})
	if !ok {
		return
	}
	entry, svcs, err := h.cat.NodeServices(name)
	if errors.Is(err, catalog.ErrNotFound) {
		readHeaders(w, idx)
		h.writeJSON(w, q, nil)
		return
	}
	if err != nil {
		h.failErr(w, r, err, fmt.Sprintf("read node %q", name), nil)
		return
	}
	out := catalogNode{Node: toNode(&entry.Node, idx), Services: make(map[string]agentService, len(svcs))}
	for i := range svcs {
		s := toAgentService(&svcs[i], entry.Node.Datacenter)
		s.CreateIndex, s.ModifyIndex = idx, idx
		out.Services[s.ID] = s
	}
	if err := filterMap(q.expr, out.Services); err != nil {
		h.failQuery(w, r, err)
		return
	}
	readHeaders(w, idx)
	h.writeJSON(w, q, out)
}

// GET /v1/catalog/nodes: every node with records, by name.
func (h *Handler) catalogNodes(w http.ResponseWriter, r *http.Request) {
	q, idx, ok := h.readWith(w, r, catalog.TopicNodes, node{})
	if !ok {
		return
	}
	nodes := h.cat.Nodes(q.filter)
	out := make([]node, 0, len(nodes))
	for i := range nodes {
		out = append(out, toNode(&nodes[i].Node, idx))
	}
	out, err := filterSlice(q.expr, out)
	if err != nil {
		h.failQuery(w, r, err)
		return
	}
	sortNear(h, q, out, func(n *node) string { return n.Node })
	readHeaders(w, idx)
	h.writeJSON(w, q, out)
}

// GET /v1/catalog/datacenters: the datacenters this agent answers for. rumor has no
// WAN federation, so that is its own, which is also the only ?dc= it accepts.
func (h *Handler) catalogDatacenters(w http.ResponseWriter, r *http.Request) {
	q, ok := h.query(w, r, nil)
	if !ok {
		return
	}
	readHeaders(w, h.cat.TopicIndex(catalog.TopicNodes))
	h.writeJSON(w, q, []string{h.ag.Self().Node.Datacenter})
}
