package relay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/ddboutbox/ddboutbox/dynamo"
)

// pageCreatedAt is a stream page of n MODIFY records, the last created at.
func pageCreatedAt(n int, at time.Time) []streamtypes.Record {
	recs := make([]streamtypes.Record, n)
	for i := range recs {
		recs[i] = streamtypes.Record{EventName: streamtypes.OperationTypeModify, Dynamodb: &streamtypes.StreamRecord{
			SequenceNumber: aws.String("1"), ApproximateCreationDateTime: aws.Time(at),
		}}
	}
	return recs
}

func TestSweepCutoff(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	const sweepAfter = 5 * time.Minute
	// reader is one shard reader's state when the sweeper looks.
	type reader struct {
		pages    [][]streamtypes.Record // handed on in order
		polledAt time.Time              // set: the last page was empty, read then
		ended    bool                   // returned at its shard's end
		finished bool                   // shard end checkpointed
		stopped  bool                   // shard gone or lease lost
		canceled bool                   // returned because its context ended
	}
	tests := []struct {
		name    string
		readers []reader
		want    time.Time
	}{
		{"no readers", nil, now.Add(-sweepAfter)},
		{"caught up: empty page just now", []reader{{polledAt: now}}, now.Add(-sweepAfter)},
		{"caught up: empty page a poll ago", []reader{{polledAt: now.Add(-250 * time.Millisecond)}}, now.Add(-sweepAfter - 250*time.Millisecond)},
		{"caught up: short page of new records", []reader{{pages: [][]streamtypes.Record{pageCreatedAt(3, now.Add(-time.Second))}}}, now.Add(-sweepAfter - time.Second)},
		{"working through an hour's backlog", []reader{{pages: [][]streamtypes.Record{pageCreatedAt(getRecordsLimit, now.Add(-time.Hour))}}}, now.Add(-time.Hour - sweepAfter)},
		{"the slowest reader sets the cutoff", []reader{
			{polledAt: now},
			{pages: [][]streamtypes.Record{pageCreatedAt(getRecordsLimit, now.Add(-2*time.Hour))}},
			{pages: [][]streamtypes.Record{pageCreatedAt(getRecordsLimit, now.Add(-time.Hour))}},
		}, now.Add(-2*time.Hour - sweepAfter)},
		{"the last page counts: caught up after a backlog", []reader{{pages: [][]streamtypes.Record{pageCreatedAt(getRecordsLimit, now.Add(-time.Hour)), nil}}}, now.Add(-sweepAfter)},
		{"stalled since its last empty poll 10 minutes ago", []reader{{polledAt: now.Add(-10 * time.Minute)}}, now.Add(-10*time.Minute - sweepAfter)},
		{"nothing read yet: any checkpoint the stream holds", []reader{{}}, now.Add(-streamRetention - sweepAfter)},
		{"three days behind: capped at the stream's retention", []reader{{pages: [][]streamtypes.Record{pageCreatedAt(getRecordsLimit, now.Add(-72*time.Hour))}}}, now.Add(-streamRetention - sweepAfter)},
		{"creation time ahead of the relay's clock", []reader{{pages: [][]streamtypes.Record{pageCreatedAt(1, now.Add(time.Minute))}}}, now.Add(-sweepAfter)},
		{"full page without creation times keeps the frontier", []reader{{pages: [][]streamtypes.Record{
			pageCreatedAt(getRecordsLimit, now.Add(-time.Hour)), make([]streamtypes.Record, getRecordsLimit),
		}}}, now.Add(-time.Hour - sweepAfter)},
		{"shard gone or lease lost: ignored", []reader{{stopped: true}}, now.Add(-sweepAfter)},
		{"stopped by its context: ignored", []reader{{canceled: true}}, now.Add(-sweepAfter)},
		{"shard ended, end not checkpointed: still counts", []reader{{ended: true, pages: [][]streamtypes.Record{pageCreatedAt(5, now.Add(-time.Hour))}}}, now.Add(-time.Hour - sweepAfter)},
		{"shard ended and finished: ignored", []reader{{ended: true, finished: true, pages: [][]streamtypes.Record{pageCreatedAt(5, now.Add(-time.Hour))}}}, now.Add(-sweepAfter)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f frontiers
			for i, rd := range tt.readers {
				w := &shardWork{id: string(rune('a' + i))}
				ctx, cancel := context.WithCancel(context.Background())
				untrack := f.track(ctx, w)
				for _, p := range rd.pages {
					w.advance(p, now)
				}
				if !rd.polledAt.IsZero() {
					w.advance(nil, rd.polledAt)
				}
				if rd.canceled {
					cancel()
				}
				if rd.ended || rd.canceled {
					untrack()
				}
				w.finished.Store(rd.finished)
				w.stopped.Store(rd.stopped)
				cancel()
			}
			if got := sweepCutoff(now, sweepAfter, f.maxLag(now)); !got.Equal(tt.want) {
				t.Fatalf("cutoff %s, want %s (%s off)", got, tt.want, got.Sub(tt.want))
			}
		})
	}
}

// pagedStreams is a StreamsAPI over shards whose GetRecords calls
// announce themselves on the shard's calls and then return the pages the
// test sends on its pages, one per call.
type pagedStreams struct {
	shards map[string]*pagedShard // fixed before the readers start

	mu        sync.Mutex
	iterTypes map[string][]streamtypes.ShardIteratorType
}

type pagedShard struct {
	calls chan struct{}
	pages chan []streamtypes.Record
}

func newPagedStreams(ids ...string) *pagedStreams {
	s := &pagedStreams{shards: map[string]*pagedShard{}, iterTypes: map[string][]streamtypes.ShardIteratorType{}}
	for _, id := range ids {
		s.shards[id] = &pagedShard{calls: make(chan struct{}), pages: make(chan []streamtypes.Record)}
	}
	return s
}

func (*pagedStreams) DescribeStream(context.Context, *dynamodbstreams.DescribeStreamInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error) {
	return nil, errors.New("not faked")
}

// GetShardIterator's iterator is the shard id.
func (s *pagedStreams) GetShardIterator(_ context.Context, in *dynamodbstreams.GetShardIteratorInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := aws.ToString(in.ShardId)
	s.iterTypes[id] = append(s.iterTypes[id], in.ShardIteratorType)
	return &dynamodbstreams.GetShardIteratorOutput{ShardIterator: in.ShardId}, nil
}

func (s *pagedStreams) GetRecords(ctx context.Context, in *dynamodbstreams.GetRecordsInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error) {
	sh := s.shards[aws.ToString(in.ShardIterator)]
	select {
	case sh.calls <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case p := <-sh.pages:
		return &dynamodbstreams.GetRecordsOutput{Records: p, NextShardIterator: in.ShardIterator}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// cutoffDB answers the sweeper's pending-index queries with nothing and
// keeps the cutoff each asked for.
type cutoffDB struct {
	mu      sync.Mutex
	cutoffs []string
}

func (*cutoffDB) DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	return nil, errors.New("not faked")
}

func (*cutoffDB) UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return nil, errors.New("not faked")
}

func (*cutoffDB) TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	return nil, errors.New("not faked")
}

func (db *cutoffDB) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if c, ok := in.ExpressionAttributeValues[":cutoff"].(*types.AttributeValueMemberS); ok {
		db.cutoffs = append(db.cutoffs, c.Value)
	}
	return &dynamodb.QueryOutput{}, nil
}

// sweptBefore runs one sweep and returns the cutoff it queried with.
func sweptBefore(t *testing.T, r *Relay, db *cutoffDB) time.Time {
	t.Helper()
	db.mu.Lock()
	db.cutoffs = nil
	db.mu.Unlock()
	if _, err := r.sweep(context.Background(), "arn", make(chan record)); err != nil {
		t.Fatal(err)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if len(db.cutoffs) == 0 {
		t.Fatal("the sweep queried nothing")
	}
	at, err := time.Parse(time.RFC3339Nano, db.cutoffs[0])
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// The sweeper goes only as far as the stream path has read: a reader
// started at LATEST that reads nothing is caught up, one working through a
// backlog holds the sweeper back, and one that stopped does not.
func TestSweepFollowsTheReaders(t *testing.T) {
	const sweepAfter = 2 * time.Second
	db := &cutoffDB{}
	streams := newPagedStreams("latest", "backlog")
	r, err := New(Config{
		SinkURL: "http://127.0.0.1:1/rows", SweepAfter: sweepAfter, PollInterval: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, db, streams, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan record, 2*getRecordsLimit)
	start := func(id string, latest bool) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.readShard(ctx, "arn", &shardWork{id: id}, "", latest, out)
		}()
		<-streams.shards[id].calls // the first GetRecords has started
		return func() { cancel(); <-done }
	}
	within := func(got, lo, hi time.Time) {
		t.Helper()
		if got.Before(lo) || got.After(hi) {
			t.Fatalf("cutoff %s, want between %s and %s", got, lo, hi)
		}
	}
	latest, backlog := streams.shards["latest"], streams.shards["backlog"]

	stopLatest := start("latest", true)
	defer stopLatest()
	if got, want := sweptBefore(t, r, db), time.Now().Add(-streamRetention-sweepAfter); got.After(want) {
		t.Fatalf("before its first page the reader may start anywhere; cutoff %s, want %s or earlier", got, want)
	}
	// An empty page at LATEST: caught up, not infinitely behind.
	before := time.Now()
	latest.pages <- nil
	<-latest.calls // the page is handed on: the reader asks again
	within(sweptBefore(t, r, db), before.Add(-sweepAfter), time.Now().Add(-sweepAfter))

	// A second shard is an hour behind: nothing newer than an hour is
	// swept until it catches up, since it is going to deliver those.
	created := time.Now().Add(-time.Hour).Truncate(time.Second)
	stopBacklog := start("backlog", false)
	backlog.pages <- pageCreatedAt(getRecordsLimit, created)
	<-backlog.calls
	if got, want := sweptBefore(t, r, db), created.Add(-sweepAfter); !got.Equal(want) {
		t.Fatalf("cutoff %s, want %s: SweepAfter behind the backlog reader", got, want)
	}

	// Its lease lost, the reader stops and no longer holds the sweeper.
	stopBacklog()
	before = time.Now()
	within(sweptBefore(t, r, db), before.Add(-sweepAfter-time.Minute), time.Now().Add(-sweepAfter))

	streams.mu.Lock()
	defer streams.mu.Unlock()
	if got := streams.iterTypes["latest"]; len(got) != 1 || got[0] != streamtypes.ShardIteratorTypeLatest {
		t.Fatalf("iterators %v, want one LATEST", got)
	}
}

// Another relay's shards hold this relay's sweeper back by what their
// owners publish in the lease table.
func TestPeersLag(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	const none = time.Duration(-1 << 62) // nothing published
	lease := func(owner string, settledAgo, updatedAgo time.Duration, checkpoint string) dynamo.Lease {
		l := dynamo.Lease{Owner: owner, Checkpoint: checkpoint, UpdatedAt: now.Add(-updatedAgo).Format(time.RFC3339Nano)}
		if settledAgo != none {
			l.SettledBeforeMilli = now.Add(-settledAgo).UnixMilli()
		}
		return l
	}
	tests := []struct {
		name   string
		leases []dynamo.Lease
		want   time.Duration
	}{
		{"no leases", nil, 0},
		{"a peer caught up", []dynamo.Lease{lease("b", 10*time.Second, time.Second, "5")}, 10 * time.Second},
		{"the slowest peer counts", []dynamo.Lease{
			lease("b", 10*time.Second, time.Second, "5"), lease("c", 20*time.Minute, time.Second, "7"),
		}, 20 * time.Minute},
		{"this relay's own leases are left to its frontiers", []dynamo.Lease{lease("a", 3*time.Hour, time.Second, "5")}, 0},
		{"finished shards are done", []dynamo.Lease{lease("b", 3*time.Hour, time.Second, dynamo.ShardEnd)}, 0},
		{"nothing published yet: the stream's retention", []dynamo.Lease{lease("b", none, time.Second, "")}, streamRetention},
		{"expired but recent (owner crashed): still counts", []dynamo.Lease{lease("b", 40*time.Minute, 39*time.Minute, "5")}, 40 * time.Minute},
		{"untouched for longer than the stream keeps records: ignored", []dynamo.Lease{lease("b", 25*time.Hour, 25*time.Hour, "5")}, 0},
		{"settled_before ahead of this clock", []dynamo.Lease{lease("b", -time.Minute, time.Second, "5")}, 0},
		{"capped at the stream's retention", []dynamo.Lease{lease("b", 30*time.Hour, time.Hour, "5")}, streamRetention},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := peersLag(tt.leases, "a", now, nil); got != tt.want {
				t.Fatalf("lag %s, want %s", got, tt.want)
			}
		})
	}
}

// On a stream the table has moved on from, only a live lease holds the
// sweeper back: its owner is still settling what it read; a released or
// expired one means nobody reads that stream again.
func TestPeersLagOnALeftStream(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	lease := func(expiresIn time.Duration, settled bool) dynamo.Lease {
		l := dynamo.Lease{Owner: "b", Checkpoint: "5", UpdatedAt: now.Add(-time.Second).Format(time.RFC3339Nano)}
		if expiresIn != 0 {
			l.ExpiresAtMilli = now.Add(expiresIn).UnixMilli()
		}
		if settled {
			l.SettledBeforeMilli = now.Add(-2 * time.Minute).UnixMilli()
		}
		return l
	}
	tests := []struct {
		name  string
		lease dynamo.Lease
		want  time.Duration
	}{
		{"live, still settling", lease(10*time.Second, true), 2 * time.Minute},
		{"live, nothing published", lease(10*time.Second, false), streamRetention},
		{"released (expiry 0)", lease(0, true), 0},
		{"expired: its owner died", lease(-time.Second, false), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := peersLag([]dynamo.Lease{tt.lease}, "a", now, leftStreamShard); got != tt.want {
				t.Fatalf("lag %s, want %s", got, tt.want)
			}
			if tt.lease.ExpiresAtMilli <= now.UnixMilli() && peersLag([]dynamo.Lease{tt.lease}, "a", now, nil) == 0 {
				t.Fatal("on the current stream a lease waiting for takeover must still count")
			}
		})
	}
}

// On the current stream, an expired lease of a shard the last listing
// lacks (trimmed away: no relay can take it over) no longer holds the
// sweeper back; a live one, or one whose shard is listed, still does.
func TestPeersLagLeavesUnlistedShards(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	lease := func(shard string, expiresIn time.Duration) dynamo.Lease {
		return dynamo.Lease{
			ShardID: shard, Owner: "b", Checkpoint: "5",
			UpdatedAt:          now.Add(-time.Hour).Format(time.RFC3339Nano),
			ExpiresAtMilli:     now.Add(expiresIn).UnixMilli(),
			SettledBeforeMilli: now.Add(-3 * time.Hour).UnixMilli(),
		}
	}
	listed := func(id string) bool { return id != "shard-gone" }
	unlisted := func(id string) bool { return !listed(id) }
	tests := []struct {
		name     string
		lease    dynamo.Lease
		unlisted func(string) bool
		want     time.Duration
	}{
		{"expired, shard gone from the stream", lease("shard-gone", -time.Minute), unlisted, 0},
		{"live, shard not listed yet", lease("shard-gone", time.Minute), unlisted, 3 * time.Hour},
		{"expired, shard listed: waits for takeover", lease("shard-1", -time.Minute), unlisted, 3 * time.Hour},
		{"expired, stream not listed yet", lease("shard-gone", -time.Minute), nil, 3 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := peersLag([]dynamo.Lease{tt.lease}, "a", now, tt.unlisted); got != tt.want {
				t.Fatalf("lag %s, want %s", got, tt.want)
			}
		})
	}
}

// settledBefore publishes the reader's frontier only while nothing it
// handed on is unsettled; otherwise the last settled record's creation
// time, which stays put while a batch is retried.
func TestSettledBefore(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) int64 { return t0.Add(d).UnixNano() }
	tests := []struct {
		name                               string
		readTo, handed, settled, settledTo int64
		want                               time.Time
	}{
		{"nothing read yet", 0, 0, 0, 0, time.Time{}},
		{"caught up, nothing in the pipeline", at(time.Minute), 10, 10, at(0), t0.Add(time.Minute)},
		{"records in the pipeline", at(time.Minute), 12, 10, at(0), t0},
		{"first batch not settled yet", at(time.Minute), 3, 0, 0, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w shardWork
			w.readTo.Store(tt.readTo)
			w.handed.Store(tt.handed)
			w.settled.Store(tt.settled)
			w.settledTo.Store(tt.settledTo)
			if got := w.settledBefore(); !got.Equal(tt.want) {
				t.Fatalf("settledBefore %s, want %s", got, tt.want)
			}
		})
	}
}
