package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// stateDB is a DB whose state table refuses every write to the shards in
// lostShards (another owner took their leases) and records the
// checkpoints of the others; outbox writes succeed.
type stateDB struct {
	lostShards map[string]bool
	mu         sync.Mutex
	refused    map[string]int
	cps        map[string][]string
	// outbox marks: one UpdateItem each, or the items of a transaction
	marked, markedInTxn int
	// markDelay is how long an outbox mark takes.
	markDelay time.Duration
}

func newStateDB(lost ...string) *stateDB {
	db := &stateDB{lostShards: map[string]bool{}, refused: map[string]int{}, cps: map[string][]string{}}
	for _, id := range lost {
		db.lostShards[id] = true
	}
	return db
}

func (*stateDB) DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	return nil, errors.New("not faked")
}

func (*stateDB) Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return &dynamodb.QueryOutput{}, nil
}

func (db *stateDB) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	shard, ok := in.Key["shard_id"].(*types.AttributeValueMemberS)
	if !ok {
		time.Sleep(db.markDelay)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if !ok {
		db.marked++
		return &dynamodb.UpdateItemOutput{}, nil // an outbox mark
	}
	if db.lostShards[shard.Value] {
		db.refused[shard.Value]++
		return nil, &types.ConditionalCheckFailedException{Message: aws.String("owner changed")}
	}
	if cp, ok := in.ExpressionAttributeValues[":cp"].(*types.AttributeValueMemberS); ok {
		db.cps[shard.Value] = append(db.cps[shard.Value], cp.Value)
	}
	return &dynamodb.UpdateItemOutput{}, nil
}

// TransactWriteItems accepts outbox marks.
func (db *stateDB) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	time.Sleep(db.markDelay)
	db.mu.Lock()
	defer db.mu.Unlock()
	db.markedInTxn += len(in.TransactItems)
	return &dynamodb.TransactWriteItemsOutput{}, nil
}

type acceptSink struct{}

func (acceptSink) Send(context.Context, []byte, string) error { return nil }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A shard whose lease another relay took must not hold up the batches of
// the other shards behind it: its checkpoint is given up after one refusal,
// its reader stops, and the pipeline drains and returns when in closes.
func TestPipelineGivesUpAShardWhoseLeaseWasLost(t *testing.T) {
	db := newStateDB("A")
	r, err := New(Config{
		SinkURL: "http://127.0.0.1:1/rows", BatchSize: 1, BatchWindow: time.Millisecond,
		RetryBase: time.Millisecond, RetryMax: 10 * time.Millisecond, Logger: quietLogger(),
	}, db, nil, acceptSink{})
	if err != nil {
		t.Fatal(err)
	}
	readerCtx, stopReader := context.WithCancel(t.Context())
	defer stopReader()
	a := &shardWork{id: "A", cancel: stopReader}
	b := &shardWork{id: "B"}

	// One row per batch (BatchSize 1), so A's second checkpoint comes in a
	// later batch than its refused first one.
	in := make(chan record, 4)
	for i, rec := range []struct {
		w   *shardWork
		seq string
	}{{a, "100"}, {b, "200"}, {a, "101"}, {b, "201"}} {
		id := fmt.Sprintf("e%d", i)
		in <- record{shard: rec.w, seq: rec.seq, eventID: id, row: []byte(`{"event_id":"` + id + `"}`)}
	}
	close(in)
	done := make(chan error, 1)
	go func() { done <- r.pipeline(t.Context(), "arn", in) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("pipeline: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pipeline still settling 5s after its input closed: a lost lease stalls every shard")
	}

	db.mu.Lock()
	defer db.mu.Unlock()
	if got := db.cps["B"]; len(got) != 2 || got[1] != "201" {
		t.Errorf("shard B checkpoints %v, want [200 201]", got)
	}
	if n := db.refused["A"]; n != 1 {
		t.Errorf("shard A checkpoint tried %d times, want 1 (a lost lease is final)", n)
	}
	if !a.lost.Load() || !a.stopped.Load() || readerCtx.Err() == nil {
		t.Errorf("shard A lost=%v stopped=%v reader cancelled=%v, want all true", a.lost.Load(), a.stopped.Load(), readerCtx.Err() != nil)
	}
	if b.lost.Load() || b.stopped.Load() {
		t.Error("shard B was given up although its lease is ours")
	}
}

// How far behind marking is, the batch after each one tells: still being
// POSTed when the marks landed (caught up), or delivered and waiting for
// them with room in flight for more (behind). Neither widens marking,
// nor takes it to transactions: only a batcher held up does (far behind,
// TestPipelineMarksFarBehindTwiceAsWide's). A batch with nothing to POST
// is done at once and says nothing.
func TestSettlePacesMarking(t *testing.T) {
	const (
		waiting = iota // delivered before the marks ahead of it landed
		late           // still being POSTed when they landed
		nothing        // no row to POST (MODIFY records of earlier marks)
	)
	for _, tt := range []struct {
		name                       string
		markConcurrency, markBatch int
		// next is, for each batch after the first, how it was delivered.
		next           []int
		updates, inTxn int
		// width is the last batch's.
		width int
	}{
		{name: "behind: the same pace", markConcurrency: 4, markBatch: 25, next: []int{waiting, waiting}, updates: 9, width: 1},
		{name: "behind at the widest: no transactions", markConcurrency: 1, markBatch: 25, next: []int{waiting, waiting}, updates: 9, width: 1},
		{name: "caught up: one at a time", markConcurrency: 4, markBatch: 25, next: []int{waiting, late}, updates: 9, width: 1},
		{name: "transactions off", markConcurrency: 1, markBatch: 1, next: []int{waiting}, updates: 6, width: 1},
		{name: "a batch with nothing to POST says nothing", markConcurrency: 4, markBatch: 25, next: []int{nothing, waiting}, updates: 6, width: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := newStateDB()
			r, err := New(Config{SinkURL: "http://127.0.0.1:1/rows", MarkConcurrency: tt.markConcurrency, MarkBatchSize: tt.markBatch, Logger: quietLogger()}, db, nil, acceptSink{})
			if err != nil {
				t.Fatal(err)
			}
			flights := make([]*flight, len(tt.next)+1)
			// Room for all of them: the batcher is never held up, so no
			// batch finds marking far behind.
			queue := make(chan *flight, len(flights)+1)
			for b := range flights {
				f := &flight{done: make(chan struct{})}
				for i := range 3 {
					rec := record{eventID: fmt.Sprintf("b%d-e%d", b, i), row: []byte(`{}`)}
					if b > 0 && tt.next[b-1] == nothing {
						rec = record{}
					}
					f.recs = append(f.recs, rec)
				}
				f.send = sendable(f.recs)
				if b == 0 || tt.next[b-1] != late {
					close(f.done)
				}
				flights[b] = f
				queue <- f
			}
			close(queue)
			settled := make(chan error, 1)
			go func() { settled <- r.settleAll(t.Context(), "arn", queue) }()
			for b := 1; b < len(flights); b++ {
				if tt.next[b-1] != late {
					continue
				}
				// The batch is taken once the one ahead of it is settled.
				for deadline := time.Now().Add(5 * time.Second); len(queue) > len(flights)-1-b; {
					if time.Now().After(deadline) {
						t.Fatalf("batch %d was not taken within 5s", b)
					}
					time.Sleep(time.Millisecond)
				}
				close(flights[b].done)
			}
			if err := <-settled; err != nil {
				t.Fatalf("settle: %v", err)
			}
			db.mu.Lock()
			defer db.mu.Unlock()
			if db.marked != tt.updates || db.markedInTxn != tt.inTxn {
				t.Errorf("UpdateItems %d, events in transactions %d; want %d, %d", db.marked, db.markedInTxn, tt.updates, tt.inTxn)
			}
			if got, st := testutil.ToFloat64(r.m.markedInTransactions), r.Stats().MarkedInTransactions; got != float64(tt.inTxn) || st != int64(tt.inTxn) {
				t.Errorf("marked_in_transactions_total %v, Stats %d; want %d", got, st, tt.inTxn)
			}
			if got := testutil.ToFloat64(r.m.markWidth); got != float64(tt.width) {
				t.Errorf("marking_width %v, want %d", got, tt.width)
			}
		})
	}
}

// A backlog read faster than it can be marked holds the batcher up (every
// batch it may have in flight is delivered and waits): marking is far
// behind and doubles its width for each batch, so it marks in
// transactions from the sixth batch on. Widening one write per batch
// would reach MarkConcurrency (16) only at the seventeenth.
func TestPipelineMarksFarBehindTwiceAsWide(t *testing.T) {
	db := newStateDB()
	db.markDelay = 10 * time.Millisecond
	r, err := New(Config{SinkURL: "http://127.0.0.1:1/rows", BatchSize: 10, Logger: quietLogger()}, db, nil, acceptSink{})
	if err != nil {
		t.Fatal(err)
	}
	in := make(chan record, 200)
	for i := range cap(in) {
		id := fmt.Sprintf("e%03d", i)
		in <- record{eventID: id, row: []byte(`{"event_id":"` + id + `"}`)}
	}
	close(in)
	if err := r.pipeline(t.Context(), "arn", in); err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	// Batches 1-5 mark 1, 2, 4, 8 and 16 at a time, 6-20 in transactions
	// (150 events); one wider per batch would leave at most 40 for them.
	if db.marked+db.markedInTxn != 200 || db.markedInTxn < 120 {
		t.Errorf("UpdateItems %d, events in transactions %d; want 200 in all, about 150 in transactions", db.marked, db.markedInTxn)
	}
}

// Marking starts one write at a time and keeps its pace for each batch
// that finds it behind; it doubles for each batch that finds it far
// behind (the batcher is held up), up to MarkConcurrency, and goes to
// transactions only when far behind at that width; it comes back down
// (out of transactions first, then by half) for each batch that finds it
// caught up. With one batch in flight it stays at MarkConcurrency.
func TestNextPace(t *testing.T) {
	walk := func(inFlight int, lags ...lag) []pace {
		r, err := New(Config{SinkURL: "http://127.0.0.1:1/rows", MarkConcurrency: 8, MarkBatchSize: 25, BatchesInFlight: inFlight, Logger: quietLogger()},
			newStateDB(), nil, acceptSink{})
		if err != nil {
			t.Fatal(err)
		}
		p := r.firstPace()
		seen := []pace{p}
		for _, l := range lags {
			p = r.nextPace(p, l)
			seen = append(seen, p)
		}
		return seen
	}
	const c, b, f = caughtUp, behind, farBehind
	for _, tt := range []struct {
		name     string
		inFlight int
		lags     []lag
		want     []pace
	}{
		{"caught up", 4, []lag{c, c}, []pace{{1, 1}, {1, 1}, {1, 1}}},
		{"behind: the same pace", 4, []lag{b, b, b}, []pace{{1, 1}, {1, 1}, {1, 1}, {1, 1}}},
		{"far behind, then behind: the width holds", 4, []lag{f, f, b, b}, []pace{{1, 1}, {2, 1}, {4, 1}, {4, 1}, {4, 1}}},
		{"behind in transactions: they go on", 4, []lag{f, f, f, f, b}, []pace{{1, 1}, {2, 1}, {4, 1}, {8, 1}, {8, 25}, {8, 25}}},
		{"far behind: twice as wide, then transactions", 4, []lag{f, f, f, f, f},
			[]pace{{1, 1}, {2, 1}, {4, 1}, {8, 1}, {8, 25}, {8, 25}}},
		{"caught up again: out of transactions, then half as wide", 4, []lag{f, f, f, f, c, c, c, c, c},
			[]pace{{1, 1}, {2, 1}, {4, 1}, {8, 1}, {8, 25}, {8, 1}, {4, 1}, {2, 1}, {1, 1}, {1, 1}}},
		{"now and then", 4, []lag{b, f, c, f, f, b, c},
			[]pace{{1, 1}, {1, 1}, {2, 1}, {1, 1}, {2, 1}, {4, 1}, {4, 1}, {2, 1}}},
		{"one batch in flight", 1, []lag{c, f, b}, []pace{{8, 1}, {8, 1}, {8, 1}, {8, 1}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := walk(tt.inFlight, tt.lags...); !slices.Equal(got, tt.want) {
				t.Errorf("paces %v, want %v", got, tt.want)
			}
		})
	}
}

// A batch that fills neither its rows nor its bytes is cut when the
// linger window, started by its first record, runs out: not before, and
// not much after; later records start a new window.
func TestBatchLingerFlush(t *testing.T) {
	const window = 150 * time.Millisecond
	r, err := New(Config{SinkURL: "http://127.0.0.1:1/rows", BatchSize: 100, BatchWindow: window, Logger: quietLogger()},
		newStateDB(), nil, acceptSink{})
	if err != nil {
		t.Fatal(err)
	}
	type cut struct {
		at   time.Time
		rows int
	}
	cuts := make(chan cut, 4)
	in := make(chan record)
	done := make(chan error, 1)
	go func() {
		done <- r.batch(t.Context(), in, func(recs []record) error {
			cuts <- cut{time.Now(), len(recs)}
			return nil
		})
	}()
	row := func(id string) record { return record{eventID: id, row: []byte(`{"event_id":"` + id + `"}`)} }
	next := func() cut {
		t.Helper()
		select {
		case c := <-cuts:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no batch cut within 5s of its first record")
			return cut{}
		}
	}

	start := time.Now()
	in <- row("a")
	time.Sleep(window / 3)
	in <- row("b") // joins the open batch; its window does not restart
	c := next()
	if waited := c.at.Sub(start); c.rows != 2 || waited < window || waited > window+time.Second {
		t.Fatalf("first batch: %d rows after %s, want 2 rows after %s (+ scheduling)", c.rows, waited, window)
	}
	start = time.Now()
	in <- row("c")
	c = next()
	if waited := c.at.Sub(start); c.rows != 1 || waited < window {
		t.Fatalf("second batch: %d rows after %s, want 1 row after >= %s", c.rows, waited, window)
	}
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-cuts:
		t.Fatalf("an empty batch was cut at the end: %+v", c)
	default:
	}
}
