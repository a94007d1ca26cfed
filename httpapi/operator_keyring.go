package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// KeyOp is a gossip keyring operation.
type KeyOp int

// The keyring operations of /v1/operator/keyring, by method.
const (
	KeyList    KeyOp = iota + 1 // GET: the keys installed on every member
	KeyInstall                  // POST: add a key every member accepts
	KeyUse                      // PUT: make an installed key the one every member encrypts with
	KeyRemove                   // DELETE: remove a key that is not primary
)

func (op KeyOp) String() string {
	return [...]string{KeyList: "list", KeyInstall: "install", KeyUse: "use", KeyRemove: "remove"}[op]
}

// Keyring runs gossip keyring operations across the pool. Calls may run concurrently;
// KeyringOperation blocks until every live member answered or ctx ends.
type Keyring interface {
	// KeyringOperation runs op with key (nil for KeyList) on every live member,
	// this node included. Members that failed or did not answer are listed in the
	// result's Errors; the error is for an operation that could not run at all, and
	// wraps catalog.ErrInvalid when the request is at fault (the primary key cannot be
	// removed; gossip encryption is off).
	KeyringOperation(ctx context.Context, op KeyOp, key []byte) (KeyringResult, error)
	// LocalKeys describes this node's keyring alone (?local-only).
	LocalKeys() (KeyringResult, error)
}

// KeyringResult is what the members said.
type KeyringResult struct {
	NumNodes    int               // members asked, this node included
	Keys        map[string]int    // base64 key → members holding it
	PrimaryKeys map[string]int    // base64 key → members encrypting with it
	Errors      map[string]string // member → why it failed or did not answer
}

// keyringResponse is Consul's KeyringResponse (github.com/hashicorp/consul/api). rumor
// has one gossip pool, so there is one, for the LAN.
type keyringResponse struct {
	WAN         bool
	Datacenter  string
	Segment     string
	Messages    map[string]string `json:",omitempty"`
	Keys        map[string]int
	PrimaryKeys map[string]int
	NumNodes    int
}

// keyringRequest is Consul's KeyringRequest.
type keyringRequest struct {
	Key string
}

// GET /v1/operator/keyring: the keys of every member. ?local-only: this node's.
// Members that failed or did not answer are named in Messages; the answer is still 200.
func (h *Handler) keyringList(w http.ResponseWriter, r *http.Request) {
	q, err := h.parseQuery(r)
	if err != nil {
		h.failQuery(w, r, err)
		return
	}
	var res KeyringResult
	if local, _ := parseFlag(r.URL.Query().Get("local-only")); r.URL.Query().Has("local-only") && local {
		res, err = h.keys.LocalKeys()
	} else {
		res, err = h.keys.KeyringOperation(r.Context(), KeyList, nil)
	}
	if err != nil {
		h.failKeyring(w, r, KeyList, err)
		return
	}
	h.writeJSON(w, q, []keyringResponse{h.toKeyringResponse(res)})
}

// POST (install), PUT (use) and DELETE (remove) /v1/operator/keyring with
// {"Key": "<base64>"}. 200 when every member succeeded; 500 naming the members that
// did not, as Consul answers.
func (h *Handler) keyringOp(op KeyOp) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, err := h.parseQuery(r)
		if err != nil {
			h.failQuery(w, r, err)
			return
		}
		raw, ok := h.readBody(w, r) // 413 beyond MaxBodyBytes
		if !ok {
			return
		}
		var body keyringRequest
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			if errors.Is(err, io.EOF) {
				h.fail(w, r, http.StatusBadRequest, "Request decode failed: empty body: want {\"Key\": \"<base64 key>\"}")
				return
			}
			h.fail(w, r, http.StatusBadRequest, "Request decode failed: %v (want {\"Key\": \"<base64 key>\"})", strings.TrimPrefix(err.Error(), "json: "))
			return
		}
		key, err := parseGossipKey(body.Key)
		if err != nil {
			h.fail(w, r, http.StatusBadRequest, "Invalid Key %q: %v", body.Key, err)
			return
		}
		res, err := h.keys.KeyringOperation(r.Context(), op, key)
		if err != nil {
			h.failKeyring(w, r, op, err)
			return
		}
		if len(res.Errors) > 0 {
			var parts []string
			for _, node := range slices.Sorted(maps.Keys(res.Errors)) {
				parts = append(parts, node+": "+res.Errors[node])
			}
			h.fail(w, r, http.StatusInternalServerError, "%s key: %d of %d nodes failed: %s",
				op, len(res.Errors), res.NumNodes, strings.Join(parts, "; "))
			return
		}
		h.writeJSON(w, q, []keyringResponse{h.toKeyringResponse(res)})
	}
}

// parseGossipKey decodes a key as `rumor keygen` and `consul keygen` print it.
func parseGossipKey(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("no key given: want the base64 encoding of a 16, 24 or 32-byte key, as `rumor keygen` prints")
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not base64: %v", err)
	}
	if l := len(key); l != 16 && l != 24 && l != 32 {
		return nil, fmt.Errorf("decodes to %d bytes: want 16, 24 or 32", l)
	}
	return key, nil
}

func (h *Handler) failKeyring(w http.ResponseWriter, r *http.Request, op KeyOp, err error) {
	h.failErr(w, r, err, op.String()+" key", map[int]string{http.StatusBadRequest: fmt.Sprintf("%s key: %v", op, err)})
}

func (h *Handler) toKeyringResponse(res KeyringResult) keyringResponse {
	out := keyringResponse{
		Datacenter: h.ag.Self().Node.Datacenter, NumNodes: res.NumNodes,
		Keys: emptyMap(res.Keys), PrimaryKeys: emptyMap(res.PrimaryKeys),
	}
	if len(res.Errors) > 0 {
		out.Messages = res.Errors
	}
	return out
}
