// Package endpoint is a local stand-in for a Power BI push or streaming
// dataset: it accepts the relay's POSTs, validates them the way the real
// service would, and keeps every row in memory so that integration tests
// can assert on what was delivered, how often and in which batch sizes.
package endpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Limits of the real Power BI REST API, used as defaults so that a relay
// that works against the sink also works against the service.
const (
	DefaultMaxRows      = 10_000
	DefaultMaxBodyBytes = 16 << 20
)

// The body formats, named like the relay's sink formats.
const (
	FormatArray = "array" // [{row}, {row}]
	FormatRows  = "rows"  // {"rows":[{row}, {row}]}
)

// Options configures a Server. New gives zero fields their defaults.
type Options struct {
	// MaxRows is the most rows one POST may carry; more is a 400.
	// Default DefaultMaxRows (Power BI's rows-per-request limit).
	MaxRows int
	// MaxBodyBytes is the largest body accepted; more is a 413.
	// Default DefaultMaxBodyBytes (Power BI's push limit).
	MaxBodyBytes int64
	// Latency delays every answer to a POST, to exercise the relay's
	// timeouts and pipelining. Default 0. Rows are stored before the
	// delay, so a client that gives up during it has still delivered
	// them: the lost-acknowledgement case that makes at-least-once
	// delivery produce duplicates.
	Latency time.Duration
	// Reject, when set, injects faults. It sees the parsed, valid rows of
	// every POST and may be called concurrently; it must not modify them.
	// A non-zero status (200..599) is answered instead of accepting the
	// rows, which are then not stored; retryAfter > 0 adds a Retry-After
	// header, rounded up to whole seconds.
	Reject func(rows []Row) (status int, retryAfter time.Duration)
	// Logger receives one line per POST. Default: logs are discarded.
	Logger *slog.Logger
}

// Validate reports options that cannot describe a working endpoint. It is
// meant for options taken from flags or a config file, where a zero limit
// was asked for explicitly, so unlike New it rejects zero MaxRows and
// MaxBodyBytes instead of giving them their defaults.
func (o Options) Validate() error {
	switch {
	case o.Latency < 0:
		return fmt.Errorf("latency %s must not be negative", o.Latency)
	case o.MaxRows < 1:
		return fmt.Errorf("max rows %d must be at least 1", o.MaxRows)
	case o.MaxBodyBytes < 1:
		return fmt.Errorf("max body bytes %d must be at least 1", o.MaxBodyBytes)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.MaxRows <= 0 {
		o.MaxRows = DefaultMaxRows
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.Latency < 0 {
		o.Latency = 0
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Row is one stored row.
type Row struct {
	EventID string
	// Raw is the row's JSON object, compacted.
	Raw json.RawMessage
}

// Fields decodes the row; numbers become float64 as with json.Unmarshal.
func (r Row) Fields() (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(r.Raw, &m); err != nil {
		return nil, fmt.Errorf("decode row %s: %w", r.EventID, err)
	}
	return m, nil
}

// Request describes one POST received, accepted or not.
type Request struct {
	// At is when the request reached the handler.
	At time.Time
	// Rows is the number of rows in the body, 0 when it could not be
	// parsed.
	Rows int
	// Bytes is the body size read, at most MaxBodyBytes.
	Bytes int
	// Status is the status the sink answered (or would have answered, had
	// the client waited out Latency).
	Status         int
	IdempotencyKey string
	// Format is FormatArray, FormatRows or "" when not recognised.
	Format string
}

// Stats summarises what the sink received.
type Stats struct {
	// Requests counts POSTs answered 2xx.
	Requests int `json:"requests"`
	// Rejected counts POSTs answered with any other status.
	Rejected int `json:"rejected"`
	// Rows counts stored rows, duplicates included.
	Rows             int `json:"rows"`
	DistinctEventIDs int `json:"distinct_event_ids"`
	// Duplicates counts rows whose event_id was already stored, whether
	// by an earlier request or earlier in the same one.
	Duplicates int `json:"duplicates"`
	// MaxRowsPerRequest is the largest parsed batch, rejected ones
	// included, so that tests can check the relay's batch cap even while
	// faults are injected.
	MaxRowsPerRequest int `json:"max_rows_per_request"`
}

// Server is the sink's http.Handler. It is safe for concurrent use.
type Server struct {
	opts Options
	mux  *http.ServeMux

	mu       sync.Mutex
	stats    Stats
	rows     []Row
	ids      map[string]int
	requests []Request
}

var _ http.Handler = (*Server)(nil)

// New returns an empty sink.
func New(opts Options) *Server {
	s := &Server{opts: opts.withDefaults(), ids: make(map[string]int)}
	s.mux = http.NewServeMux()
	// "POST /" catches every POST path, /rows included: the relay posts to
	// whatever URL the user configured. Methods are disjoint from the
	// other patterns, so the mux answers 405 for e.g. PUT /rows.
	s.mux.HandleFunc("POST /", s.handleIngest)
	s.mux.HandleFunc("GET /stats", s.handleStats)
	s.mux.HandleFunc("GET /rows", s.handleRows)
	s.mux.HandleFunc("DELETE /rows", s.handleReset)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return s
}

// ServeHTTP routes the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.DistinctEventIDs = len(s.ids)
	return st
}

// Rows returns the stored rows in arrival order.
func (s *Server) Rows() []Row {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Row(nil), s.rows...)
}

// EventIDs maps each stored event_id to the number of times it was stored.
func (s *Server) EventIDs() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.ids)
}

// Requests returns every POST received, in the order they were decided.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Reset forgets all rows, requests and counters.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{}
	s.rows = nil
	s.ids = make(map[string]int)
	s.requests = nil
}

func (s *Server) handleIngest(w http.ResponseWriter, r *http.Request) {
	req := Request{At: time.Now(), IdempotencyKey: r.Header.Get("Idempotency-Key")}
	status, body, rows := s.ingest(w, r, &req)
	req.Status = status
	s.record(req, rows)

	// The path is logged but never the query string or body: Power BI
	// push URLs carry the dataset key in the query.
	level := slog.LevelInfo
	if status/100 != 2 {
		level = slog.LevelWarn
	}
	s.opts.Logger.LogAttrs(r.Context(), level, "post",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", status), slog.Int("rows", req.Rows))

	if s.opts.Latency > 0 {
		t := time.NewTimer(s.opts.Latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return // nobody is left to read the answer
		}
	}
	writeJSON(w, status, body)
}

// ingest decides the answer to one POST. rows is non-nil only when they
// are to be stored.
func (s *Server) ingest(w http.ResponseWriter, r *http.Request, req *Request) (status int, body any, rows []Row) {
	// io.ReadAll keeps what arrived before an error, so a 413 still
	// records its size.
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	req.Bytes = len(data)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge, errorBody(fmt.Sprintf("body exceeds %d bytes", s.opts.MaxBodyBytes)), nil
		}
		return http.StatusBadRequest, errorBody(fmt.Sprintf("read body: %v", err)), nil
	}
	rows, format, n, err := parseBody(data, s.opts.MaxRows)
	req.Format, req.Rows = format, n
	if err != nil {
		return http.StatusBadRequest, errorBody(err.Error()), nil
	}
	if s.opts.Reject != nil {
		if status, retryAfter := s.opts.Reject(rows); status != 0 {
			if status < 200 || status > 599 {
				return http.StatusInternalServerError, errorBody(fmt.Sprintf("reject hook returned invalid status %d", status)), nil
			}
			if retryAfter > 0 {
				secs := int64(math.Ceil(retryAfter.Seconds()))
				w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
			}
			return status, errorBody(fmt.Sprintf("injected %d %s", status, http.StatusText(status))), nil
		}
	}
	return http.StatusOK, map[string]int{"rows": len(rows)}, rows
}

func (s *Server) record(req Request, rows []Row) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, req)
	if req.Status/100 == 2 {
		s.stats.Requests++
	} else {
		s.stats.Rejected++
	}
	s.stats.MaxRowsPerRequest = max(s.stats.MaxRowsPerRequest, req.Rows)
	for _, row := range rows {
		if s.ids[row.EventID] > 0 {
			s.stats.Duplicates++
		}
		s.ids[row.EventID]++
	}
	s.rows = append(s.rows, rows...)
	s.stats.Rows += len(rows)
}

func (s *Server) handleStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

func (s *Server) handleRows(w http.ResponseWriter, _ *http.Request) {
	rows := s.Rows()
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, row := range rows {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(row.Raw)
	}
	buf.WriteString("]\n")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) handleReset(w http.ResponseWriter, _ *http.Request) {
	s.Reset()
	w.WriteHeader(http.StatusNoContent)
}

// parseBody validates a POST body as Power BI would and returns its rows.
// format and n are set as far as the body could be understood, so that a
// rejected request is still recorded with its size.
func parseBody(data []byte, maxRows int) (rows []Row, format string, n int, err error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, "", 0, errors.New("empty body")
	}
	var elems []json.RawMessage
	switch trimmed[0] {
	case '[':
		format = FormatArray
		if err := json.Unmarshal(data, &elems); err != nil {
			return nil, format, 0, fmt.Errorf("malformed JSON: %w", err)
		}
	case '{':
		format = FormatRows
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(data, &obj); err != nil {
			return nil, format, 0, fmt.Errorf("malformed JSON: %w", err)
		}
		raw, ok := obj["rows"]
		if !ok || len(obj) != 1 {
			return nil, format, 0, errors.New(`object body must have exactly one field, "rows"`)
		}
		if len(raw) == 0 || raw[0] != '[' {
			return nil, format, 0, errors.New(`"rows" must be an array`)
		}
		if err := json.Unmarshal(raw, &elems); err != nil {
			return nil, format, 0, fmt.Errorf("malformed JSON: %w", err)
		}
	default:
		return nil, "", 0, errors.New(`body must be a JSON array of rows or an object {"rows":[...]}`)
	}
	n = len(elems)
	if n == 0 {
		return nil, format, 0, errors.New("no rows")
	}
	if n > maxRows {
		return nil, format, n, fmt.Errorf("%d rows exceed the limit of %d per request", n, maxRows)
	}
	rows = make([]Row, 0, n)
	for i, el := range elems {
		row, err := parseRow(el)
		if err != nil {
			return nil, format, n, fmt.Errorf("row %d: %w", i, err)
		}
		rows = append(rows, row)
	}
	return rows, format, n, nil
}

func parseRow(el json.RawMessage) (Row, error) {
	// el is valid JSON already; a null or scalar would decode into a nil
	// map without error, hence the explicit check.
	if len(el) == 0 || el[0] != '{' {
		return Row{}, errors.New("not a JSON object")
	}
	// A map rather than a struct: struct decoding matches keys
	// case-insensitively and would accept "Event_ID".
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(el, &fields); err != nil {
		return Row{}, fmt.Errorf("decode: %w", err)
	}
	rawID, ok := fields["event_id"]
	if !ok {
		return Row{}, errors.New("missing event_id")
	}
	var id string
	if err := json.Unmarshal(rawID, &id); err != nil || rawID[0] != '"' {
		return Row{}, errors.New("event_id must be a string")
	}
	if id == "" {
		return Row{}, errors.New("event_id must not be empty")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, el); err != nil {
		return Row{}, fmt.Errorf("compact: %w", err)
	}
	return Row{EventID: id, Raw: buf.Bytes()}, nil
}

func errorBody(msg string) any { return map[string]string{"error": msg} }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
