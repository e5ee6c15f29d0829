package cli

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
)

// NewRegistry is a Prometheus registry with the Go runtime and process
// collectors, for one binary's /metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// readyTimeout bounds one readiness check, so that a hung dependency makes
// /readyz answer 503 instead of hanging the probe.
const readyTimeout = 3 * time.Second

// Ops adds /metrics, /healthz (the process answers) and /readyz (every
// check passes) to mux.
func Ops(mux *http.ServeMux, g prometheus.Gatherer, checks ...func(context.Context) error) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		for _, check := range checks {
			if err := check(ctx); err != nil {
				writeStatus(w, http.StatusServiceUnavailable, err.Error())
				return
			}
		}
		writeStatus(w, http.StatusOK, "ready")
	})
}

func writeStatus(w http.ResponseWriter, code int, status string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": status})
}

// Instrument counts h's requests by method and status code and observes
// their latency, under the given metric name prefix.
func Instrument(reg prometheus.Registerer, prefix string, h http.Handler) http.Handler {
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: prefix + "_http_request_duration_seconds", Help: "HTTP request latency.", Buckets: prometheus.DefBuckets,
	}, []string{"method", "code"})
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: prefix + "_http_requests_total", Help: "HTTP requests by method and status code.",
	}, []string{"method", "code"})
	reg.MustRegister(dur, reqs)
	return promhttp.InstrumentHandlerDuration(dur, promhttp.InstrumentHandlerCounter(reqs, h))
}

// Pprof serves net/http/pprof on its own mux, kept off the public port.
func Pprof() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// RunAll runs main and the helpers (servers) until main returns or one of
// them fails; then the others are stopped. It returns main's error, joined
// with that of a helper that failed while main ran (a server that could
// not listen). A helper's error once main has returned is left out: a
// server's shutdown is not the process's result, and a relay that stopped
// cleanly exits 0 though a /readyz probe outlasted the server's grace.
func RunAll(ctx context.Context, main func(context.Context) error, helpers ...func(context.Context) error) error {
	g, gctx := errgroup.WithContext(ctx)
	hctx, stopHelpers := context.WithCancel(gctx)
	defer stopHelpers()
	var mainDone atomic.Bool
	var mainErr error
	g.Go(func() error {
		mainErr = main(gctx)
		mainDone.Store(true)
		stopHelpers()
		return nil
	})
	for _, h := range helpers {
		g.Go(func() error {
			if err := h(hctx); err != nil && !mainDone.Load() {
				return err
			}
			return nil
		})
	}
	helperErr := g.Wait()
	return errors.Join(mainErr, helperErr)
}
