package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// The API's one secret is Config.Token, a shared bearer token: rumor has no ACL
// system, so a request either carries the token or it does not. Writes (every method
// but GET and HEAD) need it when it is set; reads need it too with
// Config.TokenReads. It is taken from X-Consul-Token (what consul/api,
// consul-template and Prometheus send) or "Authorization: Bearer <token>"; never from
// ?token=, which would put it in logs and shell history.

// tokenOf returns the token a request carries, and whether it carries one.
func tokenOf(r *http.Request) (string, bool) {
	if t := r.Header.Get("X-Consul-Token"); t != "" {
		return t, true
	}
	scheme, t, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(t) != "" {
		return strings.TrimSpace(t), true
	}
	return "", false
}

// needsToken reports whether r must carry the token.
func (h *Handler) needsToken(r *http.Request) bool {
	if h.tokenSum == nil {
		return false
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return h.tokenReads
	}
	return true
}

// authorized reports whether r may proceed, answering 403 when it may not. The
// comparison is of SHA-256 sums in constant time, so neither the token's bytes nor
// its length leak through timing.
func (h *Handler) authorized(w http.ResponseWriter, r *http.Request) bool {
	if !h.needsToken(r) {
		return true
	}
	what := "writes"
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		what = "every request"
	}
	t, ok := tokenOf(r)
	if !ok {
		// "Permission denied" first: consul/api's IsErrPermissionDenied looks for it.
		h.fail(w, r, http.StatusForbidden, "Permission denied: this rumor agent requires a token for %s: send it in the X-Consul-Token header or as Authorization: Bearer <token>", what)
		return false
	}
	sum := sha256.Sum256([]byte(t))
	if subtle.ConstantTimeCompare(sum[:], h.tokenSum) != 1 {
		h.fail(w, r, http.StatusForbidden, "Permission denied: the token given is not this agent's token (--http-token)")
		return false
	}
	return true
}
