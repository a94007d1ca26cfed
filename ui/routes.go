package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed" // the assets
	"encoding/hex"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The stylesheet and the script, served by assetHandler.
var (
	//go:embed assets/ui.css
	uiCSS []byte
	//go:embed assets/ui.js
	uiJS []byte
)

// Prefix is where the UI is served: every path of the UI starts with it.
const Prefix = "/ui/"

// page is one page of the UI: its template, its title and navigation tab, and what
// it shows.
type page struct {
	tmpl  string
	nav   string
	title func(r *http.Request) string
	// sampled pages show sparklines, so their live stream moves with the sampler too.
	sampled bool
	// reach pages show what this host cannot reach, so their live stream moves with
	// Config.Reachability's version too.
	reach bool
	// build returns the page's data and its HTTP status (200, or 404 for a service or
	// node that is not there: the page says so).
	build func(u *UI, r *http.Request, now time.Time) (any, int)
}

func fixed(s string) func(*http.Request) string { return func(*http.Request) string { return s } }

// routes registers the UI's paths.
func (u *UI) routes() error {
	tmpls, err := parseTemplates()
	if err != nil {
		return err
	}
	u.tmpls = tmpls
	pages := map[string]page{
		"GET /ui/{$}":      {tmpl: "failing", nav: "failing", title: fixed("Failing now"), reach: true, build: (*UI).failingView},
		"GET /ui/services": {tmpl: "services", nav: "services", title: fixed("Services"), build: (*UI).servicesView},
		"GET /ui/services/{name}": {tmpl: "service", nav: "services",
			title: func(r *http.Request) string { return r.PathValue("name") }, build: (*UI).serviceView},
		"GET /ui/nodes": {tmpl: "nodes", nav: "nodes", title: fixed("Nodes"), sampled: true, build: (*UI).nodesView},
		"GET /ui/nodes/{name}": {tmpl: "node", nav: "nodes", sampled: true,
			title: func(r *http.Request) string { return r.PathValue("name") }, build: (*UI).nodeView},
		"GET /ui/agent": {tmpl: "agent", nav: "agent", title: fixed("This agent"), sampled: true, build: (*UI).agentView},
		"GET /ui/lan":   {tmpl: "lan", nav: "lan", title: fixed("LAN (mDNS)"), build: (*UI).lanView},
	}
	u.pages = pages
	for pattern, p := range pages {
		u.mux.HandleFunc(pattern, u.handle(p))
	}
	u.mux.Handle("GET /ui/assets/", http.StripPrefix("/ui/", assetHandler()))
	u.mux.HandleFunc("POST /ui/login", u.login)
	u.mux.HandleFunc("POST /ui/logout", u.logout)
	u.mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
	})
	u.mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		if !u.authorized(r) {
			u.loginPage(w, r, "")
			return
		}
		u.notFound(w, r, "There is no page at "+r.URL.Path+".")
	})
	return nil
}

// assetHandler serves the embedded stylesheet and script, cacheable for a day (they
// change only with the binary) and revalidated by ETag, gzipped for browsers that
// take it. It is two files, not http.FileServer: that would add its directory
// listings, ranges and MIME tables (about 40 KB) to the binary for nothing.
func assetHandler() http.Handler {
	type asset struct {
		ctype, etag string
		body, gz    []byte
	}
	assets := map[string]asset{}
	for name, a := range map[string]asset{"assets/ui.css": {ctype: "text/css; charset=utf-8", body: uiCSS},
		"assets/ui.js": {ctype: "text/javascript; charset=utf-8", body: uiJS}} {
		sum := sha256.Sum256(a.body)
		a.etag = `"` + hex.EncodeToString(sum[:8]) + `"`
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // a valid level: no error
		_, _ = zw.Write(a.body)                                  // to memory
		_ = zw.Close()
		a.gz = buf.Bytes()
		assets[name] = a
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := assets[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "public, max-age=86400")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Type", a.ctype)
		h.Set("ETag", a.etag)
		h.Set("Vary", "Accept-Encoding")
		if r.Header.Get("If-None-Match") == a.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		body := a.body
		if acceptsGzip(r) {
			body = a.gz
			h.Set("Content-Encoding", "gzip")
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
	})
}

// pageData is what every page's template gets.
type pageData struct {
	Title  string
	Nav    string
	Self   Self
	Now    time.Time
	Logout bool   // the UI needs a token: offer to forget it
	Error  string // the login page's complaint
	Next   string // where the login page returns to
	Main   any
}

// handle serves a page: the whole document, or with Accept: text/event-stream (what
// EventSource sends) its live stream.
func (u *UI) handle(p page) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !u.authorized(r) {
			if isEventStream(r) {
				http.Error(w, "Permission denied: the UI needs the agent's token; log in again", http.StatusForbidden)
				return
			}
			u.loginPage(w, r, "")
			return
		}
		if isEventStream(r) {
			u.stream(w, r, p)
			return
		}
		body, status := u.render(p, r, "layout.html")
		writeHTML(w, r, status, body)
	}
}

// render executes a page's template (the whole layout, or "main" for a live
// update) and returns the bytes and the page's status.
func (u *UI) render(p page, r *http.Request, name string) ([]byte, int) {
	now := u.cfg.Now()
	main, status := p.build(u, r, now)
	var buf bytes.Buffer
	if err := u.execute(&buf, p, r, name, now, main); err != nil {
		return []byte("<p>The page could not be rendered: " + template.HTMLEscapeString(err.Error()) + "</p>"), http.StatusInternalServerError
	}
	return buf.Bytes(), status
}

// execute executes a page's template with main, the data its build returned; an
// error is logged.
func (u *UI) execute(buf *bytes.Buffer, p page, r *http.Request, name string, now time.Time, main any) error {
	data := pageData{Title: p.title(r), Nav: p.nav, Self: u.self(), Now: now, Logout: u.cfg.TokenReads, Main: main}
	if err := u.tmpls[p.tmpl].ExecuteTemplate(buf, name, data); err != nil {
		u.log.Error("ui: render", "page", p.tmpl, "error", err)
		return err
	}
	return nil
}

// notFound answers 404 with a page saying what is missing.
func (u *UI) notFound(w http.ResponseWriter, r *http.Request, what string) {
	p := page{tmpl: "notfound", title: fixed("Not found"), build: func(*UI, *http.Request, time.Time) (any, int) {
		return missing{What: what}, http.StatusNotFound
	}}
	body, status := u.render(p, r, "layout.html")
	writeHTML(w, r, status, body)
}

// missing is the data of a page whose subject is not in the catalog.
type missing struct{ What string }

func isEventStream(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// The UI follows the API's token rules: with TokenReads, every page needs the token,
// in X-Consul-Token or "Authorization: Bearer" as on the API (for scripts and
// tests), or in a cookie, because a browser cannot add headers to a link it follows.
// The login form takes the token once and sets the cookie: HttpOnly (no script reads
// it), SameSite=Strict (no other site's page sends it), limited to /ui/, Secure over
// HTTPS. It holds not the token but an HMAC of it, which the API does not accept: a
// stolen cookie can read the UI, never write through the API.

// cookieName is the UI's session cookie.
const cookieName = "rumor_ui"

// cookieValue is the cookie that the token grants.
func cookieValue(token string) string {
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte("rumor web UI session"))
	return hex.EncodeToString(mac.Sum(nil))
}

// authorized reports whether r may read the UI.
func (u *UI) authorized(r *http.Request) bool {
	if !u.cfg.TokenReads {
		return true
	}
	if t := headerToken(r); t != "" {
		return equalSecret(t, u.cfg.Token)
	}
	c, err := r.Cookie(cookieName)
	return err == nil && equalSecret(c.Value, cookieValue(u.cfg.Token))
}

// headerToken returns the token r carries in a header, as the API reads it.
func headerToken(r *http.Request) string {
	if t := r.Header.Get("X-Consul-Token"); t != "" {
		return t
	}
	scheme, t, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(t)
	}
	return ""
}

// equalSecret compares in constant time, lengths included (by their sums).
func equalSecret(a, b string) bool {
	sa, sb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(sa[:], sb[:]) == 1
}

// loginPage answers 403 with the login form, which returns to the page asked for.
func (u *UI) loginPage(w http.ResponseWriter, r *http.Request, complaint string) {
	next := r.URL.RequestURI()
	if r.Method == http.MethodPost {
		next = r.PostFormValue("next")
	}
	data := pageData{Title: "Log in", Nav: "login", Self: u.self(), Now: u.cfg.Now(), Error: complaint, Next: safeNext(next)}
	var buf bytes.Buffer
	if err := u.tmpls["login"].ExecuteTemplate(&buf, "layout.html", data); err != nil {
		u.log.Error("ui: render login", "error", err)
	}
	writeHTML(w, r, http.StatusForbidden, buf.Bytes())
}

// safeNext keeps a return path inside the UI (no open redirect).
func safeNext(next string) string {
	p, err := url.Parse(next)
	if err != nil || p.Scheme != "" || p.Host != "" || !strings.HasPrefix(p.Path, Prefix) || strings.HasPrefix(next, "//") {
		return Prefix
	}
	return p.RequestURI()
}

// login checks the token of the login form and sets the UI's cookie.
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	token := r.PostFormValue("token")
	if !u.cfg.TokenReads {
		http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
		return
	}
	if token == "" || !equalSecret(token, u.cfg.Token) {
		u.loginPage(w, r, "That is not this agent's token (--http-token).")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: cookieValue(u.cfg.Token), Path: Prefix,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// logout forgets the cookie.
func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}
