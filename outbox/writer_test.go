package outbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/uuid"
)

// fakeTx records the input and answers with err: the unit tests only check
// what the writer builds and how it reads DynamoDB's answers; the
// transaction itself is tested against DynamoDB Local in integration/.
type fakeTx struct {
	in  *dynamodb.TransactWriteItemsInput
	err error
}

func (f *fakeTx) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	f.in = in
	return &dynamodb.TransactWriteItemsOutput{}, f.err
}

func mustEvent(t *testing.T, payload any) Event {
	t.Helper()
	e, err := NewEvent("BookingReserved", "Booking", "b-1", payload)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestNewEvent(t *testing.T) {
	e := mustEvent(t, map[string]string{"user_id": "u-1"})
	id, err := uuid.Parse(e.ID)
	if err != nil || id.Version() != 7 {
		t.Fatalf("id %q is not a UUIDv7", e.ID)
	}
	if e.OccurredAt.Location() != time.UTC || time.Since(e.OccurredAt) > time.Minute {
		t.Fatalf("occurred_at %v", e.OccurredAt)
	}
	later := mustEvent(t, map[string]string{})
	if later.ID <= e.ID {
		t.Fatalf("ids do not sort by time: %s then %s", e.ID, later.ID)
	}
}

func TestEventValidate(t *testing.T) {
	tests := []struct {
		name    string
		payload any
		mutate  func(*Event)
		field   string
	}{
		{"struct payload", struct {
			A int `json:"a"`
		}{1}, nil, ""},
		{"raw object", []byte(` {"a":1}`), nil, ""},
		{"array payload", []int{1}, nil, AttrPayload},
		{"string payload", "x", nil, AttrPayload},
		{"null payload", nil, nil, AttrPayload},
		{"broken raw json", []byte(`{"a":`), nil, AttrPayload},
		{"missing type", map[string]int{}, func(e *Event) { e.Type = "" }, AttrEventType},
		{"missing aggregate id", map[string]int{}, func(e *Event) { e.AggregateID = "" }, AttrAggregateID},
		{"missing time", map[string]int{}, func(e *Event) { e.OccurredAt = time.Time{} }, AttrOccurredAt},
		{"payload with invalid UTF-8", []byte("{\"name\":\"caf\xe9\"}"), nil, AttrPayload},
		{"payload with multibyte UTF-8", []byte(`{"name":"café"}`), nil, ""},
		{"aggregate id with invalid UTF-8", map[string]int{}, func(e *Event) { e.AggregateID = "a\xff" }, AttrAggregateID},
		{"payload with a key twice", []byte(`{"a":1,"b":2,"a":3}`), nil, AttrPayload},
		{"payload with a key twice, once escaped", []byte(`{"a":1,"\u0061":2}`), nil, AttrPayload},
		{"nested objects may repeat an outer key", []byte(`{"a":{"a":1},"b":{"a":2}}`), nil, ""},
		{"payload with a key twice set after NewEvent", map[string]int{}, func(e *Event) { e.Payload = []byte(`{"x":[1],"x":[2]}`) }, AttrPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewEvent("T", "A", "a-1", tt.payload)
			if err == nil && tt.mutate != nil {
				tt.mutate(&e)
				err = e.Validate()
			}
			if tt.field == "" {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("got %v, want a validation error on %s", err, tt.field)
			}
		})
	}
}

func TestCommitBuildsOneTransaction(t *testing.T) {
	f := &fakeTx{}
	w := &Writer{DB: f, Table: "Out"}
	booking := types.TransactWriteItem{Put: &types.Put{TableName: aws.String("Bookings"), Item: map[string]types.AttributeValue{"booking_id": &types.AttributeValueMemberS{Value: "b-1"}}}}
	e := mustEvent(t, map[string]string{"user_id": "u-1"})
	if err := w.Commit(context.Background(), Tx{Writes: []types.TransactWriteItem{booking}, Events: []Event{e}, IdempotencyToken: "tok"}); err != nil {
		t.Fatal(err)
	}
	items := f.in.TransactItems
	if len(items) != 2 || items[0].Put != booking.Put || aws.ToString(f.in.ClientRequestToken) != "tok" {
		t.Fatalf("transaction %+v", f.in)
	}
	put := items[1].Put
	if aws.ToString(put.TableName) != "Out" || aws.ToString(put.ConditionExpression) != "attribute_not_exists(#id)" {
		t.Fatalf("event put %+v", put)
	}
	back, status, err := DecodeItem(put.Item)
	if err != nil || status != StatusPending || back.ID != e.ID || string(back.Payload) != string(e.Payload) || !back.OccurredAt.Equal(e.OccurredAt) {
		t.Fatalf("item round trip: %+v %s %v", back, status, err)
	}
}

func TestCommitChecksLimitsBeforeCalling(t *testing.T) {
	big := mustEvent(t, map[string]string{"blob": strings.Repeat("x", MaxItemBytes)})
	small := mustEvent(t, map[string]string{})
	many := make([]Event, MaxActions+1)
	for i := range many {
		many[i] = small
	}
	sameID := mustEvent(t, map[string]string{"other": "payload"})
	sameID.ID = small.ID
	// An event item DynamoDB would take but that leaves no room for its
	// delivery marks, and a business item of the same size, which may.
	nearlyFull := mustEvent(t, map[string]string{"blob": strings.Repeat("x", MaxEventItemBytes)})
	bigBooking := types.TransactWriteItem{Put: &types.Put{TableName: aws.String("Bookings"), Item: map[string]types.AttributeValue{
		"booking_id": &types.AttributeValueMemberS{Value: "b-1"}, "blob": &types.AttributeValueMemberS{Value: strings.Repeat("x", MaxEventItemBytes)},
	}}}
	fat := make([]Event, 11) // 11 x 390 KB > 4 MB
	for i := range fat {
		fat[i] = mustEvent(t, map[string]string{"blob": strings.Repeat("x", 390*1024)})
	}
	tests := []struct {
		name  string
		tx    Tx
		field string
	}{
		{"no events", Tx{}, "events"},
		{"item over 400 KB", Tx{Events: []Event{big}}, "action 0"},
		{"event item without room for its marks", Tx{Writes: []types.TransactWriteItem{bigBooking}, Events: []Event{nearlyFull}}, "action 1"},
		{"over 100 actions", Tx{Events: many}, "transaction"},
		{"over 4 MB", Tx{Events: fat}, "transaction"},
		{"token too long", Tx{Events: []Event{small}, IdempotencyToken: strings.Repeat("t", 37)}, "idempotency token"},
		{"same event twice", Tx{Events: []Event{small, small}}, "events"},
		{"same event id, other contents", Tx{Events: []Event{small, sameID}}, "events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeTx{}
			err := (&Writer{DB: f}).Commit(context.Background(), tt.tx)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("got %v, want a validation error on %q", err, tt.field)
			}
			if f.in != nil {
				t.Fatal("DynamoDB was called despite the validation error")
			}
		})
	}
	// The largest event item that leaves room for its marks is written.
	fits := mustEvent(t, map[string]string{"blob": ""})
	item, err := Item(fits)
	if err != nil {
		t.Fatal(err)
	}
	fits = mustEvent(t, map[string]string{"blob": strings.Repeat("x", MaxEventItemBytes-ItemSize(item))})
	if err := (&Writer{DB: &fakeTx{}}).Commit(context.Background(), Tx{Events: []Event{fits}}); err != nil {
		t.Fatalf("an event item of exactly MaxEventItemBytes: %v", err)
	}
}

// apiError is an AWS API error as the SDK returns one (smithy.APIError).
type apiError struct{ code, message string }

func (e apiError) Error() string        { return e.code + ": " + e.message }
func (e apiError) ErrorCode() string    { return e.code }
func (e apiError) ErrorMessage() string { return e.message }

func TestCommitClassifiesErrors(t *testing.T) {
	e := mustEvent(t, map[string]string{})
	booking := types.TransactWriteItem{Put: &types.Put{TableName: aws.String("Bookings"), Item: map[string]types.AttributeValue{"booking_id": &types.AttributeValueMemberS{Value: "b-1"}}}}
	canceled := func(codes ...string) error {
		var reasons []types.CancellationReason
		for _, c := range codes {
			reasons = append(reasons, types.CancellationReason{Code: aws.String(c), Message: aws.String(c + " message")})
		}
		return &types.TransactionCanceledException{CancellationReasons: reasons}
	}
	tests := []struct {
		name  string
		err   error
		check func(t *testing.T, err error)
	}{
		{"business condition", canceled("ConditionalCheckFailed", "None"), func(t *testing.T, err error) {
			var cf *ConditionFailedError
			if !errors.As(err, &cf) || cf.Index != 0 || cf.Table != "Bookings" || cf.EventID != "" {
				t.Fatalf("got %v", err)
			}
		}},
		{"event condition", canceled("None", "ConditionalCheckFailed"), func(t *testing.T, err error) {
			var cf *ConditionFailedError
			if !errors.As(err, &cf) || cf.Index != 1 || cf.EventID != e.ID || cf.Table != DefaultTable {
				t.Fatalf("got %v", err)
			}
		}},
		{"conflict", canceled("TransactionConflict", "None"), func(t *testing.T, err error) {
			if !errors.Is(err, ErrTransactionConflict) {
				t.Fatalf("got %v", err)
			}
		}},
		{"conflict exception", &types.TransactionConflictException{}, func(t *testing.T, err error) {
			var tce *types.TransactionConflictException
			if !errors.Is(err, ErrTransactionConflict) || !errors.As(err, &tce) {
				t.Fatalf("got %v", err)
			}
		}},
		// Wrapped as the SDK's operation error wraps it.
		{"same token still in progress", fmt.Errorf("operation error DynamoDB: TransactWriteItems: %w", &types.TransactionInProgressException{}), func(t *testing.T, err error) {
			var tip *types.TransactionInProgressException
			if !errors.Is(err, ErrTransactionConflict) || !errors.As(err, &tip) {
				t.Fatalf("got %v", err)
			}
		}},
		// DynamoDB's own checks (an update growing an item past 400 KB)
		// are validation errors too, with DynamoDB's error inside.
		{"refused by DynamoDB as invalid", fmt.Errorf("operation error DynamoDB: TransactWriteItems: %w",
			apiError{"ValidationException", "Item size to update has exceeded the maximum allowed size"}), func(t *testing.T, err error) {
			var ve *ValidationError
			var api apiError
			if !errors.As(err, &ve) || !errors.As(err, &api) || !strings.Contains(ve.Error(), "maximum allowed size") {
				t.Fatalf("got %v", err)
			}
		}},
		{"throttled after the SDK's retries", fmt.Errorf("operation error DynamoDB: TransactWriteItems: %w",
			apiError{"ProvisionedThroughputExceededException", "The level of configured provisioned throughput for the table was exceeded"}), func(t *testing.T, err error) {
			if !errors.Is(err, ErrThrottled) {
				t.Fatalf("got %v", err)
			}
		}},
		{"an action throttled", canceled("None", "ThrottlingError"), func(t *testing.T, err error) {
			if !errors.Is(err, ErrThrottled) {
				t.Fatalf("got %v", err)
			}
		}},
		{"an action refused as invalid", canceled("None", "ValidationError"), func(t *testing.T, err error) {
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != "action 1 on "+DefaultTable {
				t.Fatalf("got %v", err)
			}
		}},
		{"idempotency mismatch", &types.IdempotentParameterMismatchException{}, func(t *testing.T, err error) {
			if !errors.Is(err, ErrIdempotencyMismatch) {
				t.Fatalf("got %v", err)
			}
		}},
		{"other errors stay reachable", &types.InternalServerError{}, func(t *testing.T, err error) {
			var ise *types.InternalServerError
			if !errors.As(err, &ise) {
				t.Fatalf("got %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&Writer{DB: &fakeTx{err: tt.err}}).Commit(context.Background(), Tx{Writes: []types.TransactWriteItem{booking}, Events: []Event{e}})
			tt.check(t, err)
		})
	}
}

func TestItemSize(t *testing.T) {
	item := map[string]types.AttributeValue{
		"s": &types.AttributeValueMemberS{Value: "abc"},   // 1 + 3
		"b": &types.AttributeValueMemberBOOL{Value: true}, // 1 + 1
		"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{ // 1 + 3 + (1+2)
			&types.AttributeValueMemberS{Value: "xy"},
		}},
	}
	if got := ItemSize(item); got != 4+2+7 {
		t.Fatalf("size %d, want 13", got)
	}
	// Numbers: measured on DynamoDB Local, a negative number takes one
	// byte more than its absolute value (1,000 x -1 in a list: 1,000 more).
	for _, tt := range []struct {
		n    string
		want int
	}{{"1", 2}, {"-1", 3}, {"-1.5", 4}, {"12345", 4}, {"-12345", 5}} {
		if got := numberSize(tt.n); got != tt.want {
			t.Errorf("numberSize(%s) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

// occurred_at is stored at a fixed width, so that its string order, which
// the pending index and the sweeper's cutoff go by, is time order.
func TestItemOccurredAtSortsAsTime(t *testing.T) {
	base := time.Date(2026, 11, 25, 19, 43, 18, 0, time.UTC)
	var stored []string
	for _, at := range []time.Time{base, base.Add(500 * time.Millisecond), base.Add(123456789)} {
		e := mustEvent(t, map[string]string{})
		e.OccurredAt = at.In(time.FixedZone("CET", 3600))
		item, err := Item(e)
		if err != nil {
			t.Fatal(err)
		}
		s := item[AttrOccurredAt].(*types.AttributeValueMemberS).Value
		back, _, err := DecodeItem(item)
		if err != nil || !back.OccurredAt.Equal(at) {
			t.Fatalf("%s decodes to %v, %v; want %v", s, back.OccurredAt, err, at)
		}
		stored = append(stored, s)
	}
	if want := []string{"2026-11-25T19:43:18.000000000Z", "2026-11-25T19:43:18.500000000Z", "2026-11-25T19:43:18.123456789Z"}; !slices.Equal(stored, want) {
		t.Fatalf("stored %q, want %q", stored, want)
	}
	if !(stored[0] < stored[2] && stored[2] < stored[1]) {
		t.Fatalf("string order of %q is not time order", stored)
	}
}
