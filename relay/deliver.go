package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// health tracks how deliveries are going: for Ready, for the once-a-minute
// misconfiguration log, and as the Retry-After gate every request obeys.
type health struct {
	mu            sync.Mutex
	failingSince  time.Time // zero while the last POST was answered
	lastErr       error
	misconfigured bool
	lastConfigLog time.Time
	pauseUntil    time.Time
	// After a pause one request probes the endpoint while the other
	// batches in flight wait for its answer, instead of all of them
	// hitting an endpoint that just asked for a break.
	needProbe bool
	probing   chan struct{} // closed when the probe is answered
}

// answered records an answer that shows the endpoint working: it took the
// rows, or refused some of them (400, 413, 422). A refusal is about rows,
// which the relay isolates and fails; it does not make the endpoint
// unhealthy, or a relay that isolated one bad row would stay not ready
// until the next batch came.
func (h *health) answered() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failingSince, h.lastErr, h.misconfigured = time.Time{}, nil, false
}

// failed records a failed POST; logNow says whether a misconfiguration
// should be logged (at most once a minute, it can last for hours).
func (h *health) failed(err error, misconfigured bool, now time.Time) (logNow bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failingSince.IsZero() {
		h.failingSince = now
	}
	h.lastErr, h.misconfigured = err, misconfigured
	if misconfigured && now.Sub(h.lastConfigLog) >= time.Minute {
		h.lastConfigLog = now
		return true
	}
	return false
}

// pause holds every request to the endpoint until now+d: a Retry-After
// speaks for the endpoint, not for one batch. The first request after it
// is a probe that the others wait for.
func (h *health) pause(now time.Time, d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if until := now.Add(d); until.After(h.pauseUntil) {
		h.pauseUntil = until
	}
	h.needProbe = true
}

// wait blocks until a request may be sent: after any pause, and, when the
// endpoint is being probed, until the probe was answered. The caller calls
// done once the request's answer was handled (after any pause it caused).
func (h *health) wait(ctx context.Context) (done func(), err error) {
	for {
		h.mu.Lock()
		d := time.Until(h.pauseUntil)
		probing := h.probing
		switch {
		case d > 0:
			h.mu.Unlock()
			if err := sleep(ctx, d); err != nil {
				return nil, err
			}
			continue
		case probing != nil:
			h.mu.Unlock()
			select {
			case <-probing:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		case h.needProbe:
			h.needProbe = false
			ch := make(chan struct{})
			h.probing = ch
			h.mu.Unlock()
			var once sync.Once
			return func() {
				once.Do(func() {
					h.mu.Lock()
					h.probing = nil
					h.mu.Unlock()
					close(ch)
				})
			}, nil
		}
		h.mu.Unlock()
		return func() {}, nil
	}
}

// ErrNotReady is wrapped by every error Ready returns.
var ErrNotReady = errors.New("relay not ready")

// Ready reports whether the relay is doing its job: it found the stream
// and acts for its owner (no other live process does), and the endpoint
// is neither misconfigured (401, 403, 404, 405, 407, 301, 302, 303) nor
// failing (unreachable, timing out, 408, 429, 5xx) for longer than
// UnhealthyAfter. Rows it refuses (400, 413, 422) are failed one by one and
// leave it ready.
func (r *Relay) Ready() error {
	if w := r.ownerWait.Load(); w != nil {
		return fmt.Errorf("%w: %w", ErrNotReady, *w)
	}
	if !r.started.Load() {
		return fmt.Errorf("%w: stream not found yet", ErrNotReady)
	}
	h := &r.health
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.misconfigured:
		return fmt.Errorf("%w: endpoint misconfigured: %w", ErrNotReady, h.lastErr)
	case !h.failingSince.IsZero() && time.Since(h.failingSince) > r.cfg.UnhealthyAfter:
		return fmt.Errorf("%w: deliveries failing since %s: %w", ErrNotReady, h.failingSince.UTC().Format(time.RFC3339), h.lastErr)
	}
	return nil
}

// send POSTs the rows as one request until it is accepted or ctx ends.
// Transient failures are retried with backoff; a batch the endpoint rejects
// (400, 422) is bisected until the offending rows are isolated, and one that
// is too large (413) is split and lowers the byte cap. Rows that cannot be
// delivered get their fail set; the rest are delivered. As an event source
// mapping's maximum record age does, MaxRecordAge holds while a batch is
// retried: before every POST the rows pending for longer are failed and
// the rest sent without them.
func (r *Relay) send(ctx context.Context, recs []*record) error {
	var body []byte
	var key string
	attempts := 0
	for try := 0; ; try++ {
		done, err := r.health.wait(ctx)
		if err != nil {
			return err
		}
		if live := r.expire(recs, attempts, time.Now()); len(live) < len(recs) || body == nil {
			if len(live) == 0 {
				done()
				return nil
			}
			recs = live
			rows := make([][]byte, len(recs))
			for i, rec := range recs {
				rows[i] = rec.row
			}
			body, key = encodeBody(r.cfg.SinkFormat, rows), idempotencyKey(recs)
		}
		err = r.sink.Send(ctx, body, key)
		if ra := retryAfterOf(err); ra > 0 {
			r.health.pause(time.Now(), ra)
		}
		done()
		if err == nil {
			r.health.answered()
			r.n.batches.Add(1)
			r.m.batchRows.Observe(float64(len(recs)))
			r.m.batchBytes.Observe(float64(len(body)))
			r.log.Debug("batch delivered", "rows", len(recs), "bytes", len(body), "tries", try+1)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		v := classifySend(err)
		if v == splitBatch || v == shrinkBatch {
			r.health.answered()
		} else if r.health.failed(err, v == misconfigured, time.Now()) {
			r.log.Warn("endpoint misconfigured (wrong key or URL?); retrying without failing events", "err", err)
		}
		switch v {
		case splitBatch, shrinkBatch:
			if v == shrinkBatch {
				r.lowerCap(len(body))
			}
			if len(recs) == 1 {
				recs[0].fail, recs[0].attempts = err, attempts+1
				return nil
			}
			mid := len(recs) / 2
			if err := r.send(ctx, recs[:mid]); err != nil {
				return err
			}
			return r.send(ctx, recs[mid:])
		case retryBatch:
			attempts++
			if r.cfg.MaxAttempts > 0 && attempts >= r.cfg.MaxAttempts {
				for _, rec := range recs {
					rec.fail, rec.attempts = fmt.Errorf("gave up after %d attempts: %w", attempts, err), attempts
				}
				return nil
			}
			r.log.Warn("delivery failed, retrying", "rows", len(recs), "attempt", attempts, "err", err)
		}
		r.n.retries.Add(1)
		r.m.retries.Inc()
		if err := sleep(ctx, r.policy.delay(try, retryAfterOf(err))); err != nil {
			return err
		}
	}
}

// expire fails the records pending for longer than MaxRecordAge and
// returns the others; recs itself is left as it was, since it may be a
// part of the caller's batch.
func (r *Relay) expire(recs []*record, attempts int, now time.Time) []*record {
	if r.cfg.MaxRecordAge <= 0 {
		return recs
	}
	var live []*record
	for _, rec := range recs {
		if rec.pendingSince.IsZero() {
			live = append(live, rec)
		} else if err := tooOld(rec.pendingSince, now, r.cfg.MaxRecordAge); err != nil {
			rec.fail, rec.attempts = err, attempts
		} else {
			live = append(live, rec)
		}
	}
	if len(live) == len(recs) {
		return recs
	}
	return live
}

// lowerCap halves the byte cap below a body the endpoint refused as too
// large, so that later batches fit without being refused first.
func (r *Relay) lowerCap(refused int) {
	floor := int64(envelopeSize(r.cfg.SinkFormat) + 2)
	want := max(int64(refused/2), floor)
	for {
		cur := r.capBytes.Load()
		if want >= cur || r.capBytes.CompareAndSwap(cur, want) {
			break
		}
	}
	r.log.Warn("endpoint refused a body as too large; lowering the byte cap", "refused_bytes", refused, "cap", r.capBytes.Load())
}
