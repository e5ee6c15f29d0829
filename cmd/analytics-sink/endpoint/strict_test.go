package endpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ddboutbox/ddboutbox/relay"
)

// fakeClock is the Server's clock in tests: it moves only when told to, or
// by step on every reading.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func newClock(step time.Duration) *fakeClock {
	return &fakeClock{t: time.Unix(1_700_000_000, 0), step: step}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(c.step)
	return t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func newClockedSink(t *testing.T, opts Options, clock *fakeClock) (*Server, *httptest.Server) {
	t.Helper()
	s := New(opts)
	s.now = clock.Now
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

func profile(t *testing.T, name string) relay.Profile {
	t.Helper()
	p, err := relay.LookupProfile(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// bodyOfSize is a one-row body of exactly n bytes in the given format.
func bodyOfSize(t *testing.T, format string, n int) string {
	t.Helper()
	prefix, suffix := `[{"event_id":"a","pad":"`, `"}]`
	if format == FormatRows {
		prefix, suffix = `{"rows":`+prefix, suffix+`}`
	}
	pad := n - len(prefix) - len(suffix)
	if pad < 0 {
		t.Fatalf("no body of %d bytes", n)
	}
	return prefix + strings.Repeat("x", pad) + suffix
}

func inFormat(format, arrayBody string) string {
	if format == FormatRows {
		return `{"rows":` + arrayBody + `}`
	}
	return arrayBody
}

func TestStrictCaps(t *testing.T) {
	for _, name := range relay.ProfileNames() {
		p := profile(t, name)
		format := string(p.Format)
		other := FormatRows
		if format == FormatRows {
			other = FormatArray
		}
		t.Run(name, func(t *testing.T) {
			// A step of a minute keeps every request within the rate.
			s, ts := newClockedSink(t, Options{Profile: name}, newClock(time.Minute))
			tests := []struct {
				name       string
				body       string
				wantStatus int
				wantReason string
			}{
				{"at the byte cap", bodyOfSize(t, format, p.MaxBytes), 200, ""},
				{"one byte over", bodyOfSize(t, format, p.MaxBytes+1), 413, ReasonSize},
				{"further over", bodyOfSize(t, format, p.MaxBytes+1000), 413, ReasonSize},
				{"other format", inFormat(other, rowsJSON("o", 1)), 400, ReasonFormat},
				{"malformed", "[{", 400, ReasonInvalid},
			}
			if rowCap := bodySize(format, p.MaxRows+1); rowCap <= p.MaxBytes {
				tests = append(tests,
					struct {
						name       string
						body       string
						wantStatus int
						wantReason string
					}{"at the row cap", inFormat(format, tinyRows("r", p.MaxRows)), 200, ""},
					struct {
						name       string
						body       string
						wantStatus int
						wantReason string
					}{"one row over", inFormat(format, tinyRows("r", p.MaxRows+1)), 400, ReasonRows},
				)
			}
			for _, tt := range tests {
				if testing.Short() && tt.wantStatus == 200 && len(tt.body) > 1<<20 {
					continue // parsing 16 MB takes seconds under -race
				}
				r := post(t, ts.URL, tt.body)
				if r.status != tt.wantStatus {
					t.Errorf("%s: status = %d (%.200s), want %d", tt.name, r.status, r.body, tt.wantStatus)
				}
				if tt.wantStatus != 200 {
					wantErrorBody(t, r)
				}
				reqs := s.Requests()
				if got := reqs[len(reqs)-1].Reason; got != tt.wantReason {
					t.Errorf("%s: reason = %q, want %q", tt.name, got, tt.wantReason)
				}
			}
			if st := s.Stats(); st.RejectedForSize != 2 || st.RejectedForRate != 0 {
				t.Errorf("stats = %+v, want 2 rejected for size, none for rate", st)
			}
		})
	}

	t.Run("lower explicit caps still apply", func(t *testing.T) {
		_, ts := newClockedSink(t, Options{Profile: relay.ProfileGeneric, MaxRows: 2, MaxBodyBytes: 100}, newClock(time.Minute))
		if r := post(t, ts.URL, tinyRows("a", 3)); r.status != 400 {
			t.Errorf("3 rows over a cap of 2: status %d", r.status)
		}
		if r := post(t, ts.URL, bodyOfSize(t, FormatArray, 101)); r.status != 413 {
			t.Errorf("101 bytes over a cap of 100: status %d", r.status)
		}
	})
}

// tinyRows builds n short rows: {"event_id":"p1"}.
func tinyRows(prefix string, n int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"event_id":"%s%d"}`, prefix, i)
	}
	b.WriteByte(']')
	return b.String()
}

func bodySize(format string, rows int) int {
	return len(inFormat(format, tinyRows("r", rows)))
}

func TestStrictRateRejectsABurst(t *testing.T) {
	for _, name := range []string{relay.ProfilePowerBIStreaming, relay.ProfilePowerBIPush} {
		t.Run(name, func(t *testing.T) {
			p := profile(t, name)
			clock := newClock(0) // frozen: every request at the same instant
			s, ts := newClockedSink(t, Options{Profile: name}, clock)
			body := inFormat(string(p.Format), rowsJSON("b", 1))
			const burst = 10
			for i := range burst {
				r := post(t, ts.URL, body)
				want := http.StatusTooManyRequests
				if i < p.Burst {
					want = http.StatusOK
				}
				if r.status != want {
					t.Fatalf("request %d: status = %d, want %d", i, r.status, want)
				}
				if want == http.StatusTooManyRequests {
					wantErrorBody(t, r)
					if ra := r.header.Get("Retry-After"); ra != "1" {
						t.Errorf("Retry-After = %q, want 1 (the wait rounded up to a second)", ra)
					}
				}
			}
			st := s.Stats()
			if st.Requests != p.Burst || st.RejectedForRate != burst-p.Burst || st.Rows != p.Burst {
				t.Errorf("stats = %+v, want %d accepted, %d rejected for rate", st, p.Burst, burst-p.Burst)
			}
			for _, r := range s.Requests()[p.Burst:] {
				if r.Reason != ReasonRate || r.Status != 429 || r.Rows != 1 {
					t.Errorf("request = %+v, want 429 for rate, its rows still counted", r)
				}
			}
			if err := CheckPacing(s.Requests(), p, 0); err == nil {
				t.Error("CheckPacing passed a burst")
			}

			// Once the interval has passed, the next is admitted: refused
			// requests were not charged.
			clock.Set(clock.Now().Add(time.Duration(float64(time.Second) / float64(p.RequestsPerSecond))))
			if r := post(t, ts.URL, body); r.status != 200 {
				t.Errorf("after one interval: status = %d, want 200", r.status)
			}
			s.Reset()
			if r := post(t, ts.URL, body); r.status != 200 {
				t.Errorf("after Reset: status = %d, want 200", r.status)
			}
		})
	}
}

// TestStrictRateAdmitsAPacedClient drives the profile's own limiter on the
// fake clock, adds arrival jitter, and expects every request accepted; then
// a client 10% too fast must be cut back to the profile's rate.
func TestStrictRateAdmitsAPacedClient(t *testing.T) {
	for _, name := range []string{relay.ProfilePowerBIStreaming, relay.ProfilePowerBIPush} {
		p := profile(t, name)
		interval := time.Duration(float64(time.Second) / float64(p.RequestsPerSecond))
		for _, tc := range []struct {
			label     string
			tolerance time.Duration
			jitter    time.Duration // each arrival delayed by up to this
		}{
			{"exact", -1, 0},
			{"default tolerance with jitter", 0, DefaultRateTolerance * 9 / 10},
		} {
			t.Run(name+"/"+tc.label, func(t *testing.T) {
				clock := newClock(0)
				s, ts := newClockedSink(t, Options{Profile: name, RateTolerance: tc.tolerance}, clock)
				lim := p.Limiter()
				body := inFormat(string(p.Format), rowsJSON("p", 1))
				rng := rand.New(rand.NewPCG(1, 2))
				now := time.Unix(1_700_000_000, 0)
				const n = 200
				for i := range n {
					now = now.Add(lim.ReserveN(now, 1).DelayFrom(now))
					arrival := now
					if tc.jitter > 0 {
						arrival = arrival.Add(time.Duration(rng.Int64N(int64(tc.jitter))))
					}
					clock.Set(arrival)
					if r := post(t, ts.URL, body); r.status != 200 {
						t.Fatalf("paced request %d: status = %d (%s)", i, r.status, r.body)
					}
				}
				reqs := s.Requests()
				if err := CheckPacing(reqs, p, max(tc.tolerance, 0)+tc.jitter); err != nil {
					t.Error(err)
				}
				wantSpan := time.Duration(n-p.Burst) * interval
				if span := reqs[n-1].At.Sub(reqs[0].At); span < wantSpan-tc.jitter {
					t.Errorf("%d requests spanned %v, want at least %v", n, span, wantSpan)
				}
				if tc.jitter == 0 {
					perSecond := int(math.Ceil(float64(p.RequestsPerSecond)))
					if got := MaxInWindow(reqs, time.Second); got > perSecond {
						t.Errorf("%d requests within one second, want at most %d", got, perSecond)
					}
					if got, want := MaxInWindow(reqs, time.Minute), int(60*p.RequestsPerSecond); got > want {
						t.Errorf("%d requests within one minute, want at most %d", got, want)
					}
				}
			})
		}
		t.Run(name+"/too fast", func(t *testing.T) {
			clock := newClock(0)
			s, ts := newClockedSink(t, Options{Profile: name}, clock)
			body := inFormat(string(p.Format), rowsJSON("f", 1))
			start := time.Unix(1_700_000_000, 0)
			const span = time.Minute
			step := interval * 9 / 10
			for at := start; at.Before(start.Add(span)); at = at.Add(step) {
				clock.Set(at)
				post(t, ts.URL, body)
			}
			st := s.Stats()
			maxAccepted := p.Burst + int(span/interval) + 1
			if st.Requests > maxAccepted || st.RejectedForRate == 0 {
				t.Errorf("stats = %+v, want at most %d accepted in %v and some rejected for rate", st, maxAccepted, span)
			}
			var accepted []Request
			for _, r := range s.Requests() {
				if r.Status == 200 {
					accepted = append(accepted, r)
				}
			}
			if err := CheckPacing(accepted, p, DefaultRateTolerance); err != nil {
				t.Errorf("accepted requests exceed the rate: %v", err)
			}
		})
	}

	t.Run("generic has no rate limit", func(t *testing.T) {
		s, ts := newClockedSink(t, Options{Profile: relay.ProfileGeneric}, newClock(0))
		for range 50 {
			post(t, ts.URL, rowsJSON("g", 1))
		}
		if st := s.Stats(); st.Requests != 50 {
			t.Errorf("stats = %+v, want all 50 accepted", st)
		}
	})
}

func TestStrictInFlight(t *testing.T) {
	p := profile(t, relay.ProfilePowerBIPush)
	release := make(chan struct{})
	var inHook atomic.Int32
	opts := Options{Profile: p.Name, Reject: func([]Row) (int, time.Duration) {
		inHook.Add(1)
		<-release
		return 0, 0
	}}
	// Each reading of the clock is a second later: the rate never binds.
	s, ts := newClockedSink(t, opts, newClock(time.Second))
	body := inFormat(string(p.Format), rowsJSON("i", 1))

	var wg sync.WaitGroup
	statuses := make(chan int, p.MaxInFlight)
	for range p.MaxInFlight {
		wg.Go(func() { statuses <- post(t, ts.URL, body).status })
	}
	for inHook.Load() < int32(p.MaxInFlight) {
		time.Sleep(time.Millisecond)
	}
	r := post(t, ts.URL, body)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "1" {
		t.Errorf("request %d: status = %d, Retry-After %q; want 429 with 1", p.MaxInFlight+1, r.status, r.header.Get("Retry-After"))
	}
	wantErrorBody(t, r)
	close(release)
	wg.Wait()
	close(statuses)
	for status := range statuses {
		if status != 200 {
			t.Errorf("held request: status = %d, want 200", status)
		}
	}
	// The slots are free again.
	if r := post(t, ts.URL, body); r.status != 200 {
		t.Errorf("after release: status = %d, want 200", r.status)
	}
	st := s.Stats()
	if st.RejectedForInFlight != 1 || st.Requests != p.MaxInFlight+1 {
		t.Errorf("stats = %+v, want one rejected for in-flight", st)
	}
	var inflight int
	for _, r := range s.Requests() {
		if r.Reason == ReasonInFlight {
			inflight++
		}
	}
	if inflight != 1 {
		t.Errorf("%d requests recorded as in-flight rejections, want 1", inflight)
	}

	t.Run("latency holds the slot", func(t *testing.T) {
		_, ts := newClockedSink(t, Options{Profile: p.Name, Latency: time.Second}, newClock(time.Second))
		var wg sync.WaitGroup
		var ok, throttled atomic.Int32
		for range p.MaxInFlight + 3 {
			wg.Go(func() {
				switch post(t, ts.URL, body).status {
				case 200:
					ok.Add(1)
				case 429:
					throttled.Add(1)
				}
			})
		}
		wg.Wait()
		if ok.Load() != int32(p.MaxInFlight) || throttled.Load() != 3 {
			t.Errorf("%d accepted, %d throttled; want %d and 3", ok.Load(), throttled.Load(), p.MaxInFlight)
		}
	})
}

func TestSignatures(t *testing.T) {
	secret, err := relay.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	wrong, _ := relay.ParseSecret(strings.Repeat("w", 32))
	var logs bytes.Buffer
	clock := newClock(0)
	s, ts := newClockedSink(t, Options{Secret: secret, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, clock)
	now := clock.Now()
	body := rowsJSON("s", 2)

	signed := func(secret relay.Secret, id string, at time.Time, signedBody string) map[string]string {
		return map[string]string{
			"Webhook-Id":        id,
			"Webhook-Timestamp": strconv.FormatInt(at.Unix(), 10),
			"Webhook-Signature": relay.Signer{Secret: secret}.Sign(id, at, []byte(signedBody)),
		}
	}
	var sentSignatures []string
	tests := []struct {
		name       string
		header     map[string]string
		wantStatus int
	}{
		{"valid", signed(secret, "k1", now, body), 200},
		{"valid, sent a minute late", signed(secret, "k2", now.Add(-time.Minute), body), 200},
		{"unsigned", nil, 401},
		{"wrong secret", signed(wrong, "k3", now, body), 401},
		{"tampered body", signed(secret, "k4", now, body+" "), 401},
		{"stale", signed(secret, "k5", now.Add(-6*time.Minute), body), 401},
		{"signature only", map[string]string{"Webhook-Signature": signed(secret, "k6", now, body)["Webhook-Signature"]}, 401},
	}
	for _, tt := range tests {
		sentSignatures = append(sentSignatures, tt.header["Webhook-Signature"])
		r := do(t, http.MethodPost, ts.URL, body, tt.header)
		if r.status != tt.wantStatus {
			t.Errorf("%s: status = %d (%s), want %d", tt.name, r.status, r.body, tt.wantStatus)
			continue
		}
		if tt.wantStatus == 401 && strings.TrimSpace(string(r.body)) != `{"error":"invalid signature"}` {
			t.Errorf("%s: body = %s, want exactly {\"error\":\"invalid signature\"}", tt.name, r.body)
		}
	}
	st := s.Stats()
	if st.Requests != 2 || st.RejectedForSignature != 5 || st.Rows != 4 {
		t.Errorf("stats = %+v, want 2 accepted, 5 rejected for signature", st)
	}
	for _, r := range s.Requests() {
		if (r.Status == 401) != (r.Reason == ReasonSignature) {
			t.Errorf("request %+v: status and reason disagree", r)
		}
	}
	out := logs.String()
	if !strings.Contains(out, "reason=signature") || !strings.Contains(out, "detail=") {
		t.Errorf("log lacks the rejection reason:\n%s", out)
	}
	leaks := []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", string(secret), fmt.Sprintf("%x", []byte(secret)), string(wrong)}
	for _, sig := range sentSignatures {
		if sig != "" {
			leaks = append(leaks, strings.TrimPrefix(sig, "v1,"))
		}
	}
	stats := do(t, http.MethodGet, ts.URL+"/stats", "", nil)
	for _, leak := range leaks {
		if strings.Contains(out, leak) || strings.Contains(string(stats.body), leak) {
			t.Errorf("log or stats leak %q:\n%s\n%s", leak, out, stats.body)
		}
	}
	if opts := fmt.Sprintf("%+v", s.opts); strings.Contains(opts, string(secret)) {
		t.Errorf("Options print the secret: %s", opts)
	}
}

// TestSignaturesCheckedBeforeTheRate: forged requests must not spend the
// dataset's request budget.
func TestSignaturesCheckedBeforeTheRate(t *testing.T) {
	secret, _ := relay.ParseSecret(strings.Repeat("s", 32))
	clock := newClock(0)
	s, ts := newClockedSink(t, Options{Profile: relay.ProfilePowerBIStreaming, Secret: secret}, clock)
	now := clock.Now()
	body := rowsJSON("r", 1)
	for range 5 {
		do(t, http.MethodPost, ts.URL, body, nil)
	}
	h := map[string]string{
		"Webhook-Id":        "k",
		"Webhook-Timestamp": strconv.FormatInt(now.Unix(), 10),
		"Webhook-Signature": relay.Signer{Secret: secret}.Sign("k", now, []byte(body)),
	}
	if r := do(t, http.MethodPost, ts.URL, body, h); r.status != 200 {
		t.Errorf("signed request after forged ones: status = %d (%s), want 200", r.status, r.body)
	}
	if st := s.Stats(); st.RejectedForSignature != 5 || st.RejectedForRate != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestFailureRate(t *testing.T) {
	tests := []struct {
		rate                 float64
		wantOK, wantInjected func(n int) bool
	}{
		{0, func(n int) bool { return n == 100 }, func(n int) bool { return n == 0 }},
		{1, func(n int) bool { return n == 0 }, func(n int) bool { return n == 100 }},
		// The chance of 100 draws at 0.5 all landing one way is 2^-99.
		{0.5, func(n int) bool { return n > 0 && n < 100 }, func(n int) bool { return n > 0 && n < 100 }},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.rate), func(t *testing.T) {
			s, ts := newSink(t, Options{FailureRate: tt.rate})
			for i := range 100 {
				r := post(t, ts.URL, rowsJSON(fmt.Sprint(i), 1))
				if r.status != 200 && r.status != 503 {
					t.Fatalf("status = %d", r.status)
				}
				if r.status == 503 {
					wantErrorBody(t, r)
				}
			}
			st := s.Stats()
			if !tt.wantOK(st.Requests) || !tt.wantInjected(st.InjectedFailures) || st.Rows != st.Requests {
				t.Errorf("stats = %+v", st)
			}
			for _, r := range s.Requests() {
				if (r.Status == 503) != (r.Reason == ReasonInjected) {
					t.Errorf("request %+v: status and reason disagree", r)
				}
			}
		})
	}
}

func TestNewPanicsOnAnUnknownProfile(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New accepted an unknown profile")
		}
	}()
	New(Options{Profile: "nope"})
}

func TestStatsJSONCountsRejections(t *testing.T) {
	clock := newClock(0)
	_, ts := newClockedSink(t, Options{Profile: relay.ProfilePowerBIStreaming}, clock)
	post(t, ts.URL, rowsJSON("a", 1))
	post(t, ts.URL, rowsJSON("b", 1)) // same instant: rate
	clock.Set(clock.Now().Add(time.Second))
	post(t, ts.URL, bodyOfSize(t, FormatArray, 20_000)) // size
	var got map[string]int
	r := do(t, http.MethodGet, ts.URL+"/stats", "", nil)
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if got["rejected_for_rate"] != 1 || got["rejected_for_size"] != 1 || got["rejected"] != 2 || got["requests"] != 1 {
		t.Errorf("stats = %s", r.body)
	}
	// Reasons that never happened are there as 0, so a check for 0 holds.
	for _, k := range []string{"rejected_for_inflight", "rejected_for_signature", "injected_failures"} {
		if v, ok := got[k]; !ok || v != 0 {
			t.Errorf("stats[%q] = %d, present %v; want 0, present (stats %s)", k, v, ok, r.body)
		}
	}
}

// TestRateJudgesInTimestampOrder: many concurrent requests, each stamped a
// full interval after the previous, must all be admitted whatever order
// their handlers reach the rate check in.
func TestRateJudgesInTimestampOrder(t *testing.T) {
	p := profile(t, relay.ProfilePowerBIStreaming)
	interval := time.Duration(float64(time.Second) / float64(p.RequestsPerSecond))
	s, ts := newClockedSink(t, Options{Profile: p.Name, RateTolerance: -1}, newClock(interval))
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			// Bodies of very different sizes take different times to read.
			post(t, ts.URL, bodyOfSize(t, FormatArray, 100+(i%4)*3000))
		})
	}
	wg.Wait()
	if st := s.Stats(); st.Requests != 40 {
		t.Errorf("stats = %+v, want all 40 admitted", st)
	}
	if err := CheckPacing(s.Requests(), p, 0); err != nil {
		t.Error(err)
	}
}

// signingSink is what the relay's HTTPSink will do once it signs: POST the
// body with the Standard Webhooks headers, the idempotency key as id.
type signingSink struct {
	url    string
	signer relay.Signer
}

func (s signingSink) Send(ctx context.Context, body []byte, key string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	s.signer.SignRequest(req, key, body, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// TestPacedSignedClientOnTheRealClock sends through relay.LimitSink with
// each rated profile's limiter and in-flight cap, concurrently, signed, and
// proves from the emulator's recorded timestamps that the rate held.
func TestPacedSignedClientOnTheRealClock(t *testing.T) {
	secret, _ := relay.ParseSecret(strings.Repeat("e", 32))
	for _, tc := range []struct {
		name string
		n    int
	}{{relay.ProfilePowerBIStreaming, 8}, {relay.ProfilePowerBIPush, 4}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := profile(t, tc.name)
			s, ts := newSink(t, Options{Profile: p.Name, Secret: secret})
			sink := relay.LimitSink(signingSink{ts.URL, relay.Signer{Secret: secret}}, p.Limiter(), p.MaxInFlight)
			var wg sync.WaitGroup
			for i := range tc.n {
				wg.Go(func() {
					body := inFormat(string(p.Format), rowsJSON(fmt.Sprint(i), 3))
					if err := sink.Send(t.Context(), []byte(body), fmt.Sprintf("key%d", i)); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if st := s.Stats(); st.Requests != tc.n || st.Rejected != 0 {
				t.Errorf("stats = %+v, want all %d accepted", st, tc.n)
			}
			if err := CheckPacing(s.Requests(), p, DefaultRateTolerance); err != nil {
				t.Error(err)
			}
		})
	}
}
