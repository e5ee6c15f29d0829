package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Once ctx is done, retry's error wraps ctx.Err() whatever the last call
// failed with: shutdown tells a cut-off batch by it.
func TestRetryEndsWithTheContextsError(t *testing.T) {
	throttled := errors.New("ProvisionedThroughputExceededException")
	tests := []struct {
		name string
		last func(ctx context.Context) error // the call during which ctx ends
	}{
		{"the call failed for another reason", func(context.Context) error { return throttled }},
		{"the call failed with ctx", func(ctx context.Context) error { return fmt.Errorf("operation error: %w", ctx.Err()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			calls := 0
			err := backoff{base: time.Millisecond, max: time.Millisecond}.retry(ctx, func(ctx context.Context) error {
				calls++
				if calls == 1 {
					return throttled // retried
				}
				cancel()
				return tt.last(ctx)
			}, func(error) {})
			if calls != 2 || !errors.Is(err, context.Canceled) {
				t.Fatalf("after %d calls: %v, want context.Canceled after 2", calls, err)
			}
			if strings.Count(err.Error(), "context canceled") != 1 {
				t.Fatalf("%q names the cancellation more than once", err)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"2", 2 * time.Second},
		{"-1", 0},
		{"Wed, 25 Nov 2026 12:00:30 GMT", 30 * time.Second},
		{"Wed, 25 Nov 2026 11:00:00 GMT", 0}, // in the past
		{"soon", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestBackoffDelayIsBoundedAndHonoursRetryAfter(t *testing.T) {
	b := backoff{base: 100 * time.Millisecond, max: time.Second}
	for attempt := range 40 {
		ceiling := min(b.max, b.base<<min(attempt, 30))
		for range 50 {
			if d := b.delay(attempt, 0); d < 0 || d > ceiling {
				t.Fatalf("attempt %d: delay %s outside [0, %s]", attempt, d, ceiling)
			}
		}
	}
	if d := b.delay(0, 5*time.Second); d != 5*time.Second {
		t.Fatalf("Retry-After 5s gave %s", d)
	}
}

func TestHTTPSinkSend(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		retryAfter  string
		wantErr     bool
		wantVerdict verdict
		wantWait    time.Duration
	}{
		{"accepted", 200, "", false, 0, 0},
		{"accepted 202", 202, "", false, 0, 0},
		{"bad rows are split", 400, "", true, splitBatch, 0},
		{"unprocessable rows are split", 422, "", true, splitBatch, 0},
		{"too large shrinks the batch", 413, "", true, shrinkBatch, 0},
		{"throttled is retried after Retry-After", 429, "3", true, retryBatch, 3 * time.Second},
		{"server error is retried", 503, "", true, retryBatch, 0},
		{"wrong key is a misconfiguration", 401, "", true, misconfigured, 0},
		{"forbidden is a misconfiguration", 403, "", true, misconfigured, 0},
		{"wrong url is a misconfiguration", 404, "", true, misconfigured, 0},
		{"wrong method is a misconfiguration", 405, "", true, misconfigured, 0},
		{"proxy auth is a misconfiguration", 407, "", true, misconfigured, 0},
		{"request timeout is retried", 408, "", true, retryBatch, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotBody, gotKey, gotType string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				gotBody, gotKey, gotType = string(b), r.Header.Get("Idempotency-Key"), r.Header.Get("Content-Type")
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, strings.Repeat("e", 10000))
			}))
			defer srv.Close()
			s := &HTTPSink{URL: srv.URL + "?key=s3cret", Timeout: 5 * time.Second}
			err := s.Send(context.Background(), []byte(`[{"a":1}]`), "k-1")
			if gotBody != `[{"a":1}]` || gotKey != "k-1" || gotType != "application/json" {
				t.Fatalf("endpoint saw body %q key %q type %q", gotBody, gotKey, gotType)
			}
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("want an error")
			}
			if v := classifySend(err); v != tt.wantVerdict {
				t.Fatalf("verdict %d, want %d", v, tt.wantVerdict)
			}
			if w := retryAfterOf(err); w != tt.wantWait {
				t.Fatalf("retry-after %s, want %s", w, tt.wantWait)
			}
			if len(err.Error()) > maxErrorBody+100 {
				t.Fatalf("error message is %d bytes; the body must be bounded", len(err.Error()))
			}
		})
	}
}

func TestHTTPSinkRedirects(t *testing.T) {
	tests := []struct {
		status      int
		wantArrived bool // the batch reached /new as a POST with its body
	}{
		{http.StatusMovedPermanently, false},
		{http.StatusFound, false},
		{http.StatusSeeOther, false},
		{http.StatusTemporaryRedirect, true},
		{http.StatusPermanentRedirect, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			var arrived, gets atomic.Int64
			mux := http.NewServeMux()
			mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/new", tt.status)
			})
			mux.HandleFunc("/new", func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				switch {
				case r.Method == http.MethodPost && string(b) == `[{"a":1}]`:
					arrived.Add(1)
				case r.Method == http.MethodGet:
					gets.Add(1)
				}
				w.WriteHeader(http.StatusOK) // a page that answers anything
			})
			srv := httptest.NewServer(mux)
			defer srv.Close()
			// A caller's client keeps its own redirect policy too.
			var asked atomic.Int64
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { asked.Add(1); return nil }}
			s := &HTTPSink{URL: srv.URL + "/old", Timeout: 5 * time.Second, Client: client}
			err := s.Send(context.Background(), []byte(`[{"a":1}]`), "k-1")
			if gets.Load() != 0 {
				t.Fatalf("the POST was re-sent as %d GETs", gets.Load())
			}
			if tt.wantArrived {
				if err != nil || arrived.Load() != 1 || asked.Load() != 1 {
					t.Fatalf("err %v, arrived %d, client's policy asked %d times; want the POST followed once", err, arrived.Load(), asked.Load())
				}
				return
			}
			if err == nil || arrived.Load() != 0 {
				t.Fatalf("err %v, arrived %d; want the %d returned as an error", err, arrived.Load(), tt.status)
			}
			if v := classifySend(err); v != misconfigured {
				t.Fatalf("verdict %d, want misconfigured", v)
			}
		})
	}
}

func TestHTTPSinkErrorsHideTheURLSecret(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
	}))
	defer srv.Close()
	s := &HTTPSink{URL: srv.URL + "/rows?key=s3cret", Timeout: 20 * time.Millisecond}
	err := s.Send(context.Background(), []byte(`[]`), "k")
	if err == nil {
		t.Fatal("want a timeout")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error leaks the key: %v", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v should wrap the deadline", err)
	}
	if classifySend(err) != retryBatch {
		t.Fatal("a timeout must be retried")
	}
}
