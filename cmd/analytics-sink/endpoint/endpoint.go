// Package endpoint is a local stand-in for a Power BI push or streaming
// dataset: it accepts the relay's POSTs, validates them the way the real
// service would, and keeps every row in memory so that integration tests
// can assert on what was delivered, how often and in which batch sizes.
//
// In strict mode (Options.Profile) it enforces one of the relay's sink
// profiles: body format, row and byte caps, request rate and requests in
// flight. It can verify Standard Webhooks signatures (Options.Secret) and
// inject latency and random failures, for demos and tests.
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
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ddboutbox/ddboutbox/relay"
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

// DefaultRateTolerance is how early, at most, a request may arrive in
// strict mode relative to the profile's rate; see Options.RateTolerance.
const DefaultRateTolerance = 50 * time.Millisecond

// Why a request was rejected, as recorded in Request.Reason.
const (
	// ReasonSize: the body exceeded the byte cap (413).
	ReasonSize = "size"
	// ReasonRows: the body held more rows than the row cap (400, as Power
	// BI answers).
	ReasonRows = "rows"
	// ReasonFormat: strict mode, the body was valid but not in the
	// profile's format (400).
	ReasonFormat = "format"
	// ReasonInvalid: the body was not a valid batch of rows (400).
	ReasonInvalid = "invalid"
	// ReasonRate: strict mode, the request came faster than the profile's
	// rate (429 with Retry-After).
	ReasonRate = "rate"
	// ReasonInFlight: strict mode, the profile's limit of requests being
	// handled at once was reached (429 with Retry-After).
	ReasonInFlight = "inflight"
	// ReasonSignature: a secret is set and the request's Standard Webhooks
	// signature was missing, stale or wrong (401).
	ReasonSignature = "signature"
	// ReasonInjected: a random failure injected by FailureRate (503).
	ReasonInjected = "injected"
	// ReasonHook: the Reject hook answered.
	ReasonHook = "hook"
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

	// Profile names a relay sink profile (relay.ProfileNames) and turns on
	// strict mode, which rejects anything over the profile's limits:
	//   - a body over its byte cap: 413 (reason "size");
	//   - more rows than its row cap: 400 (reason "rows"), as Power BI does;
	//   - a valid body in the other format: 400 (reason "format");
	//   - a request while MaxInFlight others are being handled (the answer
	//     delayed by Latency included): 429 with Retry-After (reason
	//     "inflight");
	//   - a request faster than its rate: 429 with Retry-After (reason
	//     "rate"). The rate is a token bucket of the profile's rate and
	//     burst, the same as the relay's limiter, judged on Request.At in
	//     arrival order and charged by every request it admits, except one
	//     then refused for its signature; see RateTolerance.
	// Those two are decided on arrival, before the body is read, so they
	// take precedence over the checks on the body.
	// MaxRows and MaxBodyBytes still apply when they are lower. "" (the
	// default) enforces only MaxRows and MaxBodyBytes. New panics on an
	// unknown profile: Validate reports it.
	Profile string
	// RateTolerance is how early a request may arrive in strict mode and
	// still count as paced, absorbing the jitter between the relay's
	// limiter and this handler (the cell delay variation tolerance of
	// GCRA policing). It never lets a sustained rate above the profile's
	// through: each early arrival is paid for by the next. Default (0):
	// DefaultRateTolerance, at most half the profile's request interval.
	// Negative: none, exact token-bucket conformance.
	RateTolerance time.Duration
	// FailureRate is the fraction, 0 to 1, of otherwise valid POSTs
	// answered 503 at random without storing their rows (reason
	// "injected"). Default 0.
	FailureRate float64
	// Secret, when set, makes every POST carry a valid Standard Webhooks
	// signature made with it (relay.Verify, 5 minutes of tolerance), or be
	// answered 401 {"error":"invalid signature"} (reason "signature"). The
	// secret never appears in logs, answers or errors.
	Secret relay.Secret
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
	case !(o.FailureRate >= 0 && o.FailureRate <= 1): // NaN fails both
		return fmt.Errorf("failure rate %v must be between 0 and 1", o.FailureRate)
	}
	if o.Profile != "" {
		if _, err := relay.LookupProfile(o.Profile); err != nil {
			return fmt.Errorf("profile %q must be one of %s", o.Profile, strings.Join(relay.ProfileNames(), ", "))
		}
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
	// Bytes is the body size read, at most the byte cap (MaxBodyBytes or
	// the profile's, whichever is lower).
	Bytes int
	// Status is the status the sink answered (or would have answered, had
	// the client waited out Latency).
	Status         int
	IdempotencyKey string
	// Format is FormatArray, FormatRows or "" when not recognised.
	Format string
	// Reason says why a request was rejected, one of the Reason
	// constants; "" when it was accepted.
	Reason string
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

	// Rejections by reason, each also counted in Rejected; always in the
	// JSON, so that a check for 0 finds a 0. Count other reasons (rows,
	// format, ...) in Requests.
	RejectedForSize      int `json:"rejected_for_size"`
	RejectedForRate      int `json:"rejected_for_rate"`
	RejectedForInFlight  int `json:"rejected_for_inflight"`
	RejectedForSignature int `json:"rejected_for_signature"`
	// InjectedFailures counts 503s injected by FailureRate.
	InjectedFailures int `json:"injected_failures"`
}

// Server is the sink's http.Handler. It is safe for concurrent use.
type Server struct {
	opts   Options
	limits limits
	mux    *http.ServeMux
	// now is the clock; tests replace it before serving.
	now func() time.Time

	mu       sync.Mutex
	stats    Stats
	rows     []Row
	ids      map[string]int
	requests []Request
	// tat is the rate limit's theoretical arrival time (GCRA): the time
	// at which the bucket would hold exactly Burst-1 tokens. Zero: full.
	tat time.Time
	// charges counts requests charged to the rate, for refunds.
	charges uint64
	// inFlight counts POSTs being handled. Reset leaves it alone.
	inFlight int
}

// limits are what a Server enforces, from Options and the profile.
type limits struct {
	maxRows  int
	maxBytes int64
	format   string // "" accepts both
	// interval is 1/rate, 0 for no rate limit; tau is how far ahead of
	// tat a request may arrive: (burst-1) intervals plus the tolerance.
	interval, tau time.Duration
	maxInFlight   int // 0: no limit
}

func newLimits(o Options) limits {
	l := limits{maxRows: o.MaxRows, maxBytes: o.MaxBodyBytes}
	if o.Profile == "" {
		return l
	}
	p, err := relay.LookupProfile(o.Profile)
	if err != nil {
		panic(fmt.Sprintf("endpoint.New: %v", err))
	}
	l.maxRows = min(l.maxRows, p.MaxRows)
	l.maxBytes = min(l.maxBytes, int64(p.MaxBytes))
	l.format = string(p.Format)
	l.maxInFlight = p.MaxInFlight
	if !p.Unlimited() {
		l.interval = time.Duration(float64(time.Second) / float64(p.RequestsPerSecond))
		tol := o.RateTolerance
		switch {
		case tol == 0:
			tol = min(DefaultRateTolerance, l.interval/2)
		case tol < 0:
			tol = 0
		}
		l.tau = time.Duration(max(p.Burst, 1)-1)*l.interval + tol
	}
	return l
}

var _ http.Handler = (*Server)(nil)

// New returns an empty sink. It panics if opts.Profile is not a known
// profile; Validate reports that as an error.
func New(opts Options) *Server {
	opts = opts.withDefaults()
	s := &Server{opts: opts, limits: newLimits(opts), now: time.Now, ids: make(map[string]int)}
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
	s.tat = time.Time{}
}

// answer is the decision on one POST.
type answer struct {
	status int
	body   any
	// reason is "" for an accepted request, else a Reason constant.
	reason string
	// retryAfter > 0 adds a Retry-After header, rounded up to seconds.
	retryAfter time.Duration
	// rows are stored when the answer is 2xx.
	rows []Row
	// detail is logged, never sent: why a signature was rejected.
	detail string
}

func reject(status int, reason, msg string) answer {
	return answer{status: status, reason: reason, body: errorBody(msg)}
}

func (s *Server) handleIngest(w http.ResponseWriter, r *http.Request) {
	req := Request{IdempotencyKey: r.Header.Get("Idempotency-Key")}
	ticket, early := s.arrive(&req)
	if early == nil {
		defer s.leave()
	}
	a := s.ingest(w, r, &req, ticket, early)
	req.Status, req.Reason = a.status, a.reason
	s.record(req, a.rows)

	// The path is logged but never the query string, the headers or the
	// body: Power BI push URLs carry the dataset key in the query, and
	// the signature headers are derived from the secret.
	level := slog.LevelInfo
	if a.status/100 != 2 {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", a.status), slog.Int("rows", req.Rows),
	}
	if a.reason != "" {
		attrs = append(attrs, slog.String("reason", a.reason))
	}
	if a.detail != "" {
		attrs = append(attrs, slog.String("detail", a.detail))
	}
	s.opts.Logger.LogAttrs(r.Context(), level, "post", attrs...)

	if a.retryAfter > 0 {
		secs := int64(math.Ceil(a.retryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	if s.opts.Latency > 0 {
		t := time.NewTimer(s.opts.Latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return // nobody is left to read the answer
		}
	}
	writeJSON(w, a.status, a.body)
}

// arrive stamps req.At and applies strict mode's limits on arrival, before
// the body is read: the in-flight cap, then the rate. Doing both and
// reading the clock under one lock makes the rate judge requests in the
// order of their recorded timestamps, so that a client paced at the rate
// is never refused because a later request overtook an earlier one while
// their bodies were read. A non-nil early answer refuses the request, which
// then holds no slot and was not charged; otherwise the caller must call
// leave. ticket identifies the rate charge for refund.
func (s *Server) arrive(req *Request) (ticket uint64, early *answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	req.At = s.now()
	if s.limits.maxInFlight > 0 && s.inFlight >= s.limits.maxInFlight {
		a := reject(http.StatusTooManyRequests, ReasonInFlight,
			fmt.Sprintf("more than %d requests in flight", s.limits.maxInFlight))
		a.retryAfter = time.Second
		return 0, &a
	}
	if ok, wait := s.admit(req.At); !ok {
		a := reject(http.StatusTooManyRequests, ReasonRate, "request rate over the limit")
		a.retryAfter = wait
		return 0, &a
	}
	s.inFlight++
	return s.charges, nil
}

func (s *Server) leave() {
	s.mu.Lock()
	s.inFlight--
	s.mu.Unlock()
}

// admit charges one request arriving at t to the rate limit, a GCRA
// (virtual scheduling) equivalent to a token bucket of the profile's rate
// and burst that starts full, loosened by the tolerance. A refused request
// is not charged. wait is how long until it would have been admitted.
// s.mu must be held.
func (s *Server) admit(t time.Time) (ok bool, wait time.Duration) {
	if s.limits.interval == 0 {
		return true, 0
	}
	tat := s.tat
	if tat.Before(t) {
		tat = t
	}
	if earliest := tat.Add(-s.limits.tau); t.Before(earliest) {
		return false, earliest.Sub(t)
	}
	s.tat = tat.Add(s.limits.interval)
	s.charges++
	return true, 0
}

// refund gives back the rate charge of ticket, as long as no request was
// charged after it (otherwise the charge stays: stricter, never laxer).
func (s *Server) refund(ticket uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limits.interval > 0 && ticket == s.charges && ticket > 0 {
		s.tat = s.tat.Add(-s.limits.interval)
		s.charges--
	}
}

// ingest decides the answer to one POST: early when arrive refused it,
// else by the byte cap, the signature, the body and injected failures, in
// this order. The body is read and parsed even when the answer is early,
// so that every request is recorded with its size and rows.
func (s *Server) ingest(w http.ResponseWriter, r *http.Request, req *Request, ticket uint64, early *answer) answer {
	// io.ReadAll keeps what arrived before an error, so a 413 still
	// records its size.
	data, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, s.limits.maxBytes))
	req.Bytes = len(data)
	var (
		rows     []Row
		format   string
		parseErr error
	)
	if readErr == nil {
		var n int
		rows, format, n, parseErr = parseBody(data, s.limits.maxRows)
		req.Format, req.Rows = format, n
	}
	switch {
	case early != nil:
		return *early
	case readErr != nil:
		var tooBig *http.MaxBytesError
		if errors.As(readErr, &tooBig) {
			return reject(http.StatusRequestEntityTooLarge, ReasonSize, fmt.Sprintf("body exceeds %d bytes", s.limits.maxBytes))
		}
		return reject(http.StatusBadRequest, ReasonInvalid, fmt.Sprintf("read body: %v", readErr))
	}
	if len(s.opts.Secret) > 0 {
		if err := relay.Verify(s.opts.Secret, r.Header, data, req.At, 0); err != nil {
			// A forged request must not spend the dataset's budget.
			s.refund(ticket)
			a := reject(http.StatusUnauthorized, ReasonSignature, "invalid signature")
			a.detail = err.Error()
			return a
		}
	}
	switch {
	case parseErr != nil && req.Rows > s.limits.maxRows:
		return reject(http.StatusBadRequest, ReasonRows, parseErr.Error())
	case parseErr != nil:
		return reject(http.StatusBadRequest, ReasonInvalid, parseErr.Error())
	case s.limits.format != "" && format != s.limits.format:
		return reject(http.StatusBadRequest, ReasonFormat, fmt.Sprintf("body is in the %s format, want %s", format, s.limits.format))
	}
	if s.opts.FailureRate > 0 && rand.Float64() < s.opts.FailureRate {
		return reject(http.StatusServiceUnavailable, ReasonInjected, "injected 503 Service Unavailable")
	}
	if s.opts.Reject != nil {
		if status, retryAfter := s.opts.Reject(rows); status != 0 {
			if status < 200 || status > 599 {
				return reject(http.StatusInternalServerError, ReasonHook, fmt.Sprintf("reject hook returned invalid status %d", status))
			}
			a := reject(status, ReasonHook, fmt.Sprintf("injected %d %s", status, http.StatusText(status)))
			a.retryAfter = retryAfter
			return a
		}
	}
	return answer{status: http.StatusOK, body: map[string]int{"rows": len(rows)}, rows: rows}
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
	switch req.Reason {
	case ReasonSize:
		s.stats.RejectedForSize++
	case ReasonRate:
		s.stats.RejectedForRate++
	case ReasonInFlight:
		s.stats.RejectedForInFlight++
	case ReasonSignature:
		s.stats.RejectedForSignature++
	case ReasonInjected:
		s.stats.InjectedFailures++
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
