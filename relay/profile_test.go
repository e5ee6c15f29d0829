package relay

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/time/rate"
)

func TestLookupProfile(t *testing.T) {
	tests := []struct {
		name        string
		format      Format
		maxRows     int
		maxBytes    int
		rps         rate.Limit
		burst       int
		maxInFlight int
	}{
		{ProfilePowerBIStreaming, FormatArray, 10_000, 15_000, 5, 1, 0},
		{ProfilePowerBIPush, FormatRows, 10_000, 16_000_000, 2, 1, 5},
		{ProfileGeneric, FormatArray, 10_000, 1 << 20, rate.Inf, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := LookupProfile(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != tt.name || p.Format != tt.format || p.MaxRows != tt.maxRows || p.MaxBytes != tt.maxBytes ||
				p.RequestsPerSecond != tt.rps || p.Burst != tt.burst || p.MaxInFlight != tt.maxInFlight {
				t.Errorf("got %+v", p)
			}
			if p.Source == "" {
				t.Error("no source for the limits")
			}
			// The relay must accept the profile's caps as its config.
			cfg := Config{SinkURL: "http://x", SinkFormat: p.Format, BatchSize: p.MaxRows, BatchBytes: p.MaxBytes}
			if err := cfg.Validate(); err != nil {
				t.Errorf("profile caps are not a valid config: %v", err)
			}
		})
	}
	if got, want := ProfileNames(), []string{ProfileGeneric, ProfilePowerBIPush, ProfilePowerBIStreaming}; !slices.Equal(got, want) {
		t.Errorf("ProfileNames() = %v, want %v", got, want)
	}
}

func TestLookupUnknownProfile(t *testing.T) {
	for _, name := range []string{"", "powerbi", "PowerBI-Push", "generic "} {
		_, err := LookupProfile(name)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("LookupProfile(%q) = %v, want ErrInvalidConfig", name, err)
			continue
		}
		for _, known := range ProfileNames() {
			if !strings.Contains(err.Error(), known) {
				t.Errorf("error %q does not list %q", err, known)
			}
		}
	}
}

func TestProfileLimiter(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		profile   Profile
		wantLimit rate.Limit
		// allowedIn is how many of 1000 back-to-back requests at start the
		// limiter lets through, then how many more in the next minute
		// when requests are offered every millisecond.
		atOnce, inMinute int
	}{
		{"streaming", mustProfile(t, ProfilePowerBIStreaming), 5, 1, 300},
		{"push", mustProfile(t, ProfilePowerBIPush), 2, 1, 120},
		{"generic", mustProfile(t, ProfileGeneric), rate.Inf, 1000, 60_000},
		{"zero rate means no limit", Profile{}, rate.Inf, 1000, 60_000},
		{"zero burst means 1", Profile{RequestsPerSecond: 10}, 10, 1, 600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := tt.profile.Limiter()
			if lim.Limit() != tt.wantLimit {
				t.Errorf("limit = %v, want %v", lim.Limit(), tt.wantLimit)
			}
			n := 0
			for range 1000 {
				if lim.AllowN(start, 1) {
					n++
				}
			}
			if n != tt.atOnce {
				t.Errorf("%d allowed at once, want %d", n, tt.atOnce)
			}
			n = 0
			for ms := 1; ms <= 60_000; ms++ {
				if lim.AllowN(start.Add(time.Duration(ms)*time.Millisecond), 1) {
					n++
				}
			}
			if n != tt.inMinute {
				t.Errorf("%d allowed in the following minute, want %d", n, tt.inMinute)
			}
		})
	}
	a, b := mustProfile(t, ProfilePowerBIPush).Limiter(), mustProfile(t, ProfilePowerBIPush).Limiter()
	if a == b {
		t.Error("Limiter returned a shared limiter")
	}
}

func mustProfile(t *testing.T, name string) Profile {
	t.Helper()
	p, err := LookupProfile(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// countingSink records when each Send ran and the most that ran at once.
type countingSink struct {
	mu      sync.Mutex
	at      []time.Time
	running atomic.Int32
	peak    atomic.Int32
	hold    time.Duration
}

func (s *countingSink) Send(ctx context.Context, _ []byte, _ string) error {
	n := s.running.Add(1)
	defer s.running.Add(-1)
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			break
		}
	}
	s.mu.Lock()
	s.at = append(s.at, time.Now())
	s.mu.Unlock()
	select {
	case <-time.After(s.hold):
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

func TestLimitSinkPacesSends(t *testing.T) {
	const every = 20 * time.Millisecond
	next := &countingSink{}
	s := LimitSink(next, rate.NewLimiter(rate.Every(every), 1), 0)
	start := time.Now()
	for range 6 {
		if err := s.Send(t.Context(), nil, "k"); err != nil {
			t.Fatal(err)
		}
	}
	// Scheduling can only make a send later than its token, so compare
	// each with its earliest allowed time rather than with its neighbour;
	// rate.Limiter rounds in float64, hence the millisecond.
	for i, at := range next.at {
		if earliest := start.Add(time.Duration(i)*every - time.Millisecond); at.Before(earliest) {
			t.Errorf("send %d at +%v, want no earlier than +%v", i, at.Sub(start), earliest.Sub(start))
		}
	}
}

func TestLimitSinkCapsInFlight(t *testing.T) {
	const limit = 3
	next := &countingSink{hold: 20 * time.Millisecond}
	s := LimitSink(next, nil, limit)
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			if err := s.Send(t.Context(), nil, "k"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if p := next.peak.Load(); p != limit {
		t.Errorf("peak in flight = %d, want %d", p, limit)
	}
	if len(next.at) != 12 {
		t.Errorf("%d sends, want 12", len(next.at))
	}
}

func TestLimitSinkHonoursContext(t *testing.T) {
	next := &countingSink{hold: time.Minute}
	s := LimitSink(next, rate.NewLimiter(rate.Every(time.Hour), 1), 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Send(ctx, nil, "a") }() // holds the only slot
	for next.running.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// Waiting for the slot gives up with the context.
	short, cancelShort := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancelShort()
	if err := s.Send(short, nil, "b"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting for a slot: err = %v, want deadline exceeded", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("first send: err = %v, want canceled", err)
	}
	// The slot is free again, but the token is an hour away.
	short2, cancelShort2 := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancelShort2()
	if err := s.Send(short2, nil, "c"); err == nil {
		t.Error("send went through without a token")
	}
	if n := len(next.at); n != 1 {
		t.Errorf("%d sends reached the sink, want 1", n)
	}
}

// The relay counts and times the POSTs that leave, not the wait for the
// limiter: a send cut short while it waits for an in-flight slot is no
// request, and the wait is no part of the endpoint's latency.
func TestRequestsAreMeteredInsideTheLimiter(t *testing.T) {
	next := &countingSink{hold: 200 * time.Millisecond}
	r, err := New(Config{
		SinkURL: "http://127.0.0.1:1/rows", SinkMaxInFlight: 1, SweepInterval: -1,
		Logger: quietLogger(), Registerer: prometheus.NewRegistry(),
	}, newStateDB(), nil, next)
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- r.sink.Send(t.Context(), nil, "k-1") }()
	for next.running.Load() == 0 { // the first holds the only slot
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := r.sink.Send(ctx, nil, "k-2"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second send: %v, want it cut short waiting for the slot", err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if got := r.Stats().Requests; got != 1 {
		t.Errorf("Stats().Requests = %d, want 1", got)
	}
	if got := testutil.CollectAndCount(r.m.requests); got != 1 {
		t.Errorf("%d endpoint_requests_total series, want only the 2xx one", got)
	}
	if got := testutil.ToFloat64(r.m.requests.WithLabelValues("2xx")); got != 1 {
		t.Errorf("endpoint_requests_total{code=2xx} = %v, want 1", got)
	}
}
