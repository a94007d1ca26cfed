package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// httpMetrics times every request by route pattern and status code. The route is the
// ServeMux pattern that matched ("GET /v1/health/service/{name}"), never the raw
// path, so the number of series stays bounded whatever clients ask for.
type httpMetrics struct {
	duration *prometheus.HistogramVec
}

// requestBuckets span a fast read (sub-millisecond) to a blocking query or watch
// stream held for its whole wait (MaxWait, 10 min).
var requestBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 60, 300, 600}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "rumor", Subsystem: "http", Name: "request_duration_seconds",
		Help:    "HTTP API requests by route pattern and status code, and how long they took (blocking queries and watch streams included).",
		Buckets: requestBuckets,
	}, []string{"route", "code"})}
	if err := reg.Register(m.duration); err != nil {
		return nil, fmt.Errorf("httpapi: register metrics: %w", err)
	}
	return m, nil
}

// instrument wraps next, the ServeMux, so every request is timed.
func (m *httpMetrics) instrument(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		mux.ServeHTTP(sw, r)
		// ServeMux records the matched pattern on the request it was given; ask it
		// again only if something in between replaced the request.
		route := r.Pattern
		if route == "" {
			_, route = mux.Handler(r)
		}
		m.duration.WithLabelValues(route, strconv.Itoa(sw.code())).Observe(time.Since(start).Seconds())
	})
}

// statusWriter remembers the status code a handler sent. It unwraps for
// http.ResponseController, so per-request deadlines and flushing still reach the
// connection.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// code is the status sent; 200 if the handler wrote nothing at all (net/http's answer).
func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// metricsHandler serves GET /metrics: the Prometheus text (or OpenMetrics, if asked)
// of everything on the agent's registry; nil without one.
func (h *Handler) metricsHandler(g prometheus.Gatherer) http.HandlerFunc {
	if g == nil {
		return nil
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      promErrorLog{h},
		ErrorHandling: promhttp.ContinueOnError, // a broken collector must not hide the rest
	}).ServeHTTP
}

// promErrorLog sends promhttp's gathering errors to the API's logger.
type promErrorLog struct{ h *Handler }

func (l promErrorLog) Println(v ...any) {
	l.h.log.Error("metrics: gather", "error", fmt.Sprint(v...))
}
