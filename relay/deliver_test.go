package relay

import (
	"context"
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
