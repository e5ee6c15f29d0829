package relay

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// streamRetention is how long DynamoDB Streams keep a record. An event older
// than that cannot be read from the stream any more, so no reader's lag
// holds the sweeper back further.
const streamRetention = 24 * time.Hour

// frontiers tracks how far each of this relay's shard readers has read, so
// that the sweeper leaves alone the events the stream path is still going
// to deliver: while the stream path lags (a relay restarted after a long
// stop, a stalled endpoint, a backlog), claiming every event older than
// SweepAfter would send each of them twice.
//
// A reader's frontier is a time before which it has handed on every record
// of its shard: when its last GetRecords came back empty (caught up), the
// time of that call, so its lag is at most a poll interval while it keeps
// polling; otherwise the creation time of the last record it handed on.
// Both stop moving while the reader stalls, so a stalled reader's lag grows
// instead of reading as caught up. Reader goroutines write a frontier, the
// sweeper reads it; only atomics and a sync.Map are shared.
type frontiers struct {
	m sync.Map // shard id -> *frontier
}

type frontier struct {
	w *shardWork
	// at is the frontier in Unix nanoseconds; 0 until the first page.
	at atomic.Int64
}

// track registers w's reader before it reads anything; readShard defers
// the function it returns. A reader stopped by its context (lease lost,
// shutdown) is forgotten at once: the shard is no longer this relay's to
// read. One that reached its shard's end stays until the end is
// checkpointed (finished), because its last records are still in the
// pipeline and the child shards' readers only start then; lag keeps it
// from freezing the sweeper meanwhile, and maxLag drops it afterwards.
func (f *frontiers) track(ctx context.Context, w *shardWork) (untrack func()) {
	e := &frontier{w: w}
	f.m.Store(w.id, e)
	return func() {
		if ctx.Err() != nil {
			f.m.CompareAndDelete(w.id, e)
		}
	}
}

// advance moves the frontier of shard's reader past recs, a page it has
// handed on in full, read by a GetRecords call that returned just before
// now when recs is empty.
func (f *frontiers) advance(shard string, recs []streamtypes.Record, now time.Time) {
	v, ok := f.m.Load(shard)
	if !ok {
		return
	}
	e := v.(*frontier)
	switch created := lastCreated(recs); {
	case len(recs) == 0:
		e.at.Store(now.UnixNano())
	case created != nil:
		e.at.Store(created.UnixNano())
	case len(recs) < getRecordsLimit:
		// Without a creation time a short page is the only sign of having
		// caught up; a full one leaves the frontier where it was.
		e.at.Store(now.UnixNano())
	}
}

// maxLag is how far the slowest reader's frontier is behind now, at most
// streamRetention. A reader that has read no page yet counts as
// streamRetention behind: it may start from any checkpoint the stream
// still holds. Readers whose shard is finished or stopped (gone, lease
// lost) are dropped.
func (f *frontiers) maxLag(now time.Time) time.Duration {
	var lag time.Duration
	f.m.Range(func(k, v any) bool {
		e := v.(*frontier)
		if e.w.finished.Load() || e.w.stopped.Load() {
			f.m.CompareAndDelete(k, e)
			return true
		}
		l := streamRetention
		if at := e.at.Load(); at != 0 {
			l = min(max(now.Sub(time.Unix(0, at)), 0), streamRetention)
		}
		lag = max(lag, l)
		return true
	})
	return lag
}

// sweepCutoff is the occurred_at before which the sweeper claims PENDING
// events: SweepAfter behind the slowest reader's frontier. The stream path
// gets SweepAfter to deliver an event once its reader has got past it,
// the same time it gets when it is caught up (lag 0), which also covers
// the records just handed on and still in the pipeline, the rounding of
// creation times and clock skew between writers and the relay. The events
// the stream path can never deliver are still swept: those written before
// a LATEST start (the reader is caught up at once), those older than the
// stream's retention, and redriven or replayed ones (their occurred_at is
// old and their MODIFY records are not sent).
func sweepCutoff(now time.Time, sweepAfter, lag time.Duration) time.Time {
	return now.Add(-(sweepAfter + lag))
}
