package ui

import (
	"bytes"
	"compress/gzip"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

//go:embed templates/*.html
var templateFS embed.FS

// pageNames are the templates that are pages; each is parsed with layout.html and
// defines "main", the part a live stream replaces.
var pageNames = []string{"failing", "services", "service", "nodes", "node", "agent", "lan", "login", "notfound"}

// parseTemplates returns each page's template set, by name.
func parseTemplates() (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("ui: parse layout: %w", err)
	}
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("ui: parse %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

var funcs = template.FuncMap{
	"status":        func(s catalog.Status) string { return s.String() },
	"liveness":      func(l catalog.Liveness) string { return l.String() },
	"since":         since,
	"spark":         sparkline,
	"ms":            formatMS,
	"rate":          formatRate,
	"join":          strings.Join,
	"trunc":         truncate,
	"healthFilters": func() []string { return healthFilters },
	"states":        func() []string { return []string{"alive", "suspect", "failed", "left"} },
	"last": func(vals []float64) float64 {
		if len(vals) == 0 {
			return gap
		}
		return vals[len(vals)-1]
	},
	"evs": func(events []Event, now time.Time) eventsData {
		return eventsData{events, now}
	},
	"eventList": eventList,
	"ageSlot":   ageSlot,
	"plural": func(n int, one, many string) string {
		if n == 1 {
			return one
		}
		return many
	},
}

// since renders how long ago t was as a <time> element that the page's script keeps
// counting; approx marks a time that is only a lower bound.
func since(t time.Time, now time.Time, approx bool) template.HTML {
	if t.IsZero() {
		return "—"
	}
	prefix := ""
	if approx {
		prefix = "≥ "
	}
	return template.HTML(fmt.Sprintf(`<time datetime="%s" data-rel="%s" title="%s">%s%s</time>`,
		t.UTC().Format(time.RFC3339), prefix, t.Local().Format("2006-01-02 15:04:05 MST"), prefix, formatAge(now.Sub(t))))
}

// eventsData is the "events" template's data: an event log and the time now.
type eventsData struct {
	Events []Event
	Now    time.Time
}

// eventList renders the items of an event log. Each event's HTML but its age was
// written once, when it was logged (Event.html), so that a page of a hundred events,
// re-rendered at every change, costs a hundred concatenations, not a hundred
// template actions through reflection. It reads the same as
// <li class="ev-{{.Kind}}">{{since .Time $.Now false}} <span class="kind">{{.Kind}}</span> {{.Text}}</li>.
func eventList(d eventsData) template.HTML {
	var b strings.Builder
	for i := range d.Events {
		ev := &d.Events[i]
		if ev.head == "" { // not logged by the model (tests)
			ev.head, ev.tail = eventHTML(ev)
		}
		b.WriteString(ev.head)
		b.WriteString(formatAge(d.Now.Sub(ev.Time)))
		b.WriteString(ev.tail)
	}
	return template.HTML(b.String())
}

// checkRow renders a failing check's row of the failing page: its HTML but its age
// was written once (checkRowHTML), when the model first saw the check so, and a
// page of them, re-rendered at every change, costs concatenations.
func checkRow(f *failView, now time.Time) template.HTML {
	head, tail := f.head, f.tail
	if head == "" { // not from the model (tests)
		head, tail = checkRowHTML(f)
	}
	return template.HTML(head + formatAge(now.Sub(f.Since)) + tail)
}

// checkRow joins funcs here: it uses them (through checkRowTemplate), so a literal
// entry would be an initialization cycle.
func init() { funcs["checkRow"] = checkRow }

// checkRowTemplate is templates/checkrow.html, parsed on first use.
var checkRowTemplate = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/checkrow.html"))
})

// ageMark stands for the age in checkrow.html's output, where checkRowHTML cuts it.
const ageMark = "\x00age\x00"

// ageSlot is since without the age, which checkRow adds at each rendering.
func ageSlot(t time.Time, approx bool) template.HTML {
	prefix := ""
	if approx {
		prefix = "≥ "
	}
	return template.HTML(`<time datetime="` + t.UTC().Format(time.RFC3339) + `" data-rel="` + prefix + `" title="` +
		t.Local().Format("2006-01-02 15:04:05 MST") + `">` + prefix + ageMark + `</time>`)
}

// checkRowHTML returns a failing check's row around its age.
func checkRowHTML(f *failView) (head, tail string) {
	var b strings.Builder
	if err := checkRowTemplate().ExecuteTemplate(&b, "checkrow", f); err != nil {
		return "<tr><td>" + template.HTMLEscapeString(err.Error()) + "</td>", "</tr>"
	}
	head, tail, _ = strings.Cut(b.String(), ageMark)
	return head, tail
}

// eventHTML returns an event's list item around its age.
func eventHTML(ev *Event) (head, tail string) {
	kind := template.HTMLEscapeString(ev.Kind)
	head = `<li class="ev-` + kind + `"><time datetime="` + ev.Time.UTC().Format(time.RFC3339) + `" data-rel="" title="` +
		ev.Time.Local().Format("2006-01-02 15:04:05 MST") + `">`
	tail = `</time> <span class="kind">` + kind + `</span> ` + template.HTMLEscapeString(ev.Text) + "</li>"
	return head, tail
}

// formatAge says how long d is, in its two largest units: "4s", "3m 12s", "2h 5m", "3d 4h".
func formatAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm %ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh %dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd %dh", s/86400, s%86400/3600)
}

// formatMS renders milliseconds, "—" for unknown (gap) or none.
func formatMS(v float64) string {
	if v <= 0 {
		return "—"
	}
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " ms"
}

// formatRate renders a per-second rate.
func formatRate(v float64) string {
	if v < 0 { // gap
		return "—"
	}
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 1, 64) + "/s"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + "/s"
}

// truncate cuts s to n bytes at a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// Sparkline geometry, in CSS pixels.
const sparkW, sparkH = 120, 24

// sparkline draws vals (oldest first; a negative value, gap, is a gap) as a small inline SVG line,
// scaled from 0 to the largest value, with the range in its title.
func sparkline(vals []float64) template.HTML {
	hi := 0.0
	n := 0
	for _, v := range vals {
		if v >= 0 {
			hi = max(hi, v)
			n++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spark" width="%d" height="%d" viewBox="0 0 %d %d" role="img">`, sparkW, sparkH, sparkW, sparkH)
	fmt.Fprintf(&b, "<title>%d samples, max %s</title>", n, strconv.FormatFloat(hi, 'g', 3, 64))
	step := float64(sparkW-2) / float64(historyLen-1)
	x0 := float64(sparkW-1) - step*float64(len(vals)-1) // the newest sample at the right edge
	var seg []string
	flush := func() {
		switch len(seg) {
		case 0:
		case 1: // a lone sample between gaps: a dot
			x, y, _ := strings.Cut(seg[0], ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="1"/>`, x, y)
		default:
			fmt.Fprintf(&b, `<polyline points="%s"/>`, strings.Join(seg, " "))
		}
		seg = seg[:0]
	}
	for i, v := range vals {
		if v < 0 {
			flush()
			continue
		}
		y := float64(sparkH - 1)
		if hi > 0 {
			y = 1 + float64(sparkH-2)*(1-v/hi)
		}
		seg = append(seg, fmt.Sprintf("%.1f,%.1f", x0+step*float64(i), y))
	}
	flush()
	b.WriteString("</svg>")
	return template.HTML(b.String())
}

// acceptsGzip reports whether the client takes gzip (browsers always do); a
// q=0 refusal is honoured.
func acceptsGzip(r *http.Request) bool {
	for item := range strings.SplitSeq(r.Header.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(item), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") {
			k, v, _ := strings.Cut(params, "=")
			if strings.TrimSpace(k) != "q" {
				return true
			}
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && q > 0
		}
	}
	return false
}

// gzipWriters recycles compressors: each holds about a megabyte of state.
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // a valid level
	return zw
}}

// writeHTML sends a rendered page, gzipped when the client takes it.
func writeHTML(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Add("Vary", "Accept, Accept-Encoding")
	securityHeaders(h)
	if len(body) > 1024 && acceptsGzip(r) {
		var buf bytes.Buffer
		zw := gzipWriters.Get().(*gzip.Writer)
		zw.Reset(&buf)
		_, _ = zw.Write(body) // to memory
		_ = zw.Close()
		gzipWriters.Put(zw)
		body = buf.Bytes()
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// securityHeaders forbid everything the UI does not do: scripts and styles come only
// from the agent itself, nothing is framed, no referrer leaves.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}
