package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"
)

// Attributes the operator functions stamp on an item they move back to
// PENDING, so that its history shows why it was sent again.
const (
	AttrRedrivenAt = "redriven_at" // S, RFC 3339 UTC: set by Redrive
	AttrReplayedAt = "replayed_at" // S, RFC 3339 UTC: set by Replay
)

// PendingSince is when the outbox item last entered PENDING: the latest of
// its occurred_at and the redriven_at and replayed_at that Redrive and
// Replay stamp. An age limit such as the relay's max-record-age counts from
// here: an operator who puts an event back asks for it to be delivered
// now, so its age must not fail it again unsent. It is the zero time when
// none of the three is set, and an error when one is set but is not a
// time.
func PendingSince(item map[string]types.AttributeValue) (time.Time, error) {
	var at struct {
		OccurredAt time.Time `dynamodbav:"occurred_at"`
		RedrivenAt time.Time `dynamodbav:"redriven_at"`
		ReplayedAt time.Time `dynamodbav:"replayed_at"`
	}
	if err := attributevalue.UnmarshalMap(item, &at); err != nil {
		return time.Time{}, fmt.Errorf("outbox: read pending since: %w", err)
	}
	latest := at.OccurredAt
	for _, t := range []time.Time{at.RedrivenAt, at.ReplayedAt} {
		if t.After(latest) {
			latest = t
		}
	}
	return latest.UTC(), nil
}

// requeueConcurrency bounds the UpdateItem calls Redrive and Replay keep in
// flight: enough to replay a day of events in seconds, few enough not to
// throttle a provisioned table.
const requeueConcurrency = 16

// ListAPI is the part of the DynamoDB client List needs: Scan for a filter,
// Query for Filter.IDs (one key lookup per id instead of a table scan).
type ListAPI interface {
	ScanAPI
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// RequeueAPI is the part of the DynamoDB client Redrive and Replay need.
type RequeueAPI interface {
	ListAPI
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// Record is an outbox item as an operator sees it: the event and its
// delivery state. Times are UTC; a zero time means the attribute is absent.
//
// In JSON the event's fields come first (event_id, event_type,
// aggregate_type, aggregate_id, occurred_at, payload), then the fields
// below. The payload is embedded as raw JSON; a payload that is not valid
// JSON (a poison row) is rendered as a JSON string instead, so that the
// record can still be shown.
type Record struct {
	Event `json:"-"` // written by MarshalJSON under snake_case names

	Status Status `json:"status"`
	// Attempts is how many POSTs carried the event before the relay
	// marked it FAILED (0 when it could not be sent at all); a redrive
	// keeps it.
	Attempts int `json:"attempts"`
	// LastError is why the latest attempt failed; a redrive keeps it.
	LastError   string    `json:"last_error,omitempty"`
	FailedAt    time.Time `json:"failed_at,omitzero"`
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
	RedrivenAt  time.Time `json:"redriven_at,omitzero"`
	ReplayedAt  time.Time `json:"replayed_at,omitzero"`
}

// MarshalJSON renders r with snake_case names and the payload as raw JSON.
func (r Record) MarshalJSON() ([]byte, error) {
	// state has Record's fields but not this method, so encoding it does
	// not recurse; its Event is skipped by the "-" tag.
	type state Record
	payload := json.RawMessage(r.Payload)
	switch {
	case len(payload) == 0:
		payload = json.RawMessage("null")
	case !json.Valid(payload):
		s, err := json.Marshal(string(r.Payload))
		if err != nil {
			return nil, err
		}
		payload = s
	}
	return json.Marshal(struct {
		EventID       string          `json:"event_id"`
		EventType     string          `json:"event_type"`
		AggregateType string          `json:"aggregate_type"`
		AggregateID   string          `json:"aggregate_id"`
		OccurredAt    time.Time       `json:"occurred_at"`
		Payload       json.RawMessage `json:"payload"`
		state
	}{r.ID, r.Type, r.AggregateType, r.AggregateID, r.OccurredAt, payload, state(r)})
}

// Filter selects outbox items. Every set field must match; the zero Filter
// matches everything.
type Filter struct {
	// Status, if set, is the only status selected.
	Status Status
	// From and To bound occurred_at to [From, To); a zero bound is open.
	From, To time.Time
	// IDs, if set, selects only these events, each read by key rather than
	// by scanning the table. Unknown ids are ignored.
	IDs []string
	// DeliveredAfter, if set, selects events whose delivered_at is strictly
	// later: what a follower of deliveries has not seen yet.
	DeliveredAfter time.Time
}

func (f Filter) validate() error {
	switch f.Status {
	case "", StatusPending, StatusDelivered, StatusFailed:
	default:
		return &ValidationError{Field: AttrStatus, Reason: fmt.Sprintf("%q is not PENDING, DELIVERED or FAILED", f.Status)}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return &ValidationError{Field: AttrOccurredAt, Reason: fmt.Sprintf("range from %s to %s is empty", f.From.UTC().Format(time.RFC3339Nano), f.To.UTC().Format(time.RFC3339Nano))}
	}
	for _, id := range f.IDs {
		if id == "" {
			return &ValidationError{Field: AttrEventID, Reason: "an id to select must not be empty"}
		}
	}
	return nil
}

// match is the exact test of r against f's conditions, on decoded times.
func (f Filter) match(r Record) bool {
	return (f.Status == "" || r.Status == f.Status) &&
		(f.From.IsZero() || !r.OccurredAt.Before(f.From)) &&
		(f.To.IsZero() || r.OccurredAt.Before(f.To)) &&
		(f.DeliveredAfter.IsZero() || r.DeliveredAt.After(f.DeliveredAfter))
}

// timeSlack widens the time bounds sent to DynamoDB, which compares the
// stored RFC 3339 strings byte by byte. Items written before TimeLayout
// have time.RFC3339Nano, which drops trailing zeros, so within one second
// their order is wrong ("…05Z" sorts after "…05.5Z"); a second apart it is
// right. The server filter only has to keep every match (it saves reading
// the rest); match then decides exactly.
const timeSlack = time.Second

// expr builds expression placeholders, declaring only the names and values
// an expression uses: DynamoDB rejects unused ones.
type expr struct {
	names  map[string]string
	values map[string]types.AttributeValue
}

func (e *expr) name(attr string) string {
	for k, v := range e.names {
		if v == attr {
			return k
		}
	}
	if e.names == nil {
		e.names = map[string]string{}
	}
	k := "#n" + strconv.Itoa(len(e.names))
	e.names[k] = attr
	return k
}

func (e *expr) value(v types.AttributeValue) string {
	if e.values == nil {
		e.values = map[string]types.AttributeValue{}
	}
	k := ":v" + strconv.Itoa(len(e.values))
	e.values[k] = v
	return k
}

func (e *expr) str(s string) string { return e.value(&types.AttributeValueMemberS{Value: s}) }

func (e *expr) time(t time.Time) string { return e.str(t.UTC().Format(time.RFC3339Nano)) }

// filter returns f's server-side FilterExpression, nil if f has none.
func (e *expr) filter(f Filter) *string {
	var conds []string
	if f.Status != "" {
		conds = append(conds, e.name(AttrStatus)+" = "+e.str(string(f.Status)))
	}
	if !f.From.IsZero() {
		conds = append(conds, e.name(AttrOccurredAt)+" >= "+e.time(f.From.Add(-timeSlack)))
	}
	if !f.To.IsZero() {
		conds = append(conds, e.name(AttrOccurredAt)+" < "+e.time(f.To.Add(timeSlack)))
	}
	if !f.DeliveredAfter.IsZero() {
		conds = append(conds, e.name(AttrDeliveredAt)+" > "+e.time(f.DeliveredAfter.Add(-timeSlack)))
	}
	if len(conds) == 0 {
		return nil
	}
	return aws.String(strings.Join(conds, " AND "))
}

// keysOnly projects what Redrive and Replay need to select and move an
// item (and what match reads), leaving out the payload.
func (e *expr) keysOnly() *string {
	return aws.String(strings.Join([]string{
		e.name(AttrEventID), e.name(AttrStatus), e.name(AttrOccurredAt), e.name(AttrDeliveredAt),
	}, ", "))
}

// stored is the shape an operator reads: what Item writes, plus what the
// relay and the admin functions add.
type stored struct {
	item
	Attempts    int       `dynamodbav:"attempts"`
	LastError   string    `dynamodbav:"last_error"`
	FailedAt    time.Time `dynamodbav:"failed_at"`
	DeliveredAt time.Time `dynamodbav:"delivered_at"`
	RedrivenAt  time.Time `dynamodbav:"redriven_at"`
	ReplayedAt  time.Time `dynamodbav:"replayed_at"`
}

func decodeRecord(av map[string]types.AttributeValue) (Record, error) {
	var s stored
	if err := attributevalue.UnmarshalMap(av, &s); err != nil {
		id := "?"
		if v, ok := av[AttrEventID].(*types.AttributeValueMemberS); ok {
			id = v.Value
		}
		return Record{}, fmt.Errorf("decode item %s: %w", id, err)
	}
	var payload json.RawMessage
	if s.Payload != "" {
		payload = json.RawMessage(s.Payload)
	}
	return Record{
		Event: Event{
			ID:            s.EventID,
			Type:          s.EventType,
			AggregateType: s.AggregateType,
			AggregateID:   s.AggregateID,
			OccurredAt:    s.OccurredAt.UTC(),
			Payload:       payload,
		},
		Status:      s.Status,
		Attempts:    s.Attempts,
		LastError:   s.LastError,
		FailedAt:    s.FailedAt.UTC(),
		DeliveredAt: s.DeliveredAt.UTC(),
		RedrivenAt:  s.RedrivenAt.UTC(),
		ReplayedAt:  s.ReplayedAt.UTC(),
	}, nil
}

// each calls fn with the records matching f, one page at a time, so that
// a caller acting on them holds one page (at most 1 MB read) in memory.
// keysOnly leaves the payload and history out of the records.
func each(ctx context.Context, db ListAPI, table string, f Filter, keysOnly bool, fn func([]Record) error) error {
	if err := f.validate(); err != nil {
		return err
	}
	page := func(items []map[string]types.AttributeValue) error {
		recs := make([]Record, 0, len(items))
		for _, av := range items {
			r, err := decodeRecord(av)
			if err != nil {
				return err
			}
			if f.match(r) {
				recs = append(recs, r)
			}
		}
		if len(recs) == 0 {
			return nil
		}
		return fn(recs)
	}
	if len(f.IDs) > 0 {
		return eachID(ctx, db, table, f, keysOnly, page)
	}
	var e expr
	in := &dynamodb.ScanInput{
		TableName:        aws.String(table),
		FilterExpression: e.filter(f),
		// Consistent: an operator acting on what they just listed must
		// not miss a write from a second ago.
		ConsistentRead: aws.Bool(true),
	}
	if keysOnly {
		in.ProjectionExpression = e.keysOnly()
	}
	in.ExpressionAttributeNames, in.ExpressionAttributeValues = e.names, e.values
	p := dynamodb.NewScanPaginator(db, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("scan %s: %w", table, err)
		}
		if err := page(out.Items); err != nil {
			return err
		}
	}
	return nil
}

// eachID reads each of f.IDs by key, once even if listed twice.
func eachID(ctx context.Context, db ListAPI, table string, f Filter, keysOnly bool, page func([]map[string]types.AttributeValue) error) error {
	ids := slices.Clone(f.IDs)
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		var e expr
		in := &dynamodb.QueryInput{
			TableName:              aws.String(table),
			KeyConditionExpression: aws.String(e.name(AttrEventID) + " = " + e.str(id)),
			FilterExpression:       e.filter(f),
			ConsistentRead:         aws.Bool(true),
		}
		if keysOnly {
			in.ProjectionExpression = e.keysOnly()
		}
		in.ExpressionAttributeNames, in.ExpressionAttributeValues = e.names, e.values
		out, err := db.Query(ctx, in)
		if err != nil {
			return fmt.Errorf("get %s: %w", id, err)
		}
		if err := page(out.Items); err != nil {
			return err
		}
	}
	return nil
}

// List returns the outbox items matching f, sorted by event_id, which is
// creation order (UUIDv7). Without f.IDs it scans the whole table (with a
// consistent read): it is for operators and tests, not for a hot path.
// An invalid filter is an error wrapping a *ValidationError (errors.As).
func List(ctx context.Context, db ListAPI, table string, f Filter) ([]Record, error) {
	var out []Record
	err := each(ctx, db, table, f, false, func(recs []Record) error {
		out = append(out, recs...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", table, err)
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Redrive moves the FAILED events matching f back to PENDING, for the relay
// to deliver again: typically after the endpoint or the cause of the
// failure was fixed (a malformed payload fails again). f.Status must be
// empty or FAILED; the zero Filter selects every FAILED event.
//
// Each event gets status PENDING, its pending_bucket (which puts it back in
// PendingIndex) and redriven_at; failed_at is removed, last_error and
// attempts are kept as history. The update is conditional on the event
// still being FAILED: one that changed meanwhile is skipped, not an error.
//
// The relay ignores the update's stream record (a MODIFY); its sweeper
// finds the event in PendingIndex and delivers it within one sweep
// interval. Delivery is at-least-once: a redriven event may reach the
// endpoint more than once, and receivers dedupe by event_id.
//
// Redrive returns how many events it moved, also when it fails part way.
func Redrive(ctx context.Context, db RequeueAPI, table string, f Filter) (int, error) {
	if f.Status != "" && f.Status != StatusFailed {
		return 0, &ValidationError{Field: AttrStatus, Reason: "redrive moves only FAILED events"}
	}
	f.Status = StatusFailed
	return requeue(ctx, db, table, f, "redrive", AttrRedrivenAt, AttrFailedAt)
}

// Replay re-sends the DELIVERED events that occurred in [f.From, f.To), for
// example to fill a dashboard rebuilt from scratch. Both bounds are
// required (a *ValidationError otherwise), so that a whole table is never
// re-sent by accident; f.Status must be empty or DELIVERED, and f.IDs
// narrows the selection further.
//
// Each event gets status PENDING, its pending_bucket and replayed_at;
// delivered_at and expires_at are removed, so TTL does not delete an event
// while it waits (the relay sets both again on delivery). The update is
// conditional on the event still being DELIVERED. Only events still in
// the table can be replayed: delivered events expire after the relay's
// delivered TTL (default 7 days).
//
// As with Redrive, the relay's sweeper delivers the events within one
// sweep interval, at least once: receivers dedupe by event_id.
//
// Replay returns how many events it moved, also when it fails part way.
func Replay(ctx context.Context, db RequeueAPI, table string, f Filter) (int, error) {
	if f.From.IsZero() || f.To.IsZero() {
		return 0, &ValidationError{Field: AttrOccurredAt, Reason: "replay needs both ends of the time range"}
	}
	if f.Status != "" && f.Status != StatusDelivered {
		return 0, &ValidationError{Field: AttrStatus, Reason: "replay moves only DELIVERED events"}
	}
	f.Status = StatusDelivered
	return requeue(ctx, db, table, f, "replay", AttrReplayedAt, AttrDeliveredAt, AttrExpiresAt)
}

// requeue moves the items matching f (whose Status is the state they
// leave) to PENDING, stamping the attribute stamp and removing remove.
func requeue(ctx context.Context, db RequeueAPI, table string, f Filter, op, stamp string, remove ...string) (int, error) {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var (
		moved atomic.Int64
		// itemFailed tells an error of one item's update, already named
		// after it, from one of the scan.
		itemFailed bool
	)
	err := each(ctx, db, table, f, true, func(recs []Record) error {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(requeueConcurrency)
		for _, r := range recs {
			g.Go(func() error {
				ok, err := move(gctx, db, table, r.ID, f.Status, now, stamp, remove)
				if err != nil {
					return fmt.Errorf("%s %s: %w", op, r.ID, err)
				}
				if ok {
					moved.Add(1)
				}
				return nil
			})
		}
		err := g.Wait()
		itemFailed = err != nil
		return err
	})
	if err != nil && !itemFailed {
		err = fmt.Errorf("%s: %w", op, err)
	}
	return int(moved.Load()), err
}

// move sets one item from status from to PENDING; ok is false when the
// item was no longer in that status (or no longer exists).
func move(ctx context.Context, db RequeueAPI, table, id string, from Status, now, stamp string, remove []string) (ok bool, err error) {
	var e expr
	status := e.name(AttrStatus)
	update := fmt.Sprintf("SET %s = %s, %s = %s, %s = %s", status, e.str(string(StatusPending)),
		e.name(AttrPendingBucket), e.str(PendingBucket(id)), e.name(stamp), e.str(now))
	removed := make([]string, len(remove))
	for i, a := range remove {
		removed[i] = e.name(a)
	}
	update += " REMOVE " + strings.Join(removed, ", ")
	_, err = db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(table),
		Key:                       map[string]types.AttributeValue{AttrEventID: &types.AttributeValueMemberS{Value: id}},
		UpdateExpression:          aws.String(update),
		ConditionExpression:       aws.String(status + " = " + e.str(string(from))),
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	return err == nil, err
}
