package relay

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddboutbox/ddboutbox/outbox"
)

// refusingDB answers UpdateItem for the ids in refuse with err, and
// records the others.
type refusingDB struct {
	refuse map[string]error
	mu     sync.Mutex
	marked []string
}

func (db *refusingDB) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	id := in.Key[outbox.AttrEventID].(*types.AttributeValueMemberS).Value
	if err := db.refuse[id]; err != nil {
		return nil, err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	db.marked = append(db.marked, id)
	return &dynamodb.UpdateItemOutput{}, nil
}

// An event DynamoDB refuses to mark as invalid (an item near 400 KB with
// no room for the mark's attributes) is reported and left PENDING; the
// other marks land and the call returns instead of retrying it forever,
// which stalled the shard.
func TestMarkerGivesUpOnAnUnmarkableEvent(t *testing.T) {
	tooBig := apiError{code: "ValidationException"} // "Item size to update has exceeded the maximum allowed size"
	for _, tt := range []struct {
		name string
		mark func(m *marker, ctx context.Context) error
	}{
		{"delivered", func(m *marker, ctx context.Context) error {
			_, err := m.delivered(ctx, []string{"a", "huge", "b"})
			return err
		}},
		{"failed", func(m *marker, ctx context.Context) error {
			if err := m.failed(ctx, "huge", errors.New("rejected"), 1); err != nil {
				return err
			}
			if err := m.failed(ctx, "a", errors.New("rejected"), 1); err != nil {
				return err
			}
			return m.failed(ctx, "b", errors.New("rejected"), 1)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := &refusingDB{refuse: map[string]error{"huge": tooBig}}
			var unmarkable []string
			m := &marker{
				db: db, table: "Outbox", concurrency: 1, now: time.Now,
				policy:       backoff{base: time.Millisecond, max: time.Millisecond},
				onErr:        func(error) {},
				onUnmarkable: func(id string, _ error) { unmarkable = append(unmarkable, id) },
			}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if err := tt.mark(m, ctx); err != nil {
				t.Fatalf("mark: %v (retried the unmarkable event until the deadline?)", err)
			}
			if len(unmarkable) != 1 || unmarkable[0] != "huge" || len(db.marked) != 2 {
				t.Fatalf("unmarkable %v, marked %v; want [huge] and the two others", unmarkable, db.marked)
			}
		})
	}
}
