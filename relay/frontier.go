package relay

import (
	"context"
	"sync"
	"time"

	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/ddboutbox/ddboutbox/dynamo"
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
// instead of reading as caught up. Reader goroutines write a frontier
// (shardWork.readTo), the sweeper reads it; only atomics and a sync.Map
// are shared.
//
// Other relays' sweepers see a shard through its lease instead, where the
// owner publishes settledBefore: they cannot see this relay's pipeline.
type frontiers struct {
	m sync.Map // shard id -> *shardWork
}

// track registers w's reader before it reads anything; readShard defers
// the function it returns. A reader stopped by its context (lease lost,
// shutdown) is forgotten at once: the shard is no longer this relay's to
// read. One that reached its shard's end stays until the end is
// checkpointed (finished), because its last records are still in the
// pipeline and the child shards' readers only start then; lag keeps it
// from freezing the sweeper meanwhile, and maxLag drops it afterwards.
func (f *frontiers) track(ctx context.Context, w *shardWork) (untrack func()) {
	f.m.Store(w.id, w)
	return func() {
		if ctx.Err() != nil {
			f.m.CompareAndDelete(w.id, w)
		}
	}
}

// forget drops every reader once a stream's readers have all returned.
func (f *frontiers) forget() { f.m.Clear() }

// advance moves w's reader frontier past recs, a page it has handed on
// in full, read by a GetRecords call that returned just before now when
// recs is empty. It is a method of the reader's own shardWork, so a
// reader that outlived its lease cannot move its successor's frontier.
func (w *shardWork) advance(recs []streamtypes.Record, now time.Time) {
	switch created := lastCreated(recs); {
	case len(recs) == 0:
		w.readTo.Store(now.UnixNano())
	case created != nil:
		w.readTo.Store(created.UnixNano())
	case len(recs) < getRecordsLimit:
		// Without a creation time a short page is the only sign of having
		// caught up; a full one leaves the frontier where it was.
		w.readTo.Store(now.UnixNano())
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
		w := v.(*shardWork)
		if w.finished.Load() || w.stopped.Load() {
			f.m.CompareAndDelete(k, w)
			return true
		}
		lag = max(lag, lagBehind(now, w.readTo.Load()))
		return true
	})
	return lag
}

// lagBehind is how far the frontier at (Unix nanoseconds; 0: none yet,
// which may be any checkpoint the stream still holds) is behind now, at
// most streamRetention.
func lagBehind(now time.Time, at int64) time.Duration {
	if at == 0 {
		return streamRetention
	}
	return min(max(now.Sub(time.Unix(0, at)), 0), streamRetention)
}

// settledBefore is what the owner of w's lease publishes to other relays'
// sweepers (dynamo.Lease.SettledBeforeMilli): a time before which every
// record of the shard it read is settled. While nothing is in the
// pipeline that is the reader's frontier; otherwise the creation time of
// the last record settled, which stays put while a batch is retried
// through an outage, so the others hold back. Zero: nothing to say yet.
//
// readTo is loaded before settled and settled before handed: a reader
// counts a record handed before it moves readTo past it, so a readTo
// that covers a record comes with a handed count that includes it, and a
// settled count read earlier cannot match that count unless the record
// was settled.
func (w *shardWork) settledBefore() time.Time {
	at := w.readTo.Load()
	if settled := w.settled.Load(); w.handed.Load() != settled {
		at = w.settledTo.Load()
	}
	if at == 0 {
		return time.Time{}
	}
	return time.Unix(0, at)
}

// peersLag is how far behind now the slowest shard that another relay
// holds is settled, from the settledBefore its owner publishes in the
// lease (this relay cannot see the other's pipeline), at most
// streamRetention. A lease counts while it is unfinished and was written
// within the stream's retention; one that expired (its owner crashed)
// still counts until another relay takes it over, because the new owner
// reads again from the checkpoint. An owner that has published nothing
// yet counts as streamRetention behind, like a reader of this relay's
// that has read no page.
//
// An expired lease of a shard no relay can take over (unlisted; nil: every
// shard can be) does not count: nobody reads that shard again, and what
// it held is the sweepers'. Those are every shard of a stream the table no
// longer uses (its owners count while they are live, still settling what
// they read before they move on), and a shard the current stream no
// longer lists at the last shard sync (its records were trimmed), whose
// lease would otherwise hold the sweepers back until its updated_at is a
// day old. A live lease still counts: its shard may be newer than the
// listing, which is refreshed every ShardSyncInterval, within the
// LeaseDuration a new owner has before its lease could expire.
func peersLag(leases []dynamo.Lease, owner string, now time.Time, unlisted func(shardID string) bool) time.Duration {
	var lag time.Duration
	for _, l := range leases {
		gone := unlisted != nil && unlisted(l.ShardID) && l.ExpiresAtMilli <= now.UnixMilli()
		if l.Finished() || l.Owner == owner || gone {
			continue
		}
		if upd, err := time.Parse(time.RFC3339Nano, l.UpdatedAt); err == nil && now.Sub(upd) > streamRetention {
			continue // left behind: its shard's records are gone from the stream
		}
		lag = max(lag, lagBehind(now, l.SettledBeforeMilli*int64(time.Millisecond)))
	}
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
