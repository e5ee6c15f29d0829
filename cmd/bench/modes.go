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
	ModePutOnly  = "put-only"
	ModeTxnFloor = "txn-floor"
	// ModeTxnFloorMarks is txn-floor plus the relay's marking write per
	// event, off the request path: the floor of any relay that records
	// delivery in the outbox table, on the same DynamoDB.
	ModeTxnFloorMarks = "txn-floor-marks"
	ModeSyncDualWrite = "sync-dual-write"
	ModeMemoryQueue   = "memory-queue"
	ModeOutbox        = "outbox"
	// ModeBookingHTTP is outbox behind HTTP: cmd/booking as a separate
	// process, called over loopback, with the relay delivering.
	ModeBookingHTTP = "booking-http"
)

// AllModes lists every mode in its default order.
var AllModes = []string{ModePutOnly, ModeTxnFloor, ModeTxnFloorMarks, ModeSyncDualWrite, ModeMemoryQueue, ModeOutbox, ModeBookingHTTP}

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
// skipped is the Writer's validation and error classification. With
// marks, each committed event is then queued to be marked DELIVERED.
func txnFloorOp(db *countingDB, bookingsTable, floorOutbox string, marks *markQueue) bookingOp {
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
		if err == nil && marks != nil {
			marks.push(ev.ID)
		}
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

// markQueue is txn-floor-marks' marking: one worker marks each committed
// event DELIVERED with the UpdateItem the relay sends for an event
// (relay/marker.go), one write at a time, in commit order, as soon as it
// is queued. No stream is read and nothing is POSTed, so what it adds to
// txn-floor is the marking write alone. One at a time is the relay's pace
// while it keeps up, and the gentlest on the bookings: when it cannot keep
// up the queue grows (it is unbounded, so a booking never waits for it)
// and the marks left when the bookings end are reported as drain_s, which
// makes its booking latency a lower bound for marking every event.
type markQueue struct {
	db    *countingDB
	table string
	ttl   time.Duration

	mu     sync.Mutex
	wake   *sync.Cond
	ids    []string
	busy   bool // the worker is marking an id taken off ids
	closed bool
	marked int // events moved from PENDING to DELIVERED
	done   chan struct{}
}

func startMarkQueue(db *countingDB, table string) *markQueue {
	q := &markQueue{db: db, table: table, ttl: relay.Config{}.WithDefaults().DeliveredTTL, done: make(chan struct{})}
	q.wake = sync.NewCond(&q.mu)
	go q.run()
	return q
}

func (q *markQueue) push(id string) {
	q.mu.Lock()
	q.ids = append(q.ids, id)
	q.mu.Unlock()
	q.wake.Signal()
}

func (q *markQueue) run() {
	defer close(q.done)
	for {
		q.mu.Lock()
		q.busy = false
		for len(q.ids) == 0 && !q.closed {
			q.wake.Wait()
		}
		if len(q.ids) == 0 {
			q.mu.Unlock()
			return
		}
		id := q.ids[0]
		q.ids = q.ids[1:]
		q.busy = true
		q.mu.Unlock()
		if err := q.mark(id); err == nil {
			q.mu.Lock()
			q.marked++
			q.mu.Unlock()
		}
	}
}

func (q *markQueue) mark(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := time.Now().UTC()
	_, err := q.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(q.table),
		Key:                 map[string]types.AttributeValue{outbox.AttrEventID: &types.AttributeValueMemberS{Value: id}},
		UpdateExpression:    aws.String("SET #status = :delivered, #dat = :at, #exp = :exp REMOVE #bucket, #claimer, #claimexp"),
		ConditionExpression: aws.String("#status = :pending"),
		ExpressionAttributeNames: map[string]string{
			"#status": outbox.AttrStatus, "#dat": outbox.AttrDeliveredAt, "#exp": outbox.AttrExpiresAt,
			"#bucket": outbox.AttrPendingBucket, "#claimer": outbox.AttrClaimedBy, "#claimexp": outbox.AttrClaimExpiresAt,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pending":   &types.AttributeValueMemberS{Value: string(outbox.StatusPending)},
			":delivered": &types.AttributeValueMemberS{Value: string(outbox.StatusDelivered)},
			":at":        &types.AttributeValueMemberS{Value: now.Format(time.RFC3339Nano)},
			":exp":       &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Add(q.ttl).Unix(), 10)},
		},
	})
	return err
}

// count is how many events were marked so far.
func (q *markQueue) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.marked
}

// wait returns once every id pushed so far is marked (or failed).
func (q *markQueue) wait(ctx context.Context) error {
	for {
		q.mu.Lock()
		idle := len(q.ids) == 0 && !q.busy
		q.mu.Unlock()
		if idle {
			return nil
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
}

// close marks what is queued and stops the worker.
func (q *markQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wake.Signal()
	<-q.done
}
