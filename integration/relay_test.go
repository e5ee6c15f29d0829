package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddboutbox/ddboutbox/cmd/analytics-sink/endpoint"
	"github.com/ddboutbox/ddboutbox/dynamo"
	"github.com/ddboutbox/ddboutbox/outbox"
	"github.com/ddboutbox/ddboutbox/relay"
)

// A relay stopped with SIGTERM in the middle of a stream of commits exits 0
// after flushing; restarted, it delivers the rest, and nothing twice.
func TestRelaySIGTERMRestartDeliversAllWithoutDuplicates(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	const total = 1000

	start := func() *exec.Cmd {
		cmd := exec.Command(relayBin,
			"-dynamodb-endpoint", ddbEndpoint,
			"-outbox-table", e.tables.Outbox, "-state-table", e.tables.State,
			"-sink-url", e.sinkURL, "-batch-size", "50", "-batch-window", "100ms",
			"-poll-interval", "50ms", "-shard-sync-interval", "1s", "-owner", "sigterm-test", "-metrics-addr", "127.0.0.1:0")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start relay: %v", err)
		}
		return cmd
	}

	// Commits keep flowing while the relay stops and starts again.
	var ids []string
	var commitErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 10 {
			more, err := e.tryCommitEvents(total/10, 4)
			if err != nil {
				commitErr = err
				return
			}
			ids = append(ids, more...)
			time.Sleep(150 * time.Millisecond)
		}
	}()

	first := start()
	waitFor(t, 60*time.Second, func() (bool, string) {
		n := e.sink.Stats().Rows
		return n >= 200, fmt.Sprintf("%d rows before SIGTERM", n)
	})
	if err := first.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("sigterm: %v", err)
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("relay after SIGTERM: %v (want exit 0)", err)
	}
	stoppedAt := e.sink.Stats().Rows
	t.Logf("relay stopped after %d rows", stoppedAt)

	second := start()
	defer func() {
		_ = second.Process.Signal(syscall.SIGTERM)
		if err := second.Wait(); err != nil {
			t.Errorf("second relay after SIGTERM: %v", err)
		}
	}()
	wg.Wait()
	if commitErr != nil {
		t.Fatal(commitErr)
	}
	if len(ids) != total {
		t.Fatalf("committed %d events, want %d", len(ids), total)
	}
	e.waitDelivered(ids, 90*time.Second)
	e.waitMarked(total, 30*time.Second)
	st := e.sink.Stats()
	if st.DistinctEventIDs != total || st.Duplicates != 0 {
		t.Fatalf("endpoint stats %+v, want %d distinct and 0 duplicates", st, total)
	}
	if stoppedAt >= total {
		t.Fatalf("relay was stopped after all %d rows; the restart proved nothing", stoppedAt)
	}
}

// With batch-size 100 every POST carries at most 100 rows, and a lone
// event is not held back longer than the linger window.
func TestBatchCapsAndLinger(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	cfg := e.relayConfig()
	cfg.BatchSize = 100
	cfg.BatchWindow = time.Second
	e.startRelay(cfg)

	ids := e.commitEvents(1000, 20)
	e.waitDelivered(ids, 60*time.Second)
	reqs := e.sink.Requests()
	for _, r := range reqs {
		if r.Rows > 100 {
			t.Fatalf("a POST carried %d rows, batch-size is 100", r.Rows)
		}
	}
	if len(reqs) < 10 {
		t.Fatalf("%d POSTs for 1000 events with batch-size 100; want at least 10", len(reqs))
	}
	e.waitMarked(1000, 30*time.Second)

	// The relay is idle now: a lone event waits for the window, not for
	// a full batch.
	before := len(e.sink.Requests())
	lone := e.commitEvents(1, 1)
	committed := time.Now() // when the caller saw the commit land
	e.waitDelivered(lone, 10*time.Second)
	reqs = e.sink.Requests()
	var got time.Time
	for _, r := range reqs[before:] {
		if r.Status/100 == 2 {
			got = r.At
			break
		}
	}
	if lag := got.Sub(committed); lag > cfg.BatchWindow+time.Second {
		t.Fatalf("lone event arrived %s after commit; want <= batch-window + 1s = %s", lag, cfg.BatchWindow+time.Second)
	}
}

// MODIFY records (the relay's own marks, or any update) and REMOVE records
// (TTL expiry, deletes) never become rows; neither does an item inserted
// already out of PENDING.
func TestModifyAndRemoveProduceNoRows(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	r, _ := e.startRelay(e.relayConfig())
	ctx := context.Background()

	first := e.commitEvents(1, 1)
	e.waitDelivered(first, 30*time.Second)
	e.waitMarked(1, 30*time.Second) // the mark itself is a MODIFY record
	key := map[string]types.AttributeValue{outbox.AttrEventID: &types.AttributeValueMemberS{Value: first[0]}}
	if _, err := clients.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(e.tables.Outbox), Key: key,
		UpdateExpression:          aws.String("SET note = :n"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":n": &types.AttributeValueMemberS{Value: "touched"}},
	}); err != nil {
		t.Fatalf("update: %v", err)
	}
	if _, err := clients.DB.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(e.tables.Outbox), Key: key}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	done, err := outbox.NewEvent("TestEvent", "Test", "already-done", map[string]any{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	item, err := outbox.Item(done)
	if err != nil {
		t.Fatal(err)
	}
	item[outbox.AttrStatus] = &types.AttributeValueMemberS{Value: string(outbox.StatusDelivered)}
	if _, err := clients.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(e.tables.Outbox), Item: item}); err != nil {
		t.Fatalf("put: %v", err)
	}

	// A later event in the same stream is a barrier: once it arrived, the
	// records before it were processed.
	barrier := e.commitEvents(1, 1)
	e.waitDelivered(barrier, 30*time.Second)

	ids := e.sink.EventIDs()
	if len(ids) != 2 || ids[first[0]] != 1 || ids[barrier[0]] != 1 {
		t.Fatalf("endpoint got %v; want exactly %s and %s once each", ids, first[0], barrier[0])
	}
	if s := r.Stats(); s.Skipped < 4 {
		t.Fatalf("relay skipped %d records; want >= 4 (mark, update, delete, insert of a DELIVERED item)", s.Skipped)
	}
}

// lossyDB is the relay's DynamoDB behind a connection that drops answers:
// the first loseUpdates UpdateItems on table, and the first
// loseTransactions TransactWriteItems, are applied and then answered with
// an error, as when a connection resets after DynamoDB applied a request.
type lossyDB struct {
	relay.DB
	table                         string
	loseUpdates, loseTransactions atomic.Int64
}

var errConnReset = errors.New("read tcp: connection reset by peer")

func (d *lossyDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	out, err := d.DB.UpdateItem(ctx, in, optFns...)
	if err == nil && aws.ToString(in.TableName) == d.table && d.loseUpdates.Add(-1) >= 0 {
		return nil, errConnReset
	}
	return out, err
}

func (d *lossyDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	out, err := d.DB.TransactWriteItems(ctx, in, optFns...)
	if err == nil && d.loseTransactions.Add(-1) >= 0 {
		return nil, errConnReset
	}
	return out, err
}

// A mark whose answer was lost is retried, and its retry finds the event
// already DELIVERED by itself: that is not a duplicate (DynamoDB Local
// returns the item with the failed condition, and its delivered_at is the
// mark's own).
func TestMarksWhoseAnswerWasLostAreNotDuplicates(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	ids := e.commitEvents(50, 4)
	db := &lossyDB{DB: e.cl.DB, table: e.tables.Outbox}
	db.loseUpdates.Store(5)
	r, _ := e.startRelayOn(e.relayConfig(), db)
	e.waitDelivered(ids, 30*time.Second)
	e.waitMarked(len(ids), 30*time.Second)
	if n := db.loseUpdates.Load(); n > 0 {
		t.Fatalf("%d answers still to lose: the relay made fewer marks than expected", n)
	}
	if st := r.Stats(); st.Delivered != int64(len(ids)) || st.Duplicates != 0 {
		t.Fatalf("relay %+v: want %d delivered and no duplicates", st, len(ids))
	}
}

// A relay whose marking is far behind (small batches, all read at once,
// and an endpoint that answers at once) marks in transactions on DynamoDB
// Local: the events another writer settled first come back among the
// cancellation reasons and count as duplicates, an item with no room for
// the mark is left PENDING without holding the rest up, and every other
// event ends DELIVERED.
func TestMarksInTransactionsWhileBehind(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	ids := e.commitEvents(100, 4)

	// An item written without outbox.EventHeadroom (not by outbox.Writer):
	// DynamoDB cannot add delivered_at and expires_at to it. It is in the
	// middle of the stream, so its batch waits for the one ahead of it.
	huge, err := outbox.NewEvent("TestEvent", "Test", "huge", map[string]any{"n": -1})
	if err != nil {
		t.Fatal(err)
	}
	item, err := outbox.Item(huge)
	if err != nil {
		t.Fatal(err)
	}
	item["pad"] = &types.AttributeValueMemberS{}
	item["pad"] = &types.AttributeValueMemberS{Value: strings.Repeat("x", outbox.MaxItemBytes-outbox.ItemSize(item)-16)}
	if _, err := clients.DB.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(e.tables.Outbox), Item: item}); err != nil {
		t.Fatalf("put: %v", err)
	}
	ids = append(ids, e.commitEvents(100, 4)...)
	for i, id := range ids {
		switch {
		case i%10 == 3:
			e.adminDeliver(id, time.Now())
		case i%100 == 7:
			e.adminFail(id, "failed by an operator")
		}
	}

	cfg := e.relayConfig()
	// The backlog, read at once, holds the batcher up: marking is far
	// behind, widens to 2 writes, and goes to transactions for the next
	// batch.
	cfg.BatchSize, cfg.MarkConcurrency, cfg.MarkBatchSize = 10, 2, 25
	// The answers to two marking transactions are lost after they landed:
	// their retries find the events marked by themselves, which must not
	// count as duplicates (DynamoDB returns each item with its cancellation
	// reason, and its delivered_at is the transaction's own).
	db := &lossyDB{DB: e.cl.DB}
	db.loseTransactions.Store(2)
	r, _ := e.startRelayOn(cfg, db)
	e.waitDelivered(append(slices.Clone(ids), huge.ID), 60*time.Second)
	waitFor(t, 30*time.Second, func() (bool, string) {
		st := r.Stats()
		return st.Delivered+st.Duplicates >= 201, fmt.Sprintf("relay %+v, want 201 events settled", st)
	})
	// The relay counts what the endpoint took: the unmarkable event too.
	st := r.Stats()
	if st.Delivered != 179 || st.Duplicates != 22 {
		t.Errorf("relay delivered %d, duplicates %d; want 179 and 22 (20 DELIVERED and 2 FAILED before it ran)", st.Delivered, st.Duplicates)
	}
	// Which batches waited for marks depends on timing; which ones are
	// marked in transactions is TestSettlePacesMarking's.
	if st.MarkedInTransactions == 0 || db.loseTransactions.Load() > 0 {
		t.Errorf("no event marked in a transaction, or fewer than the 2 whose answers were lost: %+v", st)
	}
	if s := e.summary(); s.Delivered != 198 || s.Failed != 2 || s.Pending != 1 {
		t.Errorf("outbox %+v; want 198 DELIVERED, 2 FAILED, 1 PENDING (the item with no room for the mark)", s)
	}
	if st, _ := e.status(huge.ID); st != outbox.StatusPending {
		t.Errorf("the unmarkable event is %s, want PENDING", st)
	}
	t.Logf("relay %+v", st)
}

// A transaction whose business write's condition fails writes neither the
// business item nor the event, and says which action failed.
func TestConditionFailureWritesNeither(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	ctx := context.Background()
	booking := func(id string) types.TransactWriteItem {
		return types.TransactWriteItem{Put: &types.Put{
			TableName:           aws.String(e.tables.Bookings),
			Item:                map[string]types.AttributeValue{"booking_id": &types.AttributeValueMemberS{Value: id}},
			ConditionExpression: aws.String("attribute_not_exists(booking_id)"),
		}}
	}
	ev1, _ := outbox.NewEvent("BookingReserved", "Booking", "b-1", map[string]any{"booking_id": "b-1"})
	if err := e.writer.Commit(ctx, outbox.Tx{Writes: []types.TransactWriteItem{booking("b-1")}, Events: []outbox.Event{ev1}}); err != nil {
		t.Fatalf("first commit: %v", err)
	}
	ev2, _ := outbox.NewEvent("BookingReserved", "Booking", "b-1", map[string]any{"booking_id": "b-1", "again": true})
	err := e.writer.Commit(ctx, outbox.Tx{Writes: []types.TransactWriteItem{booking("b-1")}, Events: []outbox.Event{ev2}})
	var cf *outbox.ConditionFailedError
	if !errors.As(err, &cf) {
		t.Fatalf("duplicate booking: got %v, want *outbox.ConditionFailedError", err)
	}
	if cf.Index != 0 || cf.Table != e.tables.Bookings || cf.EventID != "" {
		t.Fatalf("condition failure %+v; want action 0 on %s", cf, e.tables.Bookings)
	}
	if item := getItem(t, e.tables.Outbox, outbox.AttrEventID, ev2.ID); item != nil {
		t.Fatalf("event of the failed transaction was written: %v", item)
	}
	if s := e.summary(); s.Pending != 1 {
		t.Fatalf("outbox %+v; want only the first event", s)
	}
}

// A Commit retried with the same idempotency token and contents succeeds
// and writes one event; the same token with other contents is refused.
func TestIdempotencyTokenRetryWritesOneEvent(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	ctx := context.Background()
	ev, _ := outbox.NewEvent("BookingReserved", "Booking", "b-2", map[string]any{"booking_id": "b-2"})
	tx := outbox.Tx{Events: []outbox.Event{ev}, IdempotencyToken: "retry-token-0001"}
	for i := range 2 {
		if err := e.writer.Commit(ctx, tx); err != nil {
			t.Fatalf("commit %d: %v", i+1, err)
		}
	}
	if s := e.summary(); s.Pending != 1 {
		t.Fatalf("outbox %+v after a retried commit; want 1 event", s)
	}
	other, _ := outbox.NewEvent("BookingReserved", "Booking", "b-3", map[string]any{"booking_id": "b-3"})
	err := e.writer.Commit(ctx, outbox.Tx{Events: []outbox.Event{other}, IdempotencyToken: tx.IdempotencyToken})
	if !errors.Is(err, outbox.ErrIdempotencyMismatch) {
		t.Fatalf("token reused with other contents: got %v, want ErrIdempotencyMismatch", err)
	}
	if !strings.Contains(err.Error(), "idempotency") {
		t.Fatalf("error %q does not say what went wrong", err)
	}
}

// Batches are POSTed several at a time but settled in the order they were
// cut: while the first batch keeps failing, later batches reach the
// endpoint, yet nothing is marked and no checkpoint is written, because
// every later record follows a PENDING one in the shard. Once the first
// batch gets through, everything is marked and checkpointed.
func TestLaterBatchesWaitForAnEarlierOne(t *testing.T) {
	const total = 60
	var first atomic.Value // the first event's id, once committed
	var blocked atomic.Bool
	blocked.Store(true)
	e := newEnv(t, endpoint.Options{Reject: func(rows []endpoint.Row) (int, time.Duration) {
		for _, r := range rows {
			if id, _ := first.Load().(string); blocked.Load() && r.EventID == id {
				return http.StatusServiceUnavailable, 0
			}
		}
		return 0, 0
	}})
	ids := e.commitEvents(1, 1)
	first.Store(ids[0])
	ids = append(ids, e.commitEvents(total-1, 1)...)

	cfg := e.relayConfig()
	cfg.BatchSize, cfg.BatchesInFlight = 10, 4
	e.startRelay(cfg)
	// Three later batches get through while the first is refused.
	waitFor(t, time.Minute, func() (bool, string) {
		n := e.sink.Stats().Rows
		return n >= 30, fmt.Sprintf("%d rows at the endpoint while the first batch is refused", n)
	})
	if s := e.summary(); s.Delivered != 0 {
		t.Fatalf("%d events marked DELIVERED before the first batch was delivered, want 0", s.Delivered)
	}
	arn, err := dynamo.StreamARN(context.Background(), clients.DB, e.tables.Outbox)
	if err != nil {
		t.Fatalf("stream arn: %v", err)
	}
	leases := &dynamo.Leases{DB: clients.DB, Table: e.tables.State}
	list, err := leases.List(context.Background(), arn)
	if err != nil {
		t.Fatalf("list leases: %v", err)
	}
	for _, l := range list {
		if l.Checkpoint != "" {
			t.Fatalf("shard %s checkpointed at %s while its first batch is undelivered", l.ShardID, l.Checkpoint)
		}
	}
	blocked.Store(false)
	e.waitDelivered(ids, time.Minute)
	e.waitMarked(total, time.Minute)
	waitFor(t, 30*time.Second, func() (bool, string) {
		list, err := leases.List(context.Background(), arn)
		if err != nil || len(list) == 0 {
			return false, fmt.Sprintf("leases: %v", err)
		}
		for _, l := range list {
			if l.Checkpoint == "" {
				return false, "shard " + l.ShardID + " not checkpointed"
			}
		}
		return true, ""
	})
}

// A stream disabled and re-enabled gets a new ARN: the relay settles the
// old stream and follows the new one by itself. The sweeper is held off
// (an hour), so only the stream path can deliver the later events.
func TestRelayFollowsAReEnabledStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, endpoint.Options{})
	cfg := e.relayConfig()
	cfg.SweepAfter = time.Hour
	e.startRelay(cfg)
	before := e.commitEvents(50, 2)
	e.waitDelivered(before, 30*time.Second)

	oldARN, err := dynamo.StreamARN(t.Context(), e.cl.DB, e.tables.Outbox)
	if err != nil {
		t.Fatal(err)
	}
	e.setStream(false)
	e.setStream(true)
	newARN, err := dynamo.StreamARN(t.Context(), e.cl.DB, e.tables.Outbox)
	if err != nil || newARN == oldARN {
		t.Fatalf("stream after re-enabling: %q, %v; want a new ARN (old %q)", newARN, err, oldARN)
	}

	after := e.commitEvents(50, 2)
	e.waitDelivered(after, 30*time.Second)
	e.waitMarked(len(before)+len(after), 30*time.Second)
	e.reportDuplicates()
}

// A relay started on an outbox table whose stream is disabled exits 1 at
// once, saying why, instead of starting and leaving every new event to the
// sweeper.
func TestRelayExitsOnADisabledStream(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	e.setStream(false)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, relayBin, "-dynamodb-endpoint", ddbEndpoint,
		"-outbox-table", e.tables.Outbox, "-state-table", e.tables.State, "-sink-url", e.sinkURL, "-metrics-addr=").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "stream disabled") {
		t.Fatalf("relay on a disabled stream: %v; want exit 1 saying the stream is disabled:\n%s", err, out)
	}
}

// Another relay takes the shard's lease while a batch is being retried:
// the batch is still delivered and marked, its checkpoint is given up (it
// could only fail from then on), and the relay still stops cleanly instead
// of retrying that checkpoint until its shutdown timeout.
func TestRelayGivesUpAShardTakenOverMidBatch(t *testing.T) {
	t.Parallel()
	var outage phase
	outage.startFor(time.Hour)
	e := newEnv(t, unavailableDuring(&outage))
	cfg := e.relayConfig()
	cfg.ShutdownTimeout = 10 * time.Second
	_, stop := e.startRelay(cfg)
	ids := e.commitEvents(20, 2)
	waitFor(t, 30*time.Second, func() (bool, string) {
		return e.sink.Stats().Rejected > 0, "the relay sent nothing"
	})

	arn, err := dynamo.StreamARN(t.Context(), e.cl.DB, e.tables.Outbox)
	if err != nil {
		t.Fatal(err)
	}
	// The thief's clock runs an hour ahead, so the relay's lease looks
	// expired to it: a takeover as after a missed renewal.
	thief := &dynamo.Leases{DB: e.cl.DB, Table: e.tables.State, Owner: "thief", Duration: 2 * time.Hour,
		Now: func() time.Time { return time.Now().Add(time.Hour) }}
	leases, err := thief.List(t.Context(), arn)
	if err != nil || len(leases) == 0 {
		t.Fatalf("leases: %+v, %v", leases, err)
	}
	for _, l := range leases {
		if _, err := thief.Acquire(t.Context(), arn, dynamo.Shard{ID: l.ShardID}); err != nil {
			t.Fatalf("take over %s: %v", l.ShardID, err)
		}
	}

	outage.startFor(0)
	e.waitDelivered(ids, 30*time.Second)
	e.waitMarked(len(ids), 30*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("relay stop after losing its lease: %v", err)
	}
	after, err := thief.List(t.Context(), arn)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range after {
		if l.Owner != "thief" || l.Checkpoint != "" {
			t.Errorf("lease %+v: want the thief's, with no checkpoint from the relay that lost it", l)
		}
	}
	e.reportDuplicates()
}

// Two relays started with one -owner (the hostname, by default) would
// share its leases and both send every event. The second waits, not
// ready, while the first runs, and takes over as soon as the first stops:
// every event arrives once.
func TestASecondRelayUnderTheSameOwnerWaitsForTheFirst(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	cfg := e.relayConfig()
	first, stopFirst := e.startRelay(cfg)
	waitFor(t, 30*time.Second, func() (bool, string) { err := first.Ready(); return err == nil, fmt.Sprint(err) })
	second, _ := e.startRelay(cfg)
	var inUse *dynamo.OwnerInUseError
	waitFor(t, 30*time.Second, func() (bool, string) {
		err := second.Ready()
		return errors.As(err, &inUse), fmt.Sprintf("second relay: %v, want waiting for the owner", err)
	})

	ids := e.commitEvents(100, 4)
	e.waitDelivered(ids, 60*time.Second)
	e.waitMarked(len(ids), 30*time.Second)
	if err := second.Ready(); !errors.As(err, &inUse) {
		t.Fatalf("second relay while the first runs: %v, want waiting for the owner", err)
	}
	if err := stopFirst(); err != nil {
		t.Fatalf("first relay: %v", err)
	}
	// Released on shutdown: no waiting for -lease-duration (30 s).
	waitFor(t, 5*time.Second, func() (bool, string) {
		err := second.Ready()
		return err == nil, fmt.Sprintf("second relay after the first stopped: %v", err)
	})
	more := e.commitEvents(50, 4)
	e.waitDelivered(more, 60*time.Second)
	e.waitMarked(len(ids)+len(more), 30*time.Second)
	if st := e.sink.Stats(); st.Duplicates != 0 || st.DistinctEventIDs != len(ids)+len(more) {
		t.Fatalf("endpoint stats %+v, want %d distinct events and no duplicates", st, len(ids)+len(more))
	}
	if a, b := first.Stats(), second.Stats(); a.Delivered != int64(len(ids)) || b.Delivered != int64(len(more)) {
		t.Fatalf("delivered by the first %d, by the second %d; want %d and %d", a.Delivered, b.Delivered, len(ids), len(more))
	}
}

// A relay whose owner another process took over (it was judged gone, or
// did not renew in time) stops by itself with ErrOwnerTaken, and leaves
// the new holder's hold alone.
func TestARelayWhoseOwnerIsTakenOverStops(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	cfg := e.relayConfig()
	cfg.LeaseDuration = 3 * time.Second // renewed every second
	done := e.runRelay(cfg)
	ids := e.commitEvents(20, 2)
	e.waitDelivered(ids, 60*time.Second)

	intruder := e.takeOverOwner(cfg.Owner)
	waitOwnerTaken(t, done, 15*time.Second)
	rows, err := intruder.Owners(t.Context())
	if err != nil || len(rows) != 1 || rows[0].Instance != "intruder" || rows[0].ExpiresAtMilli < time.Now().UnixMilli() {
		t.Fatalf("owner rows after the relay stopped: %+v, %v; want the intruder's live hold", rows, err)
	}
}

// The owner row of a relay that crashed on this host (no process has its
// pid any more) does not hold the restarted relay back until the hold
// lapses (an hour here): it takes over at once.
func TestARelayTakesOverTheOwnerOfAnEndedProcessAtOnce(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	cfg := e.relayConfig()
	cfg.LeaseDuration = time.Hour
	ended := exec.Command("true")
	if err := ended.Run(); err != nil {
		t.Fatal(err)
	}
	crashed := &dynamo.Leases{DB: e.cl.DB, Table: e.tables.State, Owner: cfg.Owner, Duration: time.Hour}
	holder := dynamo.ThisProcess("crashed") // this machine, host and pid namespace
	holder.PID = ended.Process.Pid
	if err := crashed.HoldOwner(t.Context(), holder, nil); err != nil {
		t.Fatal(err)
	}
	r, _ := e.startRelay(cfg)
	waitFor(t, 5*time.Second, func() (bool, string) { err := r.Ready(); return err == nil, fmt.Sprint(err) })
	ids := e.commitEvents(20, 2)
	e.waitDelivered(ids, 60*time.Second)
}
