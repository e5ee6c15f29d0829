package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ddboutbox/ddboutbox/cmd/analytics-sink/endpoint"
)

// maxSinkBody bounds what the arrival recorder reads of one POST; the
// endpoint's own cap (16 MB) is lower, so nothing valid is cut.
const maxSinkBody = 32 << 20

// sink is a local analytics endpoint (endpoint.Server) behind a handler
// that notes when each event_id first arrived, before the endpoint's
// latency: the "row received" instant of the end-to-end latency.
type sink struct {
	srv  *endpoint.Server
	http *http.Server
	url  string

	mu sync.Mutex
	// answered counts the POSTs the endpoint answered, accepted or not. It
	// moves with arrived, under mu, once the answer is written: a sample
	// then never holds a request without its rows, nor rows without their
	// request (the endpoint's own count moves before its latency).
	answered int
	arrived  map[string]time.Time // event_id -> first arrival
	// byAggregate is the first arrival of a row per aggregate_id, under
	// aggregateKey: booking-http only learns the booking id.
	byAggregate map[string]time.Time
}

// aggregateKey is the commit key of a booking known by its id only.
func aggregateKey(id string) string { return "aggregate:" + id }

// startSink serves a fresh endpoint on a free loopback port.
func startSink(latency time.Duration) (*sink, error) {
	s := &sink{
		srv:         endpoint.New(endpoint.Options{Latency: latency}),
		arrived:     make(map[string]time.Time),
		byAggregate: make(map[string]time.Time),
	}
	var err error
	if s.http, s.url, err = serveLoopback(s); err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	s.url += "/rows"
	return s, nil
}

// serveLoopback serves h on a free loopback port and returns its base URL.
func serveLoopback(h http.Handler) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, "http://" + ln.Addr().String(), nil
}

// shutdown stops srv, waiting up to 5 s for requests in flight.
func shutdown(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = srv.Close()
	}
}

// ServeHTTP hands the request to the endpoint and, if the endpoint
// accepted it, records its rows as arrived when the request came in: a
// row the endpoint refused has not been received, whatever it carried.
func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.srv.ServeHTTP(w, r)
		return
	}
	at := time.Now()
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSinkBody))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	s.srv.ServeHTTP(sw, r)
	s.note(at, body, sw.code/100 == 2)
}

// statusWriter keeps the status code a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// note counts an answered POST and, if the endpoint accepted it, records
// the first arrival of every event_id in body (an array of rows or
// {"rows":[...]}).
func (s *sink) note(at time.Time, body []byte, accepted bool) {
	type row struct {
		EventID     string `json:"event_id"`
		AggregateID string `json:"aggregate_id"`
	}
	var rows []row
	if accepted {
		if err := json.Unmarshal(body, &rows); err != nil {
			var wrapped struct {
				Rows []row `json:"rows"`
			}
			_ = json.Unmarshal(body, &wrapped) // neither form: no rows
			rows = wrapped.Rows
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answered++
	for _, r := range rows {
		if _, ok := s.arrived[r.EventID]; !ok && r.EventID != "" {
			s.arrived[r.EventID] = at
		}
		if k := aggregateKey(r.AggregateID); r.AggregateID != "" {
			if _, ok := s.byAggregate[k]; !ok {
				s.byAggregate[k] = at
			}
		}
	}
}

// arrivals returns a copy of the first-arrival times, by event_id and by
// aggregateKey.
func (s *sink) arrivals() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := maps.Clone(s.arrived)
	maps.Copy(all, s.byAggregate)
	return all
}

// posts is how many POSTs the endpoint answered so far, accepted or not:
// what the benchmark calls endpoint requests everywhere.
func (s *sink) posts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.answered
}

// received is how many distinct event ids have arrived.
func (s *sink) received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.arrived)
}

func (s *sink) close() { shutdown(s.http) }

// waitForAll waits, at most timeout, until every key of commits arrived,
// and returns how long it waited.
func (s *sink) waitForAll(ctx context.Context, commits map[string]time.Time, timeout time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < timeout && ctx.Err() == nil {
		if s.missing(commits) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// missing is how many keys of commits have not arrived.
func (s *sink) missing(commits map[string]time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k := range commits {
		_, ok := s.arrived[k]
		if !ok {
			_, ok = s.byAggregate[k]
		}
		if !ok {
			n++
		}
	}
	return n
}
