// Package ui is rumor's web UI, served by every agent at /ui/ on its HTTP address:
// what is failing now (the landing page), every service with its health counts,
// filters and paging, a service's instances with their checks, every node with its
// gossip state, round-trip time and a membership timeline, the instances imported
// from mDNS (the LAN page), and this agent's rates, proxy upstreams and event log. It is built from html/template and files embedded in the binary: no
// build step, and nothing is loaded from outside the agent (a Content-Security-Policy
// says so to the browser).
//
// It reads the catalog and the agent through interfaces it declares ([Catalog],
// [Agent]) and writes nothing: it is an adapter like the HTTP API, which mounts it
// (httpapi.Config.UI), and imports no other adapter.
//
// # Pages and live updates
//
// Every page is whole as sent, so it works without JavaScript (reload to refresh).
// Its one script (assets/ui.js) opens one server-sent-events stream per tab, on the
// page's own URL with Accept: text/event-stream, and replaces the page's <main> with
// the server's rendering of it whenever that changed (live.go). Nothing is polled by
// the browser. Lists are paged on the server, 50 rows a page. Sparklines are inline
// SVG drawn by Go (render.go).
//
// The pages read the model (model.go), the UI's own view of the catalog: one
// goroutine follows the catalog's index and, at most once per Config.Coalesce
// (250 ms) and not before a fifth of it has passed since the change (so that the
// UI does not compete with blocking queries for the CPU at the moment every agent
// applies a change), reads again only the nodes that moved (the catalog's log of node
// changes, Catalog.NodesChangedSince; every node's index only when that log no
// longer reaches back), and keeps per-service counts, the failing checks with the
// time this agent first saw them fail, and an event log. A service's page reads its
// instances from the catalog. The sampler (sampler.go) keeps the last 60 samples of
// the request and change rates, and of each member's round-trip time.
//
// Live pages are rendered by one goroutine, not by their streams: once per URL that
// open tabs show, when what the page reads moved (the model, the sampler, or
// Config.Reachability's version, polled once per Coalesce) and only when the page's
// data differ from the last rendering's; the streams of that URL then write the same
// bytes, gzipped once for all of them. Rows that pages show by the hundred (failing
// checks, events) are written once, when the model first holds them, and completed
// with their age at each rendering.
//
// # Security
//
// With Config.TokenReads the UI, like the API's reads, needs the token: in
// X-Consul-Token or Authorization: Bearer, or in the cookie the login form sets
// (HttpOnly, SameSite=Strict, Path=/ui/), which holds an HMAC of the token rather than
// the token and so opens the UI only, never the API. The UI changes nothing, so a
// token without TokenReads leaves it open, as it leaves the API's reads.
//
// # Concurrency
//
// A UI serves requests concurrently. Start runs three goroutines (follow, sample and
// liveLoop); each live stream runs on its request's goroutine and ends when the
// client goes or Close is called; Close waits for the goroutines Start started.
//
// # Testing
//
// ui_test.go checks every page as a browser without JavaScript gets it (the HTML
// parsed with golang.org/x/net/html), the filters and paging, the token rules and the
// live stream, on a real catalog and a fake agent. browser_test.go drives a real
// headless Chromium (ui/uitest, chromedp) against real agents gossiping on loopback.
// bench_test.go measures the pages at 10,000 nodes × 10 services.
package ui
