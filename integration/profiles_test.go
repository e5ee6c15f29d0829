package integration

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ddboutbox/ddboutbox/cmd/analytics-sink/endpoint"
	"github.com/ddboutbox/ddboutbox/relay"
)

// With a Power BI profile the relay never exceeds the endpoint's limits:
// the emulator, strict in the same profile, rejects nothing for size or
// rows, and the request rate it measured stays within the profile.
func TestProfilesStayWithinEndpointLimits(t *testing.T) {
	for _, name := range []string{relay.ProfilePowerBIPush, relay.ProfilePowerBIStreaming} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := relay.LookupProfile(name)
			if err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, endpoint.Options{Profile: name})
			cfg := e.relayConfig()
			cfg.SinkProfile = name
			r, _ := e.startRelay(cfg)
			ids := e.commitEvents(3000, 10)
			e.waitDelivered(ids, 3*time.Minute)
			e.waitMarked(len(ids), time.Minute)

			reqs := e.sink.Requests()
			for _, q := range reqs {
				if q.Status/100 != 2 {
					t.Fatalf("the emulator rejected a request: %+v", q)
				}
			}
			if err := endpoint.CheckPacing(reqs, p, endpoint.DefaultRateTolerance); err != nil {
				t.Fatalf("request rate above the %s profile: %v", name, err)
			}
			st := e.sink.Stats()
			if st.RejectedForSize != 0 || st.RejectedForRate != 0 || st.Rejected != 0 {
				t.Fatalf("endpoint stats %+v: want nothing rejected", st)
			}
			if st.MaxRowsPerRequest > p.MaxRows {
				t.Fatalf("a request carried %d rows, profile allows %d", st.MaxRowsPerRequest, p.MaxRows)
			}
			for _, q := range reqs {
				if q.Bytes > p.MaxBytes {
					t.Fatalf("a request was %d bytes, profile allows %d", q.Bytes, p.MaxBytes)
				}
				if q.Format != string(p.Format) {
					t.Fatalf("a request was in format %q, profile says %q", q.Format, p.Format)
				}
			}
			t.Logf("%s: %d events in %d requests, relay %+v", name, len(ids), len(reqs), r.Stats())
		})
	}
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logged is a waitFor condition: the log holds what.
func (b *syncBuffer) logged(what string) func() (bool, string) {
	return func() (bool, string) { return strings.Contains(b.String(), what), "the relay did not log " + what }
}

// With the shared secret every request verifies; with a wrong one the
// emulator rejects every request, the relay never counts that as delivered
// (nothing is DELIVERED, it reports not ready) and the secret appears in
// no log line or error.
func TestSignedRequests(t *testing.T) {
	const secretText = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	const wrongText = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	secret, err := relay.ParseSecret(secretText)
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := relay.ParseSecret(wrongText)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		relayKey  relay.Secret
		delivered bool
	}{
		{"right secret", secret, true},
		{"wrong secret", wrong, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			e := newEnv(t, endpoint.Options{Secret: secret, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			cfg := e.relayConfig()
			cfg.WebhookSecret = tc.relayKey
			cfg.MaxAttempts = 2
			cfg.RetryMax = 500 * time.Millisecond
			cfg.ShutdownTimeout = 2 * time.Second
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			r, stop := e.startRelay(cfg)
			ids := e.commitEvents(100, 4)
			if tc.delivered {
				e.waitDelivered(ids, time.Minute)
				e.waitMarked(len(ids), 30*time.Second)
				for _, q := range e.sink.Requests() {
					if q.Status/100 != 2 {
						t.Fatalf("a signed request was rejected: %+v", q)
					}
				}
			} else {
				waitFor(t, 30*time.Second, func() (bool, string) {
					st := e.sink.Stats()
					return st.RejectedForSignature >= 3, fmt.Sprintf("endpoint %+v", st)
				})
				if st := e.sink.Stats(); st.Rows != 0 || st.Requests != 0 {
					t.Fatalf("endpoint stored rows signed with the wrong secret: %+v", st)
				}
				if s := e.summary(); s.Delivered != 0 {
					t.Fatalf("outbox %+v: a rejected signature counted as delivered", s)
				}
				if err := r.Ready(); err == nil {
					t.Fatal("relay is ready while every request is rejected")
				}
				for _, q := range e.sink.Requests() {
					if q.Status != http.StatusUnauthorized {
						t.Fatalf("request answered %d, want 401", q.Status)
					}
				}
			}
			if err := stop(); err != nil && !strings.Contains(err.Error(), "shutdown timeout") {
				t.Fatalf("relay stop: %v", err)
			}
			out := logs.String() + fmt.Sprint(r.Ready()) + fmt.Sprintf("%v %+v", cfg, cfg)
			for _, s := range []string{secretText, wrongText, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", string(secret), string(wrong)} {
				if strings.Contains(out, s) {
					t.Fatalf("the secret appears in logs or errors")
				}
			}
		})
	}
}

// The endpoint URL's secret parts (credentials, key= query values) appear
// in no log line, metric or error, even while the endpoint fails.
func TestEndpointSecretsNeverLeak(t *testing.T) {
	var fails atomic.Int32
	e := newEnv(t, endpoint.Options{Reject: func([]endpoint.Row) (int, time.Duration) {
		if fails.Add(1) <= 3 {
			return http.StatusInternalServerError, 0
		}
		return 0, 0
	}})
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	cfg := e.relayConfig()
	u, err := url.Parse(e.sinkURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("apiuser", "pa55word-secret")
	u.RawQuery = "key=topsecret-key-value&tenant=t1"
	cfg.SinkURL = u.String()
	cfg.Registerer = reg
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, _ := e.startRelay(cfg)
	ids := e.commitEvents(20, 2)
	e.waitDelivered(ids, time.Minute)
	if s := r.Stats(); s.Retries < 3 {
		t.Fatalf("relay retried %d times; the failures were not exercised", s.Retries)
	}
	var metrics bytes.Buffer
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		fmt.Fprintln(&metrics, f.String())
	}
	out := logs.String() + metrics.String()
	if !strings.Contains(logs.String(), "REDACTED") {
		t.Fatal("logs do not show the redacted endpoint at all; the check would prove nothing")
	}
	for _, secret := range []string{"topsecret-key-value", "pa55word-secret", "apiuser"} {
		if strings.Contains(out, secret) {
			t.Fatalf("%q appears in logs or metrics", secret)
		}
	}
}
