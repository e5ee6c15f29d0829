package relay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// backoff is the relay's one retry policy: exponential with full jitter
// (AWS Architecture Blog, "Exponential Backoff And Jitter"), capped, and
// never shorter than a server's Retry-After.
type backoff struct {
	base, max time.Duration
}

// delay is the wait before retry number attempt (0-based).
func (b backoff) delay(attempt int, retryAfter time.Duration) time.Duration {
	ceiling := b.max
	if attempt < 32 {
		if d := b.base << attempt; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	d := time.Duration(rand.Int64N(int64(ceiling) + 1))
	if retryAfter > d {
		d = retryAfter
	}
	return d
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retry calls fn until it succeeds or ctx is done, backing off between
// calls and logging each failure through onErr. It is for DynamoDB writes
// that must eventually happen (marks, checkpoints): the SDK already retries
// throttling, this outlasts longer outages such as a DynamoDB restart.
// Once ctx is done the error it returns wraps ctx.Err(), also when the last
// call failed for another reason: shutdown tells a cut-off batch by it.
func (b backoff) retry(ctx context.Context, fn func(context.Context) error, onErr func(error)) error {
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			if errors.Is(err, cerr) {
				return err
			}
			return fmt.Errorf("%w: %w", cerr, err)
		}
		onErr(err)
		if err := sleep(ctx, b.delay(attempt, 0)); err != nil {
			return err
		}
	}
}
