package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddboutbox/ddboutbox/outbox"
)

// outboxTable answers marks as DynamoDB does at the boundary the marker
// sees: a conditional update lands on a PENDING item only, a transaction
// lands whole or is cancelled with one reason per item.
type outboxTable struct {
	mu     sync.Mutex
	status map[string]outbox.Status
	// invalid items are refused as too large to take the mark.
	invalid map[string]bool
	// conflicts is how many transactions naming an item are cancelled for
	// a conflict with another write before they may land.
	conflicts map[string]int
	// maxItems refuses a larger transaction as a whole, as DynamoDB does
	// when its items add up to more than 4 MB (0: no limit).
	maxItems int
	// noReasons cancels transactions of more than one item without
	// reasons, as an emulator might.
	noReasons bool
	// loseAnswers is how many writes that land answer with an error
	// instead, as when a connection drops after DynamoDB applied them.
	loseAnswers int
	// stamps is the time each mark wrote (":at"), which a failed
	// condition returns with the item when asked to (ALL_OLD).
	stamps map[string]string
	// what was called, for the assertions
	transactions []int // sizes of the transactions that landed
	updates      int   // UpdateItems that landed
}

func newOutboxTable(pending ...string) *outboxTable {
	db := &outboxTable{status: map[string]outbox.Status{}, invalid: map[string]bool{}, conflicts: map[string]int{}, stamps: map[string]string{}}
	for _, id := range pending {
		db.status[id] = outbox.StatusPending
	}
	return db
}

func (db *outboxTable) apply(u *types.Update) {
	s := u.ExpressionAttributeValues[":delivered"]
	if s == nil {
		s = u.ExpressionAttributeValues[":failed"]
	}
	db.status[eventID(u)] = outbox.Status(s.(*types.AttributeValueMemberS).Value)
	db.stamps[eventID(u)] = u.ExpressionAttributeValues[":at"].(*types.AttributeValueMemberS).Value
}

// old is the item as a failed condition returns it, with rv ALL_OLD.
func (db *outboxTable) old(id string, rv types.ReturnValuesOnConditionCheckFailure) map[string]types.AttributeValue {
	if rv != types.ReturnValuesOnConditionCheckFailureAllOld || db.status[id] == "" {
		return nil
	}
	stamp := outbox.AttrDeliveredAt
	if db.status[id] == outbox.StatusFailed {
		stamp = outbox.AttrFailedAt
	}
	return map[string]types.AttributeValue{
		outbox.AttrEventID: &types.AttributeValueMemberS{Value: id},
		outbox.AttrStatus:  &types.AttributeValueMemberS{Value: string(db.status[id])},
		stamp:              &types.AttributeValueMemberS{Value: db.stamps[id]},
	}
}

// answer is what a landed write returns: nothing, or a lost answer.
func (db *outboxTable) answer() error {
	if db.loseAnswers > 0 {
		db.loseAnswers--
		return errors.New("read: connection reset by peer")
	}
	return nil
}

func eventID(u *types.Update) string {
	return u.Key[outbox.AttrEventID].(*types.AttributeValueMemberS).Value
}

func (db *outboxTable) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	u := &types.Update{Key: in.Key, ExpressionAttributeValues: in.ExpressionAttributeValues}
	id := eventID(u)
	switch {
	case db.invalid[id]:
		return nil, apiError{code: "ValidationException"} // "Item size to update has exceeded the maximum allowed size"
	case db.status[id] != outbox.StatusPending:
		return nil, &types.ConditionalCheckFailedException{Message: aws.String("The conditional request failed"), Item: db.old(id, in.ReturnValuesOnConditionCheckFailure)}
	}
	db.apply(u)
	db.updates++
	return &dynamodb.UpdateItemOutput{}, db.answer()
}

func (db *outboxTable) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	n := len(in.TransactItems)
	seen := map[string]bool{}
	for _, it := range in.TransactItems {
		id := eventID(it.Update)
		if seen[id] {
			return nil, apiError{code: "ValidationException"} // "Transaction request cannot include multiple operations on one item"
		}
		seen[id] = true
	}
	if db.maxItems > 0 && n > db.maxItems {
		return nil, apiError{code: "ValidationException"} // "Transaction size has exceeded the maximum allowed size"
	}
	reasons := make([]types.CancellationReason, n)
	cancelled := false
	for i, it := range in.TransactItems {
		id, code := eventID(it.Update), "None"
		switch {
		case db.invalid[id]:
			code = "ValidationError"
		case db.status[id] != outbox.StatusPending:
			code = "ConditionalCheckFailed"
			reasons[i].Item = db.old(id, it.Update.ReturnValuesOnConditionCheckFailure)
		case db.conflicts[id] > 0:
			db.conflicts[id]--
			code = "TransactionConflict"
		}
		reasons[i].Code = aws.String(code)
		cancelled = cancelled || code != "None"
	}
	if cancelled && db.noReasons {
		reasons = nil
	}
	if cancelled {
		return nil, &types.TransactionCanceledException{Message: aws.String("Transaction cancelled"), CancellationReasons: reasons}
	}
	for _, it := range in.TransactItems {
		db.apply(it.Update)
	}
	db.transactions = append(db.transactions, n)
	return &dynamodb.TransactWriteItemsOutput{}, db.answer()
}

// unreachableDB fails every call, as DynamoDB does while it is down.
type unreachableDB struct{ calls atomic.Int64 }

func (db *unreachableDB) UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	db.calls.Add(1)
	return nil, errors.New("connection refused")
}

func (db *unreachableDB) TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	db.calls.Add(1)
	return nil, errors.New("connection refused")
}

func testMarker(db markAPI) (*marker, *[]string) {
	var mu sync.Mutex
	var unmarkable []string
	return &marker{
		db: db, table: "Outbox", now: time.Now,
		policy: backoff{base: time.Millisecond, max: time.Millisecond},
		onErr:  func(error) {},
		onUnmarkable: func(id string, _ error) {
			mu.Lock()
			defer mu.Unlock()
			unmarkable = append(unmarkable, id)
		},
	}, &unmarkable
}

func sum(ns []int) (total int) {
	for _, n := range ns {
		total += n
	}
	return total
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

// Delivered events are marked in transactions of up to the batch size,
// whatever DynamoDB cancels them for: every PENDING event ends DELIVERED,
// every event that was not PENDING is counted as a duplicate once, and an
// unmarkable event is reported and left without holding the others up.
func TestMarkerDelivered(t *testing.T) {
	for _, tt := range []struct {
		name  string
		batch int
		setup func(db *outboxTable)
		mark  []string // what delivered is given, default ids("e", 60)
		// want
		dups, updates int
		transactions  []int // sorted
		unmarkable    []string
	}{
		{name: "one UpdateItem each", batch: 1, updates: 60},
		{name: "transactions of the batch size", batch: 25, transactions: []int{10, 25, 25}},
		{name: "a batch of 100", batch: 100, transactions: []int{60}},
		{name: "events already out of PENDING are duplicates", batch: 25,
			setup: func(db *outboxTable) {
				db.status["e003"], db.status["e030"] = outbox.StatusDelivered, outbox.StatusFailed
			},
			dups: 2, transactions: []int{10, 24, 24}},
		{name: "an event missing from the table is a duplicate", batch: 25,
			mark: append(ids("e", 60), "gone"), dups: 1, transactions: []int{10, 25, 25}},
		{name: "an id given twice is marked once, the second a duplicate", batch: 25,
			mark: append(ids("e", 60), "e007"), dups: 1, transactions: []int{10, 25, 25}},
		{name: "an UpdateItem whose answer was lost is not a duplicate", batch: 1,
			setup:   func(db *outboxTable) { db.loseAnswers = 3 },
			updates: 60},
		{name: "a transaction whose answer was lost is not a duplicate", batch: 25,
			setup:        func(db *outboxTable) { db.loseAnswers = 2 },
			transactions: []int{10, 25, 25}},
		{name: "a conflict is retried", batch: 25,
			setup:        func(db *outboxTable) { db.conflicts["e001"], db.conflicts["e040"] = 1, 3 },
			transactions: []int{10, 25, 25}},
		{name: "an unmarkable event is marked alone and reported", batch: 25,
			setup:        func(db *outboxTable) { db.invalid["e012"] = true },
			transactions: []int{10, 24, 25}, unmarkable: []string{"e012"}},
		{name: "a transaction too large is split", batch: 25,
			setup:        func(db *outboxTable) { db.maxItems = 10 },
			transactions: []int{6, 6, 6, 6, 6, 6, 7, 7, 10}},
		{name: "a cancellation without reasons is split down to UpdateItems", batch: 4,
			setup:   func(db *outboxTable) { db.noReasons, db.status["e002"] = true, outbox.StatusDelivered },
			mark:    ids("e", 8),
			dups:    1,
			updates: 1, transactions: []int{2, 4}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := newOutboxTable(ids("e", 60)...)
			if tt.setup != nil {
				tt.setup(db)
			}
			wasPending := map[string]bool{}
			for id, s := range db.status {
				wasPending[id] = s == outbox.StatusPending && !db.invalid[id]
			}
			mark := tt.mark
			if mark == nil {
				mark = ids("e", 60)
			}
			m, unmarkable := testMarker(db)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			dups, inTxn, err := m.delivered(ctx, mark, pace{width: 4, batch: tt.batch})
			if err != nil {
				t.Fatalf("delivered: %v", err)
			}
			if committed := sum(db.transactions); inTxn != committed {
				t.Errorf("reported %d events marked in transactions, %d were", inTxn, committed)
			}
			for _, id := range mark {
				if wasPending[id] && db.status[id] != outbox.StatusDelivered {
					t.Errorf("%s is %q, want DELIVERED", id, db.status[id])
				}
			}
			slices.Sort(db.transactions)
			if dups != tt.dups || db.updates != tt.updates || !slices.Equal(db.transactions, tt.transactions) || !slices.Equal(*unmarkable, tt.unmarkable) {
				t.Errorf("dups %d, UpdateItems %d, transactions %v, unmarkable %v; want %d, %d, %v, %v",
					dups, db.updates, db.transactions, *unmarkable, tt.dups, tt.updates, tt.transactions, tt.unmarkable)
			}
		})
	}
}

// A transaction that keeps failing for a reason that is not the events'
// (DynamoDB unreachable) is retried until ctx ends, and the error says so.
func TestMarkerDeliveredRetriesUntilCancelled(t *testing.T) {
	db := &unreachableDB{}
	m, _ := testMarker(db)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, _, err := m.delivered(ctx, ids("e", 30), pace{width: 4, batch: 25})
	if err == nil || db.calls.Load() < 2 {
		t.Fatalf("err %v after %d calls; want an error after retries", err, db.calls.Load())
	}
}

// An event DynamoDB refuses to mark as invalid (an item near 400 KB with
// no room for the mark's attributes) is reported and left PENDING; the
// other marks land and the call returns instead of retrying it forever,
// which stalled the shard.
func TestMarkerGivesUpOnAnUnmarkableEvent(t *testing.T) {
	for _, tt := range []struct {
		name string
		mark func(m *marker, ctx context.Context, batch int) error
	}{
		{"delivered", func(m *marker, ctx context.Context, batch int) error {
			_, _, err := m.delivered(ctx, []string{"a", "huge", "b"}, pace{width: 4, batch: batch})
			return err
		}},
		{"failed", func(m *marker, ctx context.Context, _ int) error {
			return errors.Join(
				m.failed(ctx, "huge", errors.New("rejected"), 1),
				m.failed(ctx, "a", errors.New("rejected"), 1),
				m.failed(ctx, "b", errors.New("rejected"), 1))
		}},
	} {
		for _, batch := range []int{1, 25} {
			t.Run(fmt.Sprintf("%s/batch %d", tt.name, batch), func(t *testing.T) {
				db := newOutboxTable("a", "huge", "b")
				db.invalid["huge"] = true
				m, unmarkable := testMarker(db)
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				if err := tt.mark(m, ctx, batch); err != nil {
					t.Fatalf("mark: %v (retried the unmarkable event until the deadline?)", err)
				}
				if !slices.Equal(*unmarkable, []string{"huge"}) || db.status["a"] == outbox.StatusPending || db.status["b"] == outbox.StatusPending {
					t.Fatalf("unmarkable %v, statuses %v; want [huge] and the two others marked", *unmarkable, db.status)
				}
			})
		}
	}
}

func TestCutUTF8(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"ascii cut", 5, "ascii"},
		{"größe", 3, "gr"},  // ö is 2 bytes: not split
		{"größe", 4, "grö"}, // whole
		{"日本語", 4, "日"},     // 3-byte runes
		{"日本語", 2, ""},
	}
	for _, tt := range tests {
		if got := cutUTF8(tt.s, tt.n); got != tt.want || !utf8.ValidString(got) {
			t.Errorf("cutUTF8(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}
