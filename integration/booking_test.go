package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddboutbox/ddboutbox/cmd/analytics-sink/endpoint"
	"github.com/ddboutbox/ddboutbox/cmd/booking/bookings"
)

// bookingServer serves the example booking service on the env's tables.
func (e *env) bookingServer(newID func() string) *httptest.Server {
	svc := &bookings.Service{DB: clients.DB, BookingsTable: e.tables.Bookings, OutboxTable: e.tables.Outbox, NewID: newID}
	srv := httptest.NewServer(svc.Handler())
	e.t.Cleanup(srv.Close)
	return srv
}

type created struct {
	status int
	header http.Header
	body   map[string]string
}

func postBooking(t *testing.T, client *http.Client, url, body, idemKey string) created {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/bookings", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return created{}
	}
	req.Header.Set("Content-Type", "application/json")
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("post booking: %v", err)
		return created{}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := created{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(raw, &out.body); err != nil {
		t.Errorf("booking response %q: %v", raw, err)
	}
	return out
}

// 1,000 bookings through the booking HTTP handler from 20 concurrent
// clients reach the endpoint as exactly those 1,000 events, batched, with
// the right fields; every outbox item ends DELIVERED and every row's
// booking exists.
func TestBookingsReachEndpointBatchedAndMarkedDelivered(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	e.startRelay(e.relayConfig())
	srv := e.bookingServer(nil)

	const clientsN, perClient = 20, 50
	type booking struct{ user, session string }
	var mu sync.Mutex
	want := map[string]booking{}
	var wg sync.WaitGroup
	for c := range clientsN {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perClient {
				b := booking{user: fmt.Sprintf("user-%d", c), session: fmt.Sprintf("session-%d-%d", c, i)}
				res := postBooking(t, srv.Client(), srv.URL, fmt.Sprintf(`{"user_id":%q,"session_id":%q}`, b.user, b.session), "")
				if res.status != http.StatusCreated || res.body["status"] != "RESERVED" || res.body["booking_id"] == "" {
					t.Errorf("POST /bookings: %d %v", res.status, res.body)
					return
				}
				mu.Lock()
				want[res.body["booking_id"]] = b
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if len(want) != clientsN*perClient {
		t.Fatalf("%d distinct bookings, want %d", len(want), clientsN*perClient)
	}

	waitFor(t, 90*time.Second, func() (bool, string) {
		st := e.sink.Stats()
		return st.DistinctEventIDs >= len(want), fmt.Sprintf("endpoint %+v", st)
	})
	e.waitMarked(len(want), 30*time.Second)

	rows := e.rowFields()
	if len(rows) != len(want) {
		t.Fatalf("endpoint has %d distinct events, want %d", len(rows), len(want))
	}
	seen := map[string]bool{}
	for id, f := range rows {
		bid, _ := f["aggregate_id"].(string)
		b, ok := want[bid]
		if !ok || seen[bid] {
			t.Fatalf("row %s is for booking %q: unknown or seen twice", id, bid)
		}
		seen[bid] = true
		at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(f["occurred_at"]))
		if f["event_id"] != id || f["event_type"] != "BookingReserved" || f["aggregate_type"] != "Booking" ||
			f["booking_id"] != bid || f["user_id"] != b.user || f["session_id"] != b.session || f["status"] != "RESERVED" ||
			err != nil || !strings.HasSuffix(fmt.Sprint(f["occurred_at"]), "Z") || time.Since(at) > 10*time.Minute {
			t.Fatalf("row %v does not match booking %s %+v", f, bid, b)
		}
	}
	st := e.sink.Stats()
	if st.Requests >= len(want) || st.Duplicates != 0 {
		t.Fatalf("endpoint stats %+v: want fewer than %d requests and no duplicates", st, len(want))
	}
	t.Logf("%d events in %d requests", st.Rows, st.Requests)
	for bid := range want {
		if getItem(t, e.tables.Bookings, "booking_id", bid) == nil {
			t.Fatalf("booking %s of a delivered row does not exist", bid)
		}
	}
}

// A retry with the same Idempotency-Key returns the same booking and writes
// no second booking or event: the endpoint gets one row.
func TestIdempotencyKeyRetryGivesOneBookingOneEventOneRow(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	e.startRelay(e.relayConfig())
	srv := e.bookingServer(nil)
	body := `{"user_id":"u-idem","session_id":"s-idem"}`

	first := postBooking(t, srv.Client(), srv.URL, body, "key-123")
	second := postBooking(t, srv.Client(), srv.URL, body, "key-123")
	if first.status != http.StatusCreated || second.status != http.StatusCreated {
		t.Fatalf("statuses %d, %d; want 201 twice", first.status, second.status)
	}
	if first.body["booking_id"] == "" || first.body["booking_id"] != second.body["booking_id"] {
		t.Fatalf("retry returned booking %q, first was %q", second.body["booking_id"], first.body["booking_id"])
	}
	if second.header.Get("Idempotent-Replayed") != "true" {
		t.Fatal("the retry is not marked Idempotent-Replayed")
	}

	out, err := clients.DB.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(e.tables.Bookings), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for _, it := range out.Items {
		if id, _ := it["booking_id"].(*types.AttributeValueMemberS); id != nil && !strings.HasPrefix(id.Value, "idem#") {
			stored++
		}
	}
	if stored != 1 {
		t.Fatalf("%d bookings stored, want 1", stored)
	}
	if s := e.summary(); s.Pending+s.Delivered != 1 {
		t.Fatalf("outbox %+v, want exactly 1 event", s)
	}
	e.waitMarked(1, 30*time.Second)
	time.Sleep(500 * time.Millisecond) // more than a batch window: a second row would show
	rows := e.rowFields()
	if len(rows) != 1 || e.sink.Stats().Rows != 1 {
		t.Fatalf("endpoint got %d rows, want 1", e.sink.Stats().Rows)
	}
	for _, f := range rows {
		if f["aggregate_id"] != first.body["booking_id"] {
			t.Fatalf("row %v is not for booking %s", f, first.body["booking_id"])
		}
	}
}

// Through the HTTP API, a booking id that already exists is a 409 and the
// event of the refused booking is not written.
func TestDuplicateBookingIDIsRefusedAndWritesNoEvent(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	srv := e.bookingServer(func() string { return "fixed-booking-id" })
	if res := postBooking(t, srv.Client(), srv.URL, `{"user_id":"u","session_id":"s1"}`, ""); res.status != http.StatusCreated {
		t.Fatalf("first booking: %d %v", res.status, res.body)
	}
	res := postBooking(t, srv.Client(), srv.URL, `{"user_id":"u","session_id":"s2"}`, "")
	if res.status != http.StatusConflict || res.body["error"] == "" {
		t.Fatalf("duplicate booking: %d %v; want 409 with an error", res.status, res.body)
	}
	if s := e.summary(); s.Pending != 1 {
		t.Fatalf("outbox %+v; the refused booking's event must not exist", s)
	}
	b := getItem(t, e.tables.Bookings, "booking_id", "fixed-booking-id")
	if s, _ := b["session_id"].(*types.AttributeValueMemberS); s == nil || s.Value != "s1" {
		t.Fatalf("stored booking %v was overwritten", b)
	}
}
