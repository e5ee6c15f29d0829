package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

// A batch is marked in transactions only when it was delivered before the
// marks of the batch ahead of it landed (it waited for them: marking is
// behind), and never with MarkBatchSize 1; otherwise each event is one
// UpdateItem.
func TestSettleMarksInTransactionsWhileBehind(t *testing.T) {
	for _, tt := range []struct {
		name string
		// secondLate keeps the second batch being POSTed until the first
		// one's marks landed.
		secondLate    bool
		markBatch     int
		marked, inTxn int
	}{
		{name: "the second batch waited for the first one's marks", markBatch: 25, marked: 3, inTxn: 3},
		{name: "transactions off", markBatch: 1, marked: 6},
		{name: "the second batch was still being POSTed when the first one's marks landed", secondLate: true, markBatch: 25, marked: 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := newStateDB()
			r, err := New(Config{SinkURL: "http://127.0.0.1:1/rows", MarkBatchSize: tt.markBatch, Logger: quietLogger()}, db, nil, acceptSink{})
			if err != nil {
				t.Fatal(err)
			}
			batch := func(b int) *flight {
				f := &flight{done: make(chan struct{})}
				for i := range 3 {
					f.recs = append(f.recs, record{eventID: fmt.Sprintf("b%d-e%d", b, i), row: []byte(`{}`)})
				}
				return f
			}
			queue := make(chan *flight, 2)
			first, second := batch(0), batch(1)
			close(first.done)
			queue <- first
			queue <- second
			close(queue)
			if !tt.secondLate {
				close(second.done)
			}
			settled := make(chan error, 1)
			go func() { settled <- r.settleAll(t.Context(), "arn", queue) }()
			if tt.secondLate {
				// The second batch is taken once the first is settled.
				for deadline := time.Now().Add(5 * time.Second); len(queue) > 0; {
					if time.Now().After(deadline) {
						t.Fatal("the second batch was not taken within 5s")
					}
					time.Sleep(time.Millisecond)
				}
				close(second.done)
			}
			if err := <-settled; err != nil {
				t.Fatalf("settle: %v", err)
			}
			db.mu.Lock()
			defer db.mu.Unlock()
			if db.marked != tt.marked || db.markedInTxn != tt.inTxn {
				t.Errorf("UpdateItems %d, events in transactions %d; want %d, %d", db.marked, db.markedInTxn, tt.marked, tt.inTxn)
			}
			if got, st := testutil.ToFloat64(r.m.markedInTransactions), r.Stats().MarkedInTransactions; got != float64(tt.inTxn) || st != int64(tt.inTxn) {
				t.Errorf("marked_in_transactions_total %v, Stats %d; want %d", got, st, tt.inTxn)
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
