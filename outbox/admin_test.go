package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The operator functions are tested against DynamoDB Local in
// integration/admin_test.go; these tests cover what needs no table.

func TestRecordJSON(t *testing.T) {
	at := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	r := Record{
		Event:  Event{ID: "e1", Type: "T", AggregateType: "A", AggregateID: "a1", OccurredAt: at, Payload: json.RawMessage(`{ "n": 1 }`)},
		Status: StatusFailed, Attempts: 2, LastError: "400", FailedAt: at.Add(time.Second),
	}
	got, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"event_id":"e1","event_type":"T","aggregate_type":"A","aggregate_id":"a1","occurred_at":"2025-05-01T10:00:00Z",` +
		`"payload":{"n":1},"status":"FAILED","attempts":2,"last_error":"400","failed_at":"2025-05-01T10:00:01Z"}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}

	// A poison payload is still shown, as a string; a missing one is null.
	for payload, want := range map[string]string{`{"n":`: `"payload":"{\"n\":"`, "": `"payload":null`} {
		r.Payload = json.RawMessage(payload)
		got, err := json.Marshal(r)
		if err != nil || !strings.Contains(string(got), want) {
			t.Errorf("payload %q: got %s, %v; want %s in it", payload, got, err, want)
		}
	}
}

func TestFilterValidate(t *testing.T) {
	at := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	for _, f := range []Filter{
		{Status: "LOST"}, {From: at, To: at}, {From: at.Add(time.Hour), To: at}, {IDs: []string{"a", ""}},
	} {
		var ve *ValidationError
		if err := f.validate(); !errors.As(err, &ve) {
			t.Errorf("%+v: got %v, want a ValidationError", f, err)
		}
	}
	for _, f := range []Filter{{}, {Status: StatusPending, From: at}, {To: at, IDs: []string{"a"}}} {
		if err := f.validate(); err != nil {
			t.Errorf("%+v: %v", f, err)
		}
	}
}

// fakeRequeue answers every Scan with items and records what it was asked.
type fakeRequeue struct {
	mu      sync.Mutex // updates run concurrently
	items   []map[string]types.AttributeValue
	scans   []*dynamodb.ScanInput
	updates []*dynamodb.UpdateItemInput
	// conflict makes the update of this id fail its condition.
	conflict string
}

func (f *fakeRequeue) Scan(_ context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	f.scans = append(f.scans, in)
	return &dynamodb.ScanOutput{Items: f.items}, nil
}

func (f *fakeRequeue) Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return &dynamodb.QueryOutput{}, nil
}

func (f *fakeRequeue) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if in.Key[AttrEventID].(*types.AttributeValueMemberS).Value == f.conflict {
		return nil, &types.ConditionalCheckFailedException{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, in)
	return &dynamodb.UpdateItemOutput{}, nil
}

func storedItem(id string, status Status, occurred time.Time) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		AttrEventID:    &types.AttributeValueMemberS{Value: id},
		AttrStatus:     &types.AttributeValueMemberS{Value: string(status)},
		AttrOccurredAt: &types.AttributeValueMemberS{Value: occurred.Format(time.RFC3339Nano)},
	}
}

// Every placeholder sent is used (DynamoDB rejects unused ones), a
// condition failure is a skip, and the scan reads no payloads.
func TestReplayBuildsConditionalUpdates(t *testing.T) {
	at := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	db := &fakeRequeue{
		items: []map[string]types.AttributeValue{
			storedItem("e1", StatusDelivered, at), storedItem("e2", StatusDelivered, at.Add(time.Minute)),
			// Outside [From, To) though the widened server filter let it in.
			storedItem("e3", StatusDelivered, at.Add(-time.Millisecond)),
		},
		conflict: "e2",
	}
	n, err := Replay(context.Background(), db, "Outbox", Filter{From: at, To: at.Add(time.Hour)})
	if err != nil || n != 1 || len(db.updates) != 1 {
		t.Fatalf("replay = %d, %v; updates %d", n, err, len(db.updates))
	}
	scan := db.scans[0]
	if scan.ProjectionExpression == nil || strings.Contains(*scan.ProjectionExpression, AttrPayload) {
		t.Errorf("scan projection %v", scan.ProjectionExpression)
	}
	up := db.updates[0]
	exprs := *up.UpdateExpression + " " + *up.ConditionExpression
	for k := range up.ExpressionAttributeNames {
		if !strings.Contains(exprs, k) {
			t.Errorf("unused name %s in %q", k, exprs)
		}
	}
	for k := range up.ExpressionAttributeValues {
		if !strings.Contains(exprs, k) {
			t.Errorf("unused value %s in %q", k, exprs)
		}
	}
	names := map[string]bool{}
	for _, v := range up.ExpressionAttributeNames {
		names[v] = true
	}
	for _, a := range []string{AttrStatus, AttrPendingBucket, AttrReplayedAt, AttrDeliveredAt, AttrExpiresAt} {
		if !names[a] {
			t.Errorf("update %q does not touch %s", exprs, a)
		}
	}
	if !strings.Contains(*up.UpdateExpression, "REMOVE") {
		t.Errorf("update %q removes nothing", *up.UpdateExpression)
	}
}

func TestPendingSince(t *testing.T) {
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	const occurred = "2025-05-01T10:00:00Z"
	tests := []struct {
		name    string
		item    map[string]types.AttributeValue
		want    string // RFC 3339; "" for the zero time
		wantErr bool
	}{
		{"written: occurred_at", map[string]types.AttributeValue{AttrOccurredAt: s(occurred), AttrPayload: s("{}")}, occurred, false},
		{"redriven later", map[string]types.AttributeValue{AttrOccurredAt: s(occurred), AttrRedrivenAt: s("2025-05-03T08:00:00.5Z")}, "2025-05-03T08:00:00.5Z", false},
		{"replayed later", map[string]types.AttributeValue{AttrOccurredAt: s(occurred), AttrReplayedAt: s("2025-05-02T00:00:00Z")}, "2025-05-02T00:00:00Z", false},
		{"latest of redrive and replay", map[string]types.AttributeValue{
			AttrOccurredAt: s(occurred), AttrRedrivenAt: s("2025-05-02T00:00:00Z"), AttrReplayedAt: s("2025-05-04T00:00:00Z"),
		}, "2025-05-04T00:00:00Z", false},
		{"a stamp before occurred_at (clock skew) does not move it back", map[string]types.AttributeValue{AttrOccurredAt: s(occurred), AttrRedrivenAt: s("2025-05-01T09:59:00Z")}, occurred, false},
		{"no times at all", map[string]types.AttributeValue{AttrEventID: s("e1")}, "", false},
		{"malformed stamp", map[string]types.AttributeValue{AttrOccurredAt: s(occurred), AttrRedrivenAt: s("yesterday")}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PendingSince(tt.item)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %s, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want time.Time
			if tt.want != "" {
				want, _ = time.Parse(time.RFC3339Nano, tt.want)
			}
			if !got.Equal(want) || got.Location() != time.UTC {
				t.Fatalf("got %s, want %s in UTC", got, want)
			}
		})
	}
}
