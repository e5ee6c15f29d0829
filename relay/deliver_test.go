package relay

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// After a Retry-After pause, one request probes the endpoint and the
// others wait for its answer; without a pause nobody waits.
func TestHealthProbesAfterAPause(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var h health

	done, err := h.wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done()
	if _, err := h.wait(ctx); err != nil {
		t.Fatalf("no pause, yet wait failed: %v", err)
	}

	start := time.Now()
	h.pause(start, 100*time.Millisecond)
	probeDone, err := h.wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("probe went after %s, want >= 100ms", waited)
	}
	released := make(chan time.Time, 2)
	for range 2 {
		go func() {
			d, err := h.wait(ctx)
			if err == nil {
				d()
			}
			released <- time.Now()
		}()
	}
	select {
	case <-released:
		t.Fatal("a second request went while the probe was unanswered")
	case <-time.After(200 * time.Millisecond):
	}
	// The probe is refused again: everybody waits out the new pause.
	again := time.Now()
	h.pause(again, 150*time.Millisecond)
	probeDone()
	probeDone() // idempotent
	for range 2 {
		if at := <-released; at.Sub(again) < 150*time.Millisecond {
			t.Fatalf("request released %s after the second pause began, want >= 150ms", at.Sub(again))
		}
	}
}

func TestHealthWaitEndsWithContext(t *testing.T) {
	var h health
	h.pause(time.Now(), time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := h.wait(ctx); err == nil {
		t.Fatal("wait returned no error although ctx ended during the pause")
	}
}

// flakySink answers 503 until its deadline, then accepts, and keeps every
// body it was sent.
type flakySink struct {
	until  time.Time
	mu     sync.Mutex
	bodies []string
}

func (s *flakySink) Send(_ context.Context, body []byte, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bodies = append(s.bodies, string(body))
	if time.Now().Before(s.until) {
		return &StatusError{Code: http.StatusServiceUnavailable}
	}
	return nil
}

// statusSink answers every POST with code (2xx: accepted).
type statusSink struct{ code int }

func (s statusSink) Send(context.Context, []byte, string) error {
	if s.code/100 == 2 {
		return nil
	}
	return &StatusError{Code: s.code}
}

// Ready judges the endpoint, not the rows: after a batch whose last answer
// refused a row, the relay is ready; after one that kept failing until its
// attempts ran out, or was misconfigured, it is not.
func TestReadyAfterABatch(t *testing.T) {
	tests := []struct {
		name      string
		code      int
		wantReady string // "" = ready, else what Ready's error says
	}{
		{"accepted", http.StatusOK, ""},
		{"a bad row", http.StatusBadRequest, ""},
		{"an unprocessable row", http.StatusUnprocessableEntity, ""},
		{"a row too large", http.StatusRequestEntityTooLarge, ""},
		{"an endpoint that keeps failing", http.StatusServiceUnavailable, "deliveries failing since"},
		{"a wrong key", http.StatusUnauthorized, "endpoint misconfigured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(Config{
				SinkURL: "http://127.0.0.1:1/rows", UnhealthyAfter: time.Millisecond, MaxAttempts: 2, SweepInterval: -1,
				RetryBase: time.Millisecond, RetryMax: 2 * time.Millisecond, Logger: quietLogger(),
			}, newStateDB(), nil, statusSink{tt.code})
			if err != nil {
				t.Fatal(err)
			}
			r.started.Store(true)
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond) // a misconfiguration is retried until ctx ends
			defer cancel()
			rec := &record{eventID: "e1", row: []byte(`{"event_id":"e1"}`)}
			_ = r.send(ctx, []*record{rec})
			time.Sleep(5 * time.Millisecond) // past UnhealthyAfter
			err = r.Ready()
			if tt.wantReady == "" {
				if err != nil {
					t.Fatalf("Ready() = %v, want ready", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), tt.wantReady) {
				t.Fatalf("Ready() = %v, want not ready: %q", err, tt.wantReady)
			}
		})
	}
}

// MaxRecordAge holds while a batch is retried, not only when it is read:
// an event that grows too old during an outage is failed and the rest of
// its batch sent without it; one already too old is never sent.
func TestSendFailsEventsThatAgeOutWhileRetried(t *testing.T) {
	const maxAge = time.Second
	start := time.Now()
	sink := &flakySink{until: start.Add(600 * time.Millisecond)}
	r, err := New(Config{
		SinkURL: "http://127.0.0.1:1/rows", MaxRecordAge: maxAge, SweepInterval: -1,
		RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, Logger: quietLogger(),
	}, newStateDB(), nil, sink)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(id string, pendingFor time.Duration) *record {
		return &record{eventID: id, row: []byte(`{"event_id":"` + id + `"}`), pendingSince: start.Add(-pendingFor)}
	}
	old, aging, fresh := rec("old", 2*maxAge), rec("aging", 700*time.Millisecond), rec("fresh", 0)
	if err := r.send(t.Context(), []*record{old, aging, fresh}); err != nil {
		t.Fatal(err)
	}

	if !errors.Is(old.fail, ErrRecordTooOld) || old.attempts != 0 {
		t.Errorf("old: fail %v after %d attempts, want ErrRecordTooOld after 0", old.fail, old.attempts)
	}
	if !errors.Is(aging.fail, ErrRecordTooOld) || aging.attempts < 1 {
		t.Errorf("aging: fail %v after %d attempts, want ErrRecordTooOld after >= 1", aging.fail, aging.attempts)
	}
	if fresh.fail != nil {
		t.Errorf("fresh: fail %v, want delivered", fresh.fail)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.bodies) < 2 {
		t.Fatalf("%d POSTs, want the refused ones and an accepted one", len(sink.bodies))
	}
	if !strings.Contains(sink.bodies[0], `"aging"`) {
		t.Errorf("first body %s, want the aging row in it", sink.bodies[0])
	}
	if last := sink.bodies[len(sink.bodies)-1]; last != `[{"event_id":"fresh"}]` {
		t.Errorf("accepted body %s, want only the fresh row", last)
	}
	for _, b := range sink.bodies {
		if strings.Contains(b, `"old"`) {
			t.Errorf("body %s carries the event that was too old before the first POST", b)
		}
	}
}
