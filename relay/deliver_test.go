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
