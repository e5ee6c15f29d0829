package endpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ddboutbox/ddboutbox/relay"
)

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, url, body string, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func post(t *testing.T, url, body string) response {
	t.Helper()
	return do(t, http.MethodPost, url, body, nil)
}

func newSink(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	s := New(opts)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

// rowsJSON builds n rows with event ids prefix-0 .. prefix-(n-1).
func rowsJSON(prefix string, n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"event_id":"%s-%d","event_type":"BookingCreated","amount":%d}`, prefix, i, i)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func wantErrorBody(t *testing.T, r response) {
	t.Helper()
	var e struct{ Error string }
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error == "" {
		t.Errorf("body %q: want JSON {\"error\":...}", r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
}

func TestAcceptsBothFormats(t *testing.T) {
	tests := []struct {
		name, path, body string
		wantFormat       string
		wantIDs          []string
		wantRaw          string // first stored row
	}{
		{
			name: "array", path: "/", wantFormat: FormatArray,
			body:    `[{"event_id":"a","n":1},{"event_id":"b"}]`,
			wantIDs: []string{"a", "b"}, wantRaw: `{"event_id":"a","n":1}`,
		},
		{
			name: "rows object", path: "/rows", wantFormat: FormatRows,
			body:    `{"rows":[{"event_id":"a"}]}`,
			wantIDs: []string{"a"}, wantRaw: `{"event_id":"a"}`,
		},
		{
			name: "leading whitespace and compaction", path: "/datasets/x/rows?key=k", wantFormat: FormatArray,
			body:    " \n\t[ { \"event_id\" : \"a\" ,\n \"nested\" : { \"x\" : [1, 2] } } ]\n",
			wantIDs: []string{"a"}, wantRaw: `{"event_id":"a","nested":{"x":[1,2]}}`,
		},
		{
			name: "rows object with whitespace", path: "/datasets/x/rows", wantFormat: FormatRows,
			body:    "\r\n { \"rows\" : [ {\"event_id\":\"a\"} , {\"event_id\":\"b\"} ] } ",
			wantIDs: []string{"a", "b"}, wantRaw: `{"event_id":"a"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := newSink(t, Options{})
			r := post(t, ts.URL+tt.path, tt.body)
			if r.status != http.StatusOK {
				t.Fatalf("status = %d (%s), want 200", r.status, r.body)
			}
			var got struct{ Rows int }
			if err := json.Unmarshal(r.body, &got); err != nil || got.Rows != len(tt.wantIDs) {
				t.Errorf("body = %s, want {\"rows\":%d}", r.body, len(tt.wantIDs))
			}
			rows := s.Rows()
			if len(rows) != len(tt.wantIDs) {
				t.Fatalf("stored %d rows, want %d", len(rows), len(tt.wantIDs))
			}
			for i, id := range tt.wantIDs {
				if rows[i].EventID != id {
					t.Errorf("row %d event id = %q, want %q", i, rows[i].EventID, id)
				}
			}
			if string(rows[0].Raw) != tt.wantRaw {
				t.Errorf("raw = %s, want %s", rows[0].Raw, tt.wantRaw)
			}
			reqs := s.Requests()
			if len(reqs) != 1 || reqs[0].Format != tt.wantFormat || reqs[0].Status != 200 || reqs[0].Bytes != len(tt.body) {
				t.Errorf("requests = %+v, want one %s request of %d bytes answered 200", reqs, tt.wantFormat, len(tt.body))
			}
			if st := s.Stats(); st.Requests != 1 || st.Rejected != 0 || st.Rows != len(tt.wantIDs) {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	tests := []struct {
		name, body string
		wantInErr  string
		wantRows   int // as recorded in Request.Rows
	}{
		{name: "malformed JSON", body: `[{"event_id":"a"`, wantInErr: "malformed"},
		{name: "trailing garbage", body: `[{"event_id":"a"}] x`, wantInErr: "malformed"},
		{name: "malformed rows object", body: `{"rows":[}`, wantInErr: "malformed"},
		{name: "empty body", body: ``, wantInErr: "empty"},
		{name: "scalar body", body: `"rows"`, wantInErr: "array"},
		{name: "row is a number", body: `[{"event_id":"a"},1]`, wantInErr: "row 1: not a JSON object", wantRows: 2},
		{name: "row is null", body: `[null]`, wantInErr: "not a JSON object", wantRows: 1},
		{name: "row is an array", body: `{"rows":[[{"event_id":"a"}]]}`, wantInErr: "not a JSON object", wantRows: 1},
		{name: "missing event_id", body: `[{"event_type":"x"}]`, wantInErr: "missing event_id", wantRows: 1},
		{name: "event_id differs in case", body: `[{"Event_ID":"a"}]`, wantInErr: "missing event_id", wantRows: 1},
		{name: "empty event_id", body: `[{"event_id":""}]`, wantInErr: "must not be empty", wantRows: 1},
		{name: "numeric event_id", body: `[{"event_id":7}]`, wantInErr: "must be a string", wantRows: 1},
		{name: "null event_id", body: `[{"event_id":null}]`, wantInErr: "must be a string", wantRows: 1},
		{name: "empty array", body: `[]`, wantInErr: "no rows"},
		{name: "empty rows array", body: `{"rows":[]}`, wantInErr: "no rows"},
		{name: "object without rows", body: `{"event_id":"a"}`, wantInErr: `exactly one field`},
		{name: "rows object with extra field", body: `{"rows":[{"event_id":"a"}],"x":1}`, wantInErr: "exactly one field"},
		{name: "rows not an array", body: `{"rows":{"event_id":"a"}}`, wantInErr: "must be an array"},
		{name: "rows null", body: `{"rows":null}`, wantInErr: "must be an array"},
		{name: "too many rows", body: rowsJSON("e", 4), wantInErr: "exceed the limit of 3", wantRows: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := newSink(t, Options{MaxRows: 3})
			r := post(t, ts.URL, tt.body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status = %d (%s), want 400", r.status, r.body)
			}
			wantErrorBody(t, r)
			if !strings.Contains(string(r.body), tt.wantInErr) {
				t.Errorf("error %s does not mention %q", r.body, tt.wantInErr)
			}
			if n := len(s.Rows()); n != 0 {
				t.Errorf("stored %d rows, want 0", n)
			}
			st := s.Stats()
			if st.Requests != 0 || st.Rejected != 1 || st.Rows != 0 || st.DistinctEventIDs != 0 {
				t.Errorf("stats = %+v, want one rejected request", st)
			}
			reqs := s.Requests()
			if len(reqs) != 1 || reqs[0].Status != 400 || reqs[0].Rows != tt.wantRows {
				t.Errorf("requests = %+v, want one 400 with %d rows", reqs, tt.wantRows)
			}
		})
	}
}

func TestBodyTooLarge(t *testing.T) {
	const limit = 64
	const prefix, suffix = `[{"event_id":"a","pad":"`, `"}]`
	tests := []struct {
		name       string
		body       string
		wantStatus int
	}{
		{"at limit", prefix + strings.Repeat("x", limit-len(prefix)-len(suffix)) + suffix, http.StatusOK},
		{"over limit", rowsJSON("e", 5), http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := newSink(t, Options{MaxBodyBytes: limit})
			r := post(t, ts.URL, tt.body)
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", r.status, r.body, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusOK {
				return
			}
			wantErrorBody(t, r)
			reqs := s.Requests()
			if len(reqs) != 1 || reqs[0].Status != 413 || reqs[0].Bytes > limit {
				t.Errorf("requests = %+v, want one 413 of at most %d bytes", reqs, limit)
			}
			if st := s.Stats(); st.Rejected != 1 || st.Rows != 0 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestRejectHook(t *testing.T) {
	tests := []struct {
		name           string
		status         int
		retryAfter     time.Duration
		wantStatus     int
		wantRetryAfter string
	}{
		{"throttled with whole seconds", http.StatusTooManyRequests, 3 * time.Second, 429, "3"},
		{"retry after rounds up", http.StatusServiceUnavailable, 1500 * time.Millisecond, 503, "2"},
		{"sub-second retry after", http.StatusServiceUnavailable, time.Millisecond, 503, "1"},
		{"no retry after", http.StatusInternalServerError, 0, 500, ""},
		{"bad rows", http.StatusUnprocessableEntity, 0, 422, ""},
		{"invalid status", 42, 0, 500, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen []Row
			s, ts := newSink(t, Options{Reject: func(rows []Row) (int, time.Duration) {
				seen = rows
				return tt.status, tt.retryAfter
			}})
			r := post(t, ts.URL, rowsJSON("e", 3))
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", r.status, r.body, tt.wantStatus)
			}
			if got := r.header.Get("Retry-After"); got != tt.wantRetryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tt.wantRetryAfter)
			}
			wantErrorBody(t, r)
			if len(seen) != 3 || seen[2].EventID != "e-2" {
				t.Errorf("hook saw %+v, want the 3 parsed rows", seen)
			}
			if st := s.Stats(); st.Rejected != 1 || st.Requests != 0 || st.Rows != 0 || st.MaxRowsPerRequest != 3 {
				t.Errorf("stats = %+v, want one rejected batch of 3, nothing stored", st)
			}
		})
	}

	t.Run("fails then accepts", func(t *testing.T) {
		var calls int
		s, ts := newSink(t, Options{Reject: func([]Row) (int, time.Duration) {
			calls++ // the test posts sequentially
			if calls == 1 {
				return http.StatusServiceUnavailable, 0
			}
			return 0, 0
		}})
		for _, want := range []int{503, 200} {
			if r := post(t, ts.URL, rowsJSON("e", 2)); r.status != want {
				t.Fatalf("status = %d, want %d", r.status, want)
			}
		}
		if st := s.Stats(); st.Rejected != 1 || st.Requests != 1 || st.Rows != 2 || st.Duplicates != 0 {
			t.Errorf("stats = %+v, want only the retry stored", st)
		}
	})

	t.Run("not consulted for invalid bodies", func(t *testing.T) {
		_, ts := newSink(t, Options{Reject: func([]Row) (int, time.Duration) {
			t.Error("hook called for an invalid body")
			return 0, 0
		}})
		if r := post(t, ts.URL, `[]`); r.status != http.StatusBadRequest {
			t.Errorf("status = %d, want 400", r.status)
		}
	})
}

func TestDuplicates(t *testing.T) {
	s, ts := newSink(t, Options{})
	post(t, ts.URL, `[{"event_id":"a"},{"event_id":"b"}]`)
	post(t, ts.URL, `{"rows":[{"event_id":"b"},{"event_id":"c"},{"event_id":"c"}]}`)

	want := Stats{Requests: 2, Rows: 5, DistinctEventIDs: 3, Duplicates: 2, MaxRowsPerRequest: 3}
	if got := s.Stats(); got != want {
		t.Errorf("stats = %+v, want %+v", got, want)
	}
	ids := s.EventIDs()
	for id, n := range map[string]int{"a": 1, "b": 2, "c": 2} {
		if ids[id] != n {
			t.Errorf("EventIDs[%q] = %d, want %d", id, ids[id], n)
		}
	}
	if len(ids) != 3 {
		t.Errorf("EventIDs = %v, want 3 ids", ids)
	}
	ids["a"] = 99 // callers get a copy
	if s.EventIDs()["a"] != 1 {
		t.Error("EventIDs returned the internal map")
	}
}

func TestRequestsRecorded(t *testing.T) {
	s, ts := newSink(t, Options{MaxRows: 5})
	start := time.Now()
	bodies := []struct {
		key, body  string
		wantStatus int
		wantRows   int
		wantFormat string
	}{
		{"k1", rowsJSON("a", 3), 200, 3, FormatArray},
		{"k2", rowsJSON("b", 6), 400, 6, FormatArray},
		{"k2", `{"rows":` + rowsJSON("b", 5) + `}`, 200, 5, FormatRows},
		{"", `nope`, 400, 0, ""},
	}
	for _, b := range bodies {
		do(t, http.MethodPost, ts.URL+"/rows", b.body, map[string]string{"Idempotency-Key": b.key})
	}
	reqs := s.Requests()
	if len(reqs) != len(bodies) {
		t.Fatalf("recorded %d requests, want %d", len(reqs), len(bodies))
	}
	for i, b := range bodies {
		got := reqs[i]
		if got.Status != b.wantStatus || got.Rows != b.wantRows || got.Format != b.wantFormat ||
			got.IdempotencyKey != b.key || got.Bytes != len(b.body) {
			t.Errorf("request %d = %+v, want status %d, %d rows, format %q, key %q, %d bytes",
				i, got, b.wantStatus, b.wantRows, b.wantFormat, b.key, len(b.body))
		}
		if got.At.Before(start) || got.At.After(time.Now()) || (i > 0 && got.At.Before(reqs[i-1].At)) {
			t.Errorf("request %d At = %v, out of order or range", i, got.At)
		}
	}
	want := Stats{Requests: 2, Rejected: 2, Rows: 8, DistinctEventIDs: 8, MaxRowsPerRequest: 6}
	if got := s.Stats(); got != want {
		t.Errorf("stats = %+v, want %+v", got, want)
	}
}

func TestLatency(t *testing.T) {
	const latency = 50 * time.Millisecond
	_, ts := newSink(t, Options{Latency: latency})
	start := time.Now()
	r := post(t, ts.URL, rowsJSON("e", 1))
	if elapsed := time.Since(start); elapsed < latency {
		t.Errorf("answered after %v, want at least %v", elapsed, latency)
	}
	if r.status != http.StatusOK {
		t.Errorf("status = %d, want 200", r.status)
	}

	// Reads are not delayed: tests poll them.
	start = time.Now()
	do(t, http.MethodGet, ts.URL+"/stats", "", nil)
	if elapsed := time.Since(start); elapsed >= latency {
		t.Errorf("GET /stats took %v, want no added latency", elapsed)
	}
}

func TestLatencyHonoursCancellation(t *testing.T) {
	s := New(Options{Latency: time.Minute})
	done := make(chan struct{}, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r)
		done <- struct{}{}
	}))
	t.Cleanup(ts.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL, strings.NewReader(rowsJSON("e", 2)))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("request succeeded, want the client to give up")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want deadline exceeded", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("handler still sleeping after the client went away")
	}
	// Stored before the delay: the acknowledgement was lost, not the rows.
	if st := s.Stats(); st.Rows != 2 || st.Requests != 1 {
		t.Errorf("stats = %+v, want the batch stored", st)
	}
}

func TestConcurrentPosts(t *testing.T) {
	const workers, perWorker, rowsPerPost = 20, 5, 10
	s, ts := newSink(t, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			for p := range perWorker {
				body := rowsJSON(fmt.Sprintf("w%d-p%d", w, p), rowsPerPost)
				resp, err := http.Post(ts.URL, "application/json", strings.NewReader(body))
				if err != nil {
					errs <- err
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
				}
			}
		})
		// Every worker also resends its first batch, as a retrying relay
		// would.
		wg.Go(func() {
			body := rowsJSON(fmt.Sprintf("w%d-p0", w), rowsPerPost)
			resp, err := http.Post(ts.URL+"/rows", "application/json", strings.NewReader(body))
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	distinct := workers * perWorker * rowsPerPost
	want := Stats{
		Requests:          workers * (perWorker + 1),
		Rows:              distinct + workers*rowsPerPost,
		DistinctEventIDs:  distinct,
		Duplicates:        workers * rowsPerPost,
		MaxRowsPerRequest: rowsPerPost,
	}
	if got := s.Stats(); got != want {
		t.Errorf("stats = %+v, want %+v", got, want)
	}
	if n := len(s.Requests()); n != want.Requests {
		t.Errorf("recorded %d requests, want %d", n, want.Requests)
	}
	if n := len(s.Rows()); n != want.Rows {
		t.Errorf("stored %d rows, want %d", n, want.Rows)
	}
}

func TestRoutes(t *testing.T) {
	s, ts := newSink(t, Options{})
	post(t, ts.URL+"/datasets/d/rows", `[{"event_id":"a","n":1},{"event_id":"b"}]`)

	tests := []struct {
		method, path string
		wantStatus   int
		wantBody     string // exact, after trimming the newline; "" skips
	}{
		{"GET", "/healthz", 200, `{"status":"ok"}`},
		{"GET", "/stats", 200, `{"requests":1,"rejected":0,"rows":2,"distinct_event_ids":2,"duplicates":0,"max_rows_per_request":2,"rejected_for_size":0,"rejected_for_rate":0,"rejected_for_inflight":0,"rejected_for_signature":0,"injected_failures":0}`},
		{"GET", "/rows", 200, `[{"event_id":"a","n":1},{"event_id":"b"}]`},
		{"PUT", "/rows", 405, ""},
		{"PATCH", "/stats", 405, ""},
		{"POST", "/healthz", 400, ""}, // any POST path ingests; this body is empty
		{"DELETE", "/rows", 204, ""},
		{"GET", "/rows", 200, `[]`},
		{"GET", "/stats", 200, `{"requests":0,"rejected":0,"rows":0,"distinct_event_ids":0,"duplicates":0,"max_rows_per_request":0,"rejected_for_size":0,"rejected_for_rate":0,"rejected_for_inflight":0,"rejected_for_signature":0,"injected_failures":0}`},
	}
	for _, tt := range tests {
		r := do(t, tt.method, ts.URL+tt.path, "", nil)
		if r.status != tt.wantStatus {
			t.Errorf("%s %s: status = %d (%s), want %d", tt.method, tt.path, r.status, r.body, tt.wantStatus)
			continue
		}
		if tt.wantBody != "" && strings.TrimSpace(string(r.body)) != tt.wantBody {
			t.Errorf("%s %s: body = %s, want %s", tt.method, tt.path, r.body, tt.wantBody)
		}
	}
	if len(s.Rows()) != 0 || len(s.Requests()) != 0 || len(s.EventIDs()) != 0 {
		t.Error("DELETE /rows left state behind")
	}
}

func TestReset(t *testing.T) {
	s, ts := newSink(t, Options{})
	post(t, ts.URL, rowsJSON("e", 3))
	s.Reset()
	if st := s.Stats(); st != (Stats{}) {
		t.Errorf("stats after reset = %+v", st)
	}
	post(t, ts.URL, rowsJSON("e", 3))
	if st := s.Stats(); st.Duplicates != 0 || st.DistinctEventIDs != 3 {
		t.Errorf("stats = %+v, want ids forgotten by Reset", st)
	}
}

func TestLogsOmitBodyAndQuery(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	_, ts := newSink(t, Options{Logger: logger})
	post(t, ts.URL+"/datasets/d/rows?key=topsecretkey", `[{"event_id":"a","card":"payloadsecret"}]`)
	post(t, ts.URL+"/datasets/d/rows?key=topsecretkey", `[{"event_id":"payloadsecret"`)

	out := buf.String()
	for _, secret := range []string{"topsecretkey", "payloadsecret", "key="} {
		if strings.Contains(out, secret) {
			t.Errorf("log leaks %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"path=/datasets/d/rows", "status=200", "status=400", "rows=1", "method=POST"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestRowFields(t *testing.T) {
	s, ts := newSink(t, Options{})
	post(t, ts.URL, `[{"event_id":"a","amount":12.5,"tags":["x"]}]`)
	f, err := s.Rows()[0].Fields()
	if err != nil {
		t.Fatal(err)
	}
	if f["event_id"] != "a" || f["amount"] != 12.5 {
		t.Errorf("fields = %v", f)
	}
	if _, err := (Row{EventID: "x", Raw: json.RawMessage(`[`)}).Fields(); err == nil {
		t.Error("Fields of malformed raw: want an error")
	}
}

func TestOptionsValidate(t *testing.T) {
	valid := Options{MaxRows: 1, MaxBodyBytes: 1}
	tests := []struct {
		name    string
		mutate  func(*Options)
		wantErr string
	}{
		{"minimal", func(*Options) {}, ""},
		{"defaults", func(o *Options) { o.MaxRows, o.MaxBodyBytes = DefaultMaxRows, DefaultMaxBodyBytes }, ""},
		{"latency", func(o *Options) { o.Latency = time.Second }, ""},
		{"negative latency", func(o *Options) { o.Latency = -time.Millisecond }, "latency"},
		{"zero max rows", func(o *Options) { o.MaxRows = 0 }, "max rows"},
		{"negative max rows", func(o *Options) { o.MaxRows = -1 }, "max rows"},
		{"zero max body", func(o *Options) { o.MaxBodyBytes = 0 }, "max body bytes"},
		{"every profile", func(o *Options) { o.Profile = relay.ProfilePowerBIPush }, ""},
		{"failure rate 1", func(o *Options) { o.FailureRate = 1 }, ""},
		{"unknown profile", func(o *Options) { o.Profile = "powerbi" }, "must be one of"},
		{"negative failure rate", func(o *Options) { o.FailureRate = -0.1 }, "failure rate"},
		{"failure rate over 1", func(o *Options) { o.FailureRate = 1.01 }, "failure rate"},
		{"NaN failure rate", func(o *Options) { o.FailureRate = math.NaN() }, "failure rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid
			tt.mutate(&o)
			err := o.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want an error about %s", err, tt.wantErr)
			}
		})
	}
}

func TestZeroOptionsUseDefaults(t *testing.T) {
	s, ts := newSink(t, Options{})
	if r := post(t, ts.URL, rowsJSON("e", DefaultMaxRows)); r.status != http.StatusOK {
		t.Errorf("%d rows: status = %d, want 200", DefaultMaxRows, r.status)
	}
	if r := post(t, ts.URL, rowsJSON("f", DefaultMaxRows+1)); r.status != http.StatusBadRequest {
		t.Errorf("%d rows: status = %d, want 400", DefaultMaxRows+1, r.status)
	}
	if st := s.Stats(); st.Rows != DefaultMaxRows {
		t.Errorf("stats = %+v", st)
	}
}
