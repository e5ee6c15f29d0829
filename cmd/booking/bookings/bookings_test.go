package bookings

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/uuid"
)

// fakeDB is the DynamoDB boundary: each call goes to a function field (nil
// means "not found" / "committed") and is recorded.
type fakeDB struct {
	getItem  func(in *dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error)
	transact func(in *dynamodb.TransactWriteItemsInput) (*dynamodb.TransactWriteItemsOutput, error)

	mu   sync.Mutex
	gets []*dynamodb.GetItemInput
	txs  []*dynamodb.TransactWriteItemsInput
}

func (f *fakeDB) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	f.mu.Lock()
	f.gets = append(f.gets, in)
	f.mu.Unlock()
	if f.getItem == nil {
		return &dynamodb.GetItemOutput{}, nil
	}
	return f.getItem(in)
}

func (f *fakeDB) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	f.mu.Lock()
	f.txs = append(f.txs, in)
	f.mu.Unlock()
	if f.transact == nil {
		return &dynamodb.TransactWriteItemsOutput{}, nil
	}
	return f.transact(in)
}

var _ DB = (*fakeDB)(nil)

var testNow = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("CET", 3600))

const validBody = `{"user_id":"u-1","session_id":"s-1"}`

// newService returns a service with a fixed id and clock and a captured log.
func newService(db *fakeDB) (*Service, *bytes.Buffer) {
	var logs bytes.Buffer
	return &Service{
		DB:     db,
		NewID:  func() string { return "b-1" },
		Now:    func() time.Time { return testNow },
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	}, &logs
}

func do(t *testing.T, h http.Handler, method, path, body string, hdr http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	maps.Copy(req.Header, hdr)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	return rec
}

func keyHeader(key string) http.Header {
	return http.Header{IdempotencyKeyHeader: {key}}
}

func errorMessage(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var body struct{ Error string }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q: %v", rec.Body, err)
	}
	return body.Error
}

// canceled is DynamoDB's answer to a transaction whose actions failed with
// the given cancellation codes, in action order.
func canceled(codes ...string) *types.TransactionCanceledException {
	e := &types.TransactionCanceledException{Message: aws.String("Transaction cancelled")}
	for _, c := range codes {
		e.CancellationReasons = append(e.CancellationReasons, types.CancellationReason{Code: aws.String(c)})
	}
	return e
}

// stringAttrs returns an item's string attributes; every attribute the service
// writes is a string, so another type shows up as a missing key.
func stringAttrs(item map[string]types.AttributeValue) map[string]string {
	out := map[string]string{}
	for k, v := range item {
		if s, ok := v.(*types.AttributeValueMemberS); ok {
			out[k] = s.Value
		}
	}
	return out
}

// condition resolves a Put's expression attribute names.
func condition(p *types.Put) string {
	c := aws.ToString(p.ConditionExpression)
	for k, v := range p.ExpressionAttributeNames {
		c = strings.ReplaceAll(c, k, v)
	}
	return c
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestCreateRejectsBadInputWithoutWriting(t *testing.T) {
	long := strings.Repeat("x", MaxFieldLength+1)
	tests := []struct {
		name       string
		body       string
		hdr        http.Header
		wantStatus int
		wantError  string
	}{
		{"empty body", "", nil, 400, "request body is empty"},
		{"malformed JSON", `{"user_id":`, nil, 400, "malformed JSON"},
		{"not JSON", `hello`, nil, 400, "malformed JSON"},
		{"array instead of object", `[]`, nil, 400, "request body must be a JSON object"},
		{"unknown field", `{"user_id":"u","session_id":"s","seat":"1A"}`, nil, 400, `unknown field "seat"`},
		{"keys in upper case", `{"USER_ID":"u","SESSION_ID":"s"}`, nil, 400, `unknown field "USER_ID"`},
		{"key in mixed case", `{"user_id":"u","Session_Id":"s"}`, nil, 400, `unknown field "Session_Id"`},
		{"case variant overriding a key", `{"user_id":"u","USER_ID":"x","session_id":"s"}`, nil, 400, `unknown field "USER_ID"`},
		{"duplicate key", `{"user_id":"u","session_id":"s","user_id":"x"}`, nil, 400, `duplicate field "user_id"`},
		{"duplicate key, same value", `{"user_id":"u","session_id":"s","session_id":"s"}`, nil, 400, `duplicate field "session_id"`},
		{"unknown nested under a known key is a type error", `{"user_id":{"USER_ID":"u"},"session_id":"s"}`, nil, 400, "user_id must be a string"},
		{"missing user_id", `{"session_id":"s"}`, nil, 400, "user_id is required"},
		{"empty session_id", `{"user_id":"u","session_id":""}`, nil, 400, "session_id is required"},
		{"blank user_id", `{"user_id":"  ","session_id":"s"}`, nil, 400, "user_id is required"},
		{"null body", `null`, nil, 400, "user_id is required"},
		{"user_id not a string", `{"user_id":5,"session_id":"s"}`, nil, 400, "user_id must be a string"},
		{"second object after the first", validBody + `{}`, nil, 400, "single JSON object"},
		{"garbage after the object", validBody + ` x`, nil, 400, "single JSON object"},
		{"user_id too long", `{"user_id":"` + long + `","session_id":"s"}`, nil, 400, "user_id must be at most 256 characters"},
		{"session_id too long in characters", `{"user_id":"u","session_id":"` + strings.Repeat("é", MaxFieldLength+1) + `"}`, nil, 400, "session_id must be at most"},
		{"body over 64 KiB", `{"user_id":"` + strings.Repeat("x", MaxBodyBytes) + `","session_id":"s"}`, nil, 413, "request body exceeds 65536 bytes"},
		{"padding after the object over 64 KiB", validBody + strings.Repeat(" ", MaxBodyBytes), nil, 413, "request body exceeds"},
		{"empty Idempotency-Key", validBody, keyHeader(""), 400, "Idempotency-Key must be 1 to 255 bytes"},
		{"Idempotency-Key over 255 bytes", validBody, keyHeader(strings.Repeat("k", 256)), 400, "Idempotency-Key must be 1 to 255 bytes"},
		{"two Idempotency-Key headers", validBody, http.Header{IdempotencyKeyHeader: {"a", "b"}}, 400, "only one Idempotency-Key"},
		{"bad key and bad body", `{`, keyHeader(""), 400, "Idempotency-Key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := &fakeDB{}
			svc, _ := newService(db)
			rec := do(t, svc.Handler(), "POST", "/bookings", tt.body, tt.hdr)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			if msg := errorMessage(t, rec); !strings.Contains(msg, tt.wantError) {
				t.Errorf("error = %q, want it to contain %q", msg, tt.wantError)
			}
			if len(db.txs) != 0 || len(db.gets) != 0 {
				t.Errorf("DB saw %d transactions and %d reads, want none", len(db.txs), len(db.gets))
			}
		})
	}
}

func TestCreateCommitsBookingAndEventInOneTransaction(t *testing.T) {
	tests := []struct {
		name                      string
		key                       string
		bookingsTable, outboxTbl  string
		wantBookings, wantOutbox  string
		wantIdempotencyRecordRead bool
	}{
		{name: "default tables, no key", wantBookings: "Bookings", wantOutbox: "Outbox"},
		{name: "custom tables, no key", bookingsTable: "B2", outboxTbl: "O2", wantBookings: "B2", wantOutbox: "O2"},
		{name: "with idempotency key", key: "retry-me", wantBookings: "Bookings", wantOutbox: "Outbox", wantIdempotencyRecordRead: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := &fakeDB{}
			svc, _ := newService(db)
			svc.BookingsTable, svc.OutboxTable = tt.bookingsTable, tt.outboxTbl
			var hdr http.Header
			if tt.key != "" {
				hdr = keyHeader(tt.key)
			}
			rec := do(t, svc.Handler(), "POST", "/bookings", validBody, hdr)

			if rec.Code != http.StatusCreated {
				t.Fatalf("status = %d, want 201 (body %s)", rec.Code, rec.Body)
			}
			if got, want := rec.Body.String(), `{"booking_id":"b-1","status":"RESERVED"}`+"\n"; got != want {
				t.Errorf("body = %q, want %q", got, want)
			}
			if rec.Header().Get(ReplayedHeader) != "" {
				t.Errorf("a first request must not be marked replayed")
			}
			if len(db.txs) != 1 {
				t.Fatalf("got %d transactions, want 1", len(db.txs))
			}
			tx := db.txs[0]
			if tx.ClientRequestToken != nil {
				t.Errorf("ClientRequestToken = %q; the Idempotency-Key must not become the token", *tx.ClientRequestToken)
			}
			items := tx.TransactItems
			for i, it := range items {
				if it.Put == nil {
					t.Fatalf("action %d is not a Put: %+v", i, it)
				}
			}
			created := "2025-03-14T14:09:26.535897932Z"

			wantActions := 2
			if tt.key != "" {
				wantActions = 3
				idem := items[0].Put
				if got := aws.ToString(idem.TableName); got != tt.wantBookings {
					t.Errorf("idempotency record table = %q, want %q", got, tt.wantBookings)
				}
				want := map[string]string{
					"booking_id":     "idem#" + sha(tt.key),
					"ref_booking_id": "b-1",
					"request_hash":   requestHash(createRequest{UserID: "u-1", SessionID: "s-1"}),
					"created_at":     created,
				}
				if got := stringAttrs(idem.Item); !maps.Equal(got, want) || len(idem.Item) != len(want) {
					t.Errorf("idempotency record = %v, want %v", got, want)
				}
				if got := condition(idem); got != "attribute_not_exists(booking_id)" {
					t.Errorf("idempotency record condition = %q", got)
				}
				if idem.ReturnValuesOnConditionCheckFailure != types.ReturnValuesOnConditionCheckFailureAllOld {
					t.Errorf("idempotency record returns %q on a failed condition, want ALL_OLD so a lost race needs no read", idem.ReturnValuesOnConditionCheckFailure)
				}
				items = items[1:]
			}
			if len(tx.TransactItems) != wantActions {
				t.Fatalf("got %d actions, want %d", len(tx.TransactItems), wantActions)
			}

			booking := items[0].Put
			if got := aws.ToString(booking.TableName); got != tt.wantBookings {
				t.Errorf("booking table = %q, want %q", got, tt.wantBookings)
			}
			wantBooking := map[string]string{
				"booking_id": "b-1", "user_id": "u-1", "session_id": "s-1",
				"status": "RESERVED", "created_at": created,
			}
			if got := stringAttrs(booking.Item); !maps.Equal(got, wantBooking) || len(booking.Item) != len(wantBooking) {
				t.Errorf("booking = %v, want %v", got, wantBooking)
			}
			if got := condition(booking); got != "attribute_not_exists(booking_id)" {
				t.Errorf("booking condition = %q", got)
			}

			event := items[1].Put
			if got := aws.ToString(event.TableName); got != tt.wantOutbox {
				t.Errorf("event table = %q, want %q", got, tt.wantOutbox)
			}
			ev := stringAttrs(event.Item)
			if _, err := uuid.Parse(ev["event_id"]); err != nil {
				t.Errorf("event_id %q: %v", ev["event_id"], err)
			}
			for attr, want := range map[string]string{
				"event_type": "BookingReserved", "aggregate_type": "Booking", "aggregate_id": "b-1",
				"occurred_at": created, "status": "PENDING",
			} {
				if ev[attr] != want {
					t.Errorf("event %s = %q, want %q", attr, ev[attr], want)
				}
			}
			var payload map[string]string
			if err := json.Unmarshal([]byte(ev["payload"]), &payload); err != nil {
				t.Fatalf("payload %q: %v", ev["payload"], err)
			}
			wantPayload := map[string]string{"booking_id": "b-1", "user_id": "u-1", "session_id": "s-1", "status": "RESERVED"}
			if !maps.Equal(payload, wantPayload) {
				t.Errorf("payload = %v, want %v", payload, wantPayload)
			}

			if gotRead := len(db.gets) == 1; gotRead != tt.wantIdempotencyRecordRead {
				t.Fatalf("reads = %d, want idempotency record read: %v", len(db.gets), tt.wantIdempotencyRecordRead)
			}
			if tt.wantIdempotencyRecordRead {
				in := db.gets[0]
				if !aws.ToBool(in.ConsistentRead) || stringAttrs(in.Key)["booking_id"] != "idem#"+sha(tt.key) {
					t.Errorf("idempotency read = consistent %v key %v", aws.ToBool(in.ConsistentRead), stringAttrs(in.Key))
				}
			}
		})
	}
}

func TestCreateDefaultsToUUIDv7BookingIDs(t *testing.T) {
	db := &fakeDB{}
	rec := do(t, (&Service{DB: db}).Handler(), "POST", "/bookings", validBody, nil)
	if rec.Code != http.StatusCreated {
		t.Fatalf("status = %d (body %s)", rec.Code, rec.Body)
	}
	var body createResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if id, err := uuid.Parse(body.BookingID); err != nil || id.Version() != 7 {
		t.Errorf("booking_id %q is not a UUIDv7 (%v)", body.BookingID, err)
	}
}

// firstRequestRecord commits a keyed booking through the fake and returns
// the response and the idempotency record the transaction put, as a
// retry would find it.
func firstRequestRecord(t *testing.T, key string) (*httptest.ResponseRecorder, map[string]types.AttributeValue) {
	t.Helper()
	db := &fakeDB{}
	svc, _ := newService(db)
	svc.NewID = func() string { return "b-first" }
	rec := do(t, svc.Handler(), "POST", "/bookings", validBody, keyHeader(key))
	if rec.Code != http.StatusCreated || len(db.txs) != 1 {
		t.Fatalf("first request: status %d, %d transactions", rec.Code, len(db.txs))
	}
	return rec, db.txs[0].TransactItems[0].Put.Item
}

func TestCreateReplaysFromIdempotencyRecord(t *testing.T) {
	first, record := firstRequestRecord(t, "k-1")
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantBody   string
	}{
		{"same request gets the first response", validBody, 201, first.Body.String()},
		{"same fields, different formatting", `{ "session_id": "s-1", "user_id": "u-1" }`, 201, first.Body.String()},
		{"different request is refused", `{"user_id":"u-2","session_id":"s-1"}`, 422, `{"error":"idempotency key reused with a different request"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := &fakeDB{getItem: func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error) {
				return &dynamodb.GetItemOutput{Item: record}, nil
			}}
			svc, _ := newService(db)
			rec := do(t, svc.Handler(), "POST", "/bookings", tt.body, keyHeader("k-1"))
			if rec.Code != tt.wantStatus || rec.Body.String() != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
			if replayed := rec.Header().Get(ReplayedHeader); (replayed == "true") != (tt.wantStatus == 201) {
				t.Errorf("%s = %q", ReplayedHeader, replayed)
			}
			if len(db.txs) != 0 {
				t.Errorf("replay wrote %d transactions, want none", len(db.txs))
			}
		})
	}
}

func TestCreateReplaysAfterLosingTheRace(t *testing.T) {
	first, record := firstRequestRecord(t, "k-1")
	// The other request committed between our read and our transaction:
	// the first read misses, the record's condition fails.
	lost := func(item map[string]types.AttributeValue) func(*dynamodb.TransactWriteItemsInput) (*dynamodb.TransactWriteItemsOutput, error) {
		return func(*dynamodb.TransactWriteItemsInput) (*dynamodb.TransactWriteItemsOutput, error) {
			e := canceled("ConditionalCheckFailed", "None", "None")
			e.CancellationReasons[0].Item = item
			return nil, e
		}
	}
	readsAfterMiss := func(item map[string]types.AttributeValue) func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error) {
		n := 0
		return func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error) {
			if n++; n == 1 {
				return &dynamodb.GetItemOutput{}, nil
			}
			return &dynamodb.GetItemOutput{Item: item}, nil
		}
	}
	tests := []struct {
		name       string
		body       string
		db         *fakeDB
		wantStatus int
		wantBody   string
		wantReads  int
	}{
		{
			name:       "record read back after the condition failed",
			body:       validBody,
			db:         &fakeDB{getItem: readsAfterMiss(record), transact: lost(nil)},
			wantStatus: 201, wantBody: first.Body.String(), wantReads: 2,
		},
		{
			name:       "record taken from the cancellation reason",
			body:       validBody,
			db:         &fakeDB{transact: lost(record)},
			wantStatus: 201, wantBody: first.Body.String(), wantReads: 1,
		},
		{
			name:       "winner had a different request",
			body:       `{"user_id":"u-1","session_id":"s-2"}`,
			db:         &fakeDB{getItem: readsAfterMiss(record), transact: lost(nil)},
			wantStatus: 422, wantBody: `{"error":"idempotency key reused with a different request"}` + "\n", wantReads: 2,
		},
		{
			name:       "record gone on read back",
			body:       validBody,
			db:         &fakeDB{transact: lost(nil)},
			wantStatus: 500, wantBody: `{"error":"internal error"}` + "\n", wantReads: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, _ := newService(tt.db)
			rec := do(t, svc.Handler(), "POST", "/bookings", tt.body, keyHeader("k-1"))
			if rec.Code != tt.wantStatus || rec.Body.String() != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
			if replayed := rec.Header().Get(ReplayedHeader); (replayed == "true") != (tt.wantStatus == 201) {
				t.Errorf("%s = %q", ReplayedHeader, replayed)
			}
			if len(tt.db.txs) != 1 || len(tt.db.gets) != tt.wantReads {
				t.Errorf("got %d transactions and %d reads, want 1 and %d", len(tt.db.txs), len(tt.db.gets), tt.wantReads)
			}
		})
	}
}

func TestCreateMapsDynamoDBErrors(t *testing.T) {
	fail := func(err error) func(*dynamodb.TransactWriteItemsInput) (*dynamodb.TransactWriteItemsOutput, error) {
		return func(*dynamodb.TransactWriteItemsInput) (*dynamodb.TransactWriteItemsOutput, error) { return nil, err }
	}
	secret := errors.New("AccessDenied: arn:aws:iam::123456789012:role/secret")
	tests := []struct {
		name       string
		key        string
		db         *fakeDB
		wantStatus int
		wantError  string
		wantHeader http.Header
		wantLogged bool
	}{
		{
			name:       "duplicate booking id",
			db:         &fakeDB{transact: fail(canceled("ConditionalCheckFailed", "None"))},
			wantStatus: 409, wantError: "booking b-1 already exists",
		},
		{
			name:       "duplicate booking id with a fresh idempotency key",
			key:        "k-new",
			db:         &fakeDB{transact: fail(canceled("None", "ConditionalCheckFailed", "None"))},
			wantStatus: 409, wantError: "booking b-1 already exists",
		},
		{
			name:       "transaction conflict is retryable",
			db:         &fakeDB{transact: fail(canceled("None", "TransactionConflict"))},
			wantStatus: 503, wantError: "retry", wantHeader: http.Header{"Retry-After": {"1"}},
		},
		{
			name:       "transaction conflict exception is retryable",
			db:         &fakeDB{transact: fail(&types.TransactionConflictException{Message: aws.String("conflict")})},
			wantStatus: 503, wantError: "retry", wantHeader: http.Header{"Retry-After": {"1"}},
		},
		{
			name:       "transaction in progress is retryable",
			db:         &fakeDB{transact: fail(&types.TransactionInProgressException{Message: aws.String("in progress")})},
			wantStatus: 503, wantError: "retry", wantHeader: http.Header{"Retry-After": {"1"}},
		},
		{
			name:       "throttling after the SDK's retries is retryable",
			db:         &fakeDB{transact: fail(&types.ProvisionedThroughputExceededException{Message: aws.String("slow down")})},
			wantStatus: 503, wantError: "retry", wantHeader: http.Header{"Retry-After": {"1"}},
		},
		{
			name:       "a throttled action is retryable",
			db:         &fakeDB{transact: fail(canceled("None", "ThrottlingError"))},
			wantStatus: 503, wantError: "retry", wantHeader: http.Header{"Retry-After": {"1"}},
		},
		{
			name:       "event id collision is ours, not the client's",
			db:         &fakeDB{transact: fail(canceled("None", "ConditionalCheckFailed"))},
			wantStatus: 500, wantError: "internal error", wantLogged: true,
		},
		{
			name:       "other commit error does not leak",
			db:         &fakeDB{transact: fail(secret)},
			wantStatus: 500, wantError: "internal error", wantLogged: true,
		},
		{
			name:       "idempotency record read error does not leak",
			key:        "k-1",
			db:         &fakeDB{getItem: func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error) { return nil, secret }},
			wantStatus: 500, wantError: "internal error", wantLogged: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, logs := newService(tt.db)
			var hdr http.Header
			if tt.key != "" {
				hdr = keyHeader(tt.key)
			}
			rec := do(t, svc.Handler(), "POST", "/bookings", validBody, hdr)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			if msg := errorMessage(t, rec); !strings.Contains(msg, tt.wantError) {
				t.Errorf("error = %q, want it to contain %q", msg, tt.wantError)
			}
			if strings.Contains(rec.Body.String(), "arn:") {
				t.Errorf("response leaks the cause: %s", rec.Body)
			}
			for k := range tt.wantHeader {
				if got := rec.Header().Get(k); got != tt.wantHeader.Get(k) {
					t.Errorf("header %s = %q, want %q", k, got, tt.wantHeader.Get(k))
				}
			}
			if logged := logs.Len() > 0; logged != tt.wantLogged {
				t.Errorf("logged = %v, want %v: %s", logged, tt.wantLogged, logs)
			}
		})
	}
}

func TestRejectsReservedOrEmptyBookingIDs(t *testing.T) {
	for _, id := range []string{"", "idem#abc"} {
		db := &fakeDB{}
		svc, _ := newService(db)
		svc.NewID = func() string { return id }
		rec := do(t, svc.Handler(), "POST", "/bookings", validBody, nil)
		if rec.Code != http.StatusInternalServerError || len(db.txs) != 0 {
			t.Errorf("NewID %q: status %d, %d transactions; want 500 and none", id, rec.Code, len(db.txs))
		}
	}
}

func TestGetBooking(t *testing.T) {
	stored := map[string]types.AttributeValue{
		"booking_id": &types.AttributeValueMemberS{Value: "b-1"},
		"user_id":    &types.AttributeValueMemberS{Value: "u-1"},
		"session_id": &types.AttributeValueMemberS{Value: "s-1"},
		"status":     &types.AttributeValueMemberS{Value: "RESERVED"},
		"created_at": &types.AttributeValueMemberS{Value: "2025-03-14T14:09:26.535897932Z"},
	}
	found := func(in *dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error) {
		if stringAttrs(in.Key)["booking_id"] != "b-1" {
			return &dynamodb.GetItemOutput{}, nil
		}
		return &dynamodb.GetItemOutput{Item: stored}, nil
	}
	tests := []struct {
		name       string
		path       string
		getItem    func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error)
		wantStatus int
		wantBody   string
		wantReads  int
	}{
		{
			name: "existing booking", path: "/bookings/b-1", getItem: found, wantStatus: 200, wantReads: 1,
			wantBody: `{"booking_id":"b-1","user_id":"u-1","session_id":"s-1","status":"RESERVED","created_at":"2025-03-14T14:09:26.535897932Z"}` + "\n",
		},
		{
			name: "unknown booking", path: "/bookings/b-2", getItem: found, wantStatus: 404, wantReads: 1,
			wantBody: `{"error":"booking not found"}` + "\n",
		},
		{
			name: "idempotency records are not bookings", path: "/bookings/idem%23abc", getItem: found, wantStatus: 404,
			wantBody: `{"error":"booking not found"}` + "\n",
		},
		{
			name: "id longer than a DynamoDB key", path: "/bookings/" + strings.Repeat("x", maxKeyBytes+1), getItem: found, wantStatus: 404,
			wantBody: `{"error":"booking not found"}` + "\n",
		},
		{
			name: "read error does not leak", path: "/bookings/b-1", wantStatus: 500, wantReads: 1,
			getItem:  func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error) { return nil, errors.New("throttled") },
			wantBody: `{"error":"internal error"}` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := &fakeDB{getItem: tt.getItem}
			svc, _ := newService(db)
			svc.BookingsTable = "B2"
			rec := do(t, svc.Handler(), "GET", tt.path, "", nil)
			if rec.Code != tt.wantStatus || rec.Body.String() != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
			if len(db.gets) != tt.wantReads {
				t.Fatalf("reads = %d, want %d", len(db.gets), tt.wantReads)
			}
			for _, in := range db.gets {
				if aws.ToString(in.TableName) != "B2" || !aws.ToBool(in.ConsistentRead) {
					t.Errorf("read table %q consistent %v, want B2 consistent", aws.ToString(in.TableName), aws.ToBool(in.ConsistentRead))
				}
			}
		})
	}
}

func TestRoutesAnswerJSON(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantBody   string
		wantAllow  string
	}{
		{"health", "GET", "/healthz", 200, `{"status":"ok"}` + "\n", ""},
		{"unknown path", "GET", "/nope", 404, `{"error":"not found"}` + "\n", ""},
		{"empty booking id", "GET", "/bookings/", 404, `{"error":"not found"}` + "\n", ""},
		{"list is not offered", "GET", "/bookings", 405, `{"error":"method not allowed"}` + "\n", "POST"},
		{"bookings are not deleted", "DELETE", "/bookings/b-1", 405, `{"error":"method not allowed"}` + "\n", "GET, HEAD"},
		{"health is read-only", "POST", "/healthz", 405, `{"error":"method not allowed"}` + "\n", "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := &fakeDB{}
			svc, _ := newService(db)
			rec := do(t, svc.Handler(), tt.method, tt.path, "", nil)
			if rec.Code != tt.wantStatus || rec.Body.String() != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			if len(db.gets)+len(db.txs) != 0 {
				t.Errorf("route touched DynamoDB")
			}
		})
	}
}

func TestHandlerPanicsWithoutDB(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Handler with a nil DB did not panic")
		}
	}()
	(&Service{}).Handler()
}

func TestRequestHashSeparatesFields(t *testing.T) {
	a := requestHash(createRequest{UserID: "ab", SessionID: "c"})
	b := requestHash(createRequest{UserID: "a", SessionID: "bc"})
	if a == b {
		t.Errorf("(ab, c) and (a, bc) hash alike: %s", a)
	}
}

// describeTable answers DescribeTable with out, or err.
type describeTable struct {
	out *dynamodb.DescribeTableOutput
	err error
}

func (d describeTable) DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	return d.out, d.err
}

// Ready says which check failed, never the DynamoDB error behind it: that
// goes to the log.
func TestReadyTellsClientsWhatFailedNotWhy(t *testing.T) {
	const secret = "arn:aws:iam::123456789012:role/booking"
	withStream := func(enabled bool) *dynamodb.DescribeTableOutput {
		return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{
			LatestStreamArn:     aws.String("arn:aws:dynamodb:eu-west-1:123456789012:table/Outbox/stream/1"),
			StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(enabled)},
		}}
	}
	tests := []struct {
		name    string
		db      describeTable
		want    string // "" = ready
		wantLog bool
	}{
		{"ready", describeTable{out: withStream(true)}, "", false},
		{"stream disabled", describeTable{out: withStream(false)}, "stream is missing or disabled", false},
		{"DynamoDB refuses", describeTable{err: errors.New("AccessDeniedException: " + secret + " is not authorized")}, "DynamoDB does not answer", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			s := &Service{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			err := s.Ready(t.Context(), tt.db)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Ready = %v, want ready", err)
				}
				return
			}
			if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "123456789012") {
				t.Fatalf("Ready = %v, want ErrNotReady saying %q and no account number", err, tt.want)
			}
			if got := strings.Contains(logs.String(), secret); got != tt.wantLog {
				t.Fatalf("cause logged %v, want %v: %s", got, tt.wantLog, logs.String())
			}
		})
	}
}
