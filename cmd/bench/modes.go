package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/uuid"

	"github.com/ddboutbox/ddboutbox/cmd/booking/bookings"
	"github.com/ddboutbox/ddboutbox/outbox"
	"github.com/ddboutbox/ddboutbox/relay"
)

// The modes, in their default order.
const (
	ModePutOnly       = "put-only"
	ModeTxnFloor      = "txn-floor"
	ModeSyncDualWrite = "sync-dual-write"
	ModeMemoryQueue   = "memory-queue"
	ModeOutbox        = "outbox"
	// ModeBookingHTTP is outbox behind HTTP: cmd/booking as a separate
	// process, called over loopback, with the relay delivering.
	ModeBookingHTTP = "booking-http"
)

// AllModes lists every mode in its default order.
var AllModes = []string{ModePutOnly, ModeTxnFloor, ModeSyncDualWrite, ModeMemoryQueue, ModeOutbox, ModeBookingHTTP}

// hasAnalytics says whether a mode delivers events to the endpoint.
func hasAnalytics(mode string) bool {
	return mode == ModeSyncDualWrite || mode == ModeMemoryQueue || usesRelay(mode)
}

// usesRelay says whether the relay delivers a mode's events.
func usesRelay(mode string) bool { return mode == ModeOutbox || mode == ModeBookingHTTP }

// memoryQueueFlush is how often the memory-queue worker POSTs its queue.
const memoryQueueFlush = 2 * time.Second

// maxRowsPerPost is the endpoint's rows-per-request cap (Power BI's).
const maxRowsPerPost = 10_000

// commit is the outcome of one booking.
type commit struct {
	// key is set when the booking committed and has an event to deliver:
	// its event_id, or aggregateKey of the booking id; committedAt is when
	// the write was acknowledged.
	key         string
	committedAt time.Time
	// analyticsErr is a failure to hand the event on after the booking
	// committed (sync-dual-write's POST).
	analyticsErr error
}

// bookingOp makes booking number i the way a mode's handler would.
type bookingOp func(ctx context.Context, i int) (commit, error)

// newBookingWrite is booking i's conditional Put and, with withEvent, its
// BookingReserved event, built by the same functions cmd/booking uses.
func newBookingWrite(table string, i int, withEvent bool) (*types.Put, outbox.Event, error) {
	now := time.Now().UTC()
	b := bookings.Booking{
		BookingID: uuid.Must(uuid.NewV7()).String(),
		UserID:    "u-" + strconv.Itoa(i%1000),
		SessionID: "s-" + strconv.Itoa(i%50),
		Status:    bookings.StatusReserved,
		CreatedAt: now.Format(time.RFC3339Nano),
	}
	put, err := bookings.PutNew(table, b)
	if err != nil || !withEvent {
		return put, outbox.Event{}, err
	}
	ev, err := bookings.NewReservedEvent(b, now)
	return put, ev, err
}

func putItem(ctx context.Context, db *countingDB, p *types.Put) error {
	_, err := db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: p.TableName, Item: p.Item,
		ConditionExpression: p.ConditionExpression, ExpressionAttributeNames: p.ExpressionAttributeNames,
	})
	return err
}

// putOnlyOp: the booking PutItem alone.
func putOnlyOp(db *countingDB, bookingsTable string) bookingOp {
	return func(ctx context.Context, i int) (commit, error) {
		p, _, err := newBookingWrite(bookingsTable, i, false)
		if err != nil {
			return commit{}, err
		}
		return commit{}, putItem(ctx, db, p)
	}
}

// txnFloorOp: booking + outbox-shaped item in one raw TransactWriteItems,
// straight from the SDK, into an outbox-shaped table no relay reads. The
// item and its condition are exactly what outbox.Writer sends; what is
// skipped is the Writer's validation and error classification.
func txnFloorOp(db *countingDB, bookingsTable, floorOutbox string) bookingOp {
	return func(ctx context.Context, i int) (commit, error) {
		p, ev, err := newBookingWrite(bookingsTable, i, true)
		if err != nil {
			return commit{}, err
		}
		item, err := outbox.Item(ev)
		if err != nil {
			return commit{}, err
		}
		_, err = db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Put: p},
			{Put: &types.Put{
				TableName:                           aws.String(floorOutbox),
				Item:                                item,
				ConditionExpression:                 aws.String("attribute_not_exists(#id)"),
				ExpressionAttributeNames:            map[string]string{"#id": outbox.AttrEventID},
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
			}},
		}})
		return commit{}, err
	}
}

// putBooking is what sync-dual-write and memory-queue share: the booking's
// PutItem, and the row its analytics event would be.
func putBooking(ctx context.Context, db *countingDB, bookingsTable string, i int) (commit, []byte, error) {
	p, ev, err := newBookingWrite(bookingsTable, i, true)
	if err != nil {
		return commit{}, nil, err
	}
	row, err := relay.EncodeRow(ev)
	if err != nil {
		return commit{}, nil, err
	}
	if err := putItem(ctx, db, p); err != nil {
		return commit{}, nil, err
	}
	return commit{key: ev.ID, committedAt: time.Now()}, row, nil
}

// syncDualWriteOp: PutItem, then POST the one row to the endpoint inside
// the request. A failed POST leaves a committed booking without its event.
func syncDualWriteOp(db *countingDB, bookingsTable string, hc *http.Client, sinkURL string) bookingOp {
	return func(ctx context.Context, i int) (commit, error) {
		c, row, err := putBooking(ctx, db, bookingsTable, i)
		if err != nil {
			return commit{}, err
		}
		c.analyticsErr = post(ctx, hc, sinkURL, jsonArray([][]byte{row}))
		return c, nil
	}
}

// memoryQueueOp: PutItem, then push the row onto an in-process queue.
func memoryQueueOp(db *countingDB, bookingsTable string, q *memQueue) bookingOp {
	return func(ctx context.Context, i int) (commit, error) {
		c, row, err := putBooking(ctx, db, bookingsTable, i)
		if err != nil {
			return commit{}, err
		}
		q.push(row)
		return c, nil
	}
}

// outboxOp: ddboutbox, exactly as cmd/booking's handler calls it.
func outboxOp(w *outbox.Writer, bookingsTable string) bookingOp {
	return func(ctx context.Context, i int) (commit, error) {
		p, ev, err := newBookingWrite(bookingsTable, i, true)
		if err != nil {
			return commit{}, err
		}
		if err := w.Commit(ctx, outbox.Tx{
			Writes: []types.TransactWriteItem{{Put: p}},
			Events: []outbox.Event{ev},
		}); err != nil {
			return commit{}, err
		}
		return commit{key: ev.ID, committedAt: time.Now()}, nil
	}
}

// bookingHTTPOp: POST /bookings to cmd/booking, as a client would.
func bookingHTTPOp(hc *http.Client, baseURL string) bookingOp {
	return func(ctx context.Context, i int) (commit, error) {
		body := fmt.Sprintf(`{"user_id":"u-%d","session_id":"s-%d"}`, i%1000, i%50)
		resp, err := postJSON(ctx, hc, baseURL+"/bookings", []byte(body))
		if err != nil {
			return commit{}, err
		}
		var created struct {
			BookingID string `json:"booking_id"`
		}
		if err := json.Unmarshal(resp, &created); err != nil || created.BookingID == "" {
			return commit{}, fmt.Errorf("booking service answered %q", resp)
		}
		return commit{key: aggregateKey(created.BookingID), committedAt: time.Now()}, nil
	}
}

// jsonArray is rows, each a JSON object, as one JSON array.
func jsonArray(rows [][]byte) []byte {
	return append(append([]byte{'['}, bytes.Join(rows, []byte{','})...), ']')
}

// post sends body to url and requires a 2xx answer.
func post(ctx context.Context, hc *http.Client, url string, body []byte) error {
	_, err := postJSON(ctx, hc, url, body)
	return err
}

// postJSON sends body to url, requires a 2xx answer and returns its body.
func postJSON(ctx context.Context, hc *http.Client, url string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return b, fmt.Errorf("%s answered %d", url, resp.StatusCode)
	}
	return b, nil
}

// memQueue is the quick fix: an unbounded in-memory queue that a
// background worker flushes every memoryQueueFlush as one POST (split at
// the endpoint's row cap). A failed POST drops its rows, as the usual quick
// fix does; so does a crash, which is the point of comparing it.
type memQueue struct {
	hc  *http.Client
	url string

	mu   sync.Mutex
	rows [][]byte

	posts, dropped int
	stop           chan struct{}
	done           chan struct{}
}

func startMemQueue(hc *http.Client, url string) *memQueue {
	q := &memQueue{hc: hc, url: url, stop: make(chan struct{}), done: make(chan struct{})}
	go q.run()
	return q
}

func (q *memQueue) push(row []byte) {
	q.mu.Lock()
	q.rows = append(q.rows, row)
	q.mu.Unlock()
}

func (q *memQueue) run() {
	defer close(q.done)
	t := time.NewTicker(memoryQueueFlush)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			q.flush()
		case <-q.stop:
			q.flush()
			return
		}
	}
}

func (q *memQueue) flush() {
	q.mu.Lock()
	rows := q.rows
	q.rows = nil
	q.mu.Unlock()
	for len(rows) > 0 {
		n := min(len(rows), maxRowsPerPost)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := post(ctx, q.hc, q.url, jsonArray(rows[:n]))
		cancel()
		q.posts++
		if err != nil {
			q.dropped += n
		}
		rows = rows[n:]
	}
}

// close flushes what is queued and stops the worker. It returns the POSTs
// made and the rows dropped on failed POSTs.
func (q *memQueue) close() (posts, dropped int) {
	close(q.stop)
	<-q.done
	return q.posts, q.dropped
}
