package relay

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/ddboutbox/ddboutbox/outbox"
)

// UpdateItemAPI is the part of the DynamoDB client marking needs.
type UpdateItemAPI interface {
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// TransactWriteItemsAPI is what marking events DELIVERED in transactions
// (see Config.MarkBatchSize) adds to UpdateItemAPI.
type TransactWriteItemsAPI interface {
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// markAPI is every write marking makes.
type markAPI interface {
	UpdateItemAPI
	TransactWriteItemsAPI
}

// maxLastError bounds last_error: it is for a human, and an endpoint's
// error body can be large.
const maxLastError = 1000

// marker moves outbox items out of PENDING. Every write is conditional on
// status = PENDING, so an event is never moved twice and a FAILED event is
// never overwritten by a late delivery of a duplicate.
type marker struct {
	db    markAPI
	table string
	ttl   time.Duration
	now   func() time.Time
	// policy retries each write until it lands (or ctx ends), so one slow
	// write does not resend a whole batch and dups stay exact.
	policy backoff
	onErr  func(error)
	// onUnmarkable is told of an event DynamoDB refuses to mark, which no
	// retry can change: it is left PENDING rather than stall its shard.
	onUnmarkable func(id string, err error)
}

// errUnmarkable means DynamoDB refused a mark as invalid: an item too
// close to 400 KB to take the mark's attributes (written before
// outbox.EventHeadroom, or not by outbox.Writer).
var errUnmarkable = errors.New("item cannot be marked")

// mark is one conditional update, applied to PENDING items only.
type mark struct {
	expr   string
	names  map[string]string
	values map[string]types.AttributeValue
	// stamp is the attribute the mark sets to its own time (":at", to the
	// nanosecond). An item that fails the condition with that very value
	// was moved by this mark, in an attempt whose answer was lost (a
	// timeout, a reset connection), not by another relay: it is not a
	// duplicate.
	stamp string
}

// landed reports whether item, returned by a failed condition, already
// carries this mark.
func (mk mark) landed(item map[string]types.AttributeValue) bool {
	got, ok := item[mk.stamp].(*types.AttributeValueMemberS)
	at, _ := mk.values[":at"].(*types.AttributeValueMemberS)
	return ok && at != nil && got.Value == at.Value
}

// delivered marks ids DELIVERED, p.width writes at a time, each an
// UpdateItem (p.batch 1) or a TransactWriteItems of up to p.batch events.
// It returns how many were already out of PENDING (delivered before: a
// duplicate) and how many were marked in transactions.
func (m *marker) delivered(ctx context.Context, ids []string, p pace) (dups, inTxn int, err error) {
	now := m.now().UTC()
	mk := m.mark("SET #status = :delivered, #dat = :at, #exp = :exp "+leavePending, outbox.AttrDeliveredAt,
		map[string]string{"#dat": outbox.AttrDeliveredAt, "#exp": outbox.AttrExpiresAt},
		map[string]types.AttributeValue{
			":delivered": &types.AttributeValueMemberS{Value: string(outbox.StatusDelivered)},
			":at":        &types.AttributeValueMemberS{Value: now.Format(time.RFC3339Nano)},
			":exp":       &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Add(m.ttl).Unix(), 10)},
		})
	// A transaction may not name an item twice; the second mark of an id
	// would find it DELIVERED, so it counts as a duplicate.
	unique := slices.Clone(ids)
	slices.Sort(unique)
	unique = slices.Compact(unique)
	var nDups, nTxn atomic.Int64
	nDups.Add(int64(len(ids) - len(unique)))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(p.width, 1))
	for chunk := range slices.Chunk(unique, max(p.batch, 1)) {
		g.Go(func() error {
			d, t, err := m.markAll(gctx, chunk, mk)
			nDups.Add(int64(d))
			nTxn.Add(int64(t))
			return err
		})
	}
	err = g.Wait()
	return int(nDups.Load()), int(nTxn.Load()), err
}

// markAll applies mk to ids in one transaction, retried until it lands.
// The ids the transaction was cancelled for are taken out before it is
// tried again: those not PENDING (duplicates, counted) and those refused as
// invalid (marked alone, which tells an unmarkable item from the rest). A
// request refused as a whole (its items add up to more than DynamoDB's
// 4 MB per transaction), or cancelled without a reason per item, is split
// in halves, down to single UpdateItems if need be.
func (m *marker) markAll(ctx context.Context, ids []string, mk mark) (dups, inTxn int, err error) {
	var alone []string
	split := false
	err = m.policy.retry(ctx, func(ctx context.Context) error {
		for len(ids) > 1 && !split {
			items := make([]types.TransactWriteItem, len(ids))
			for i, id := range ids {
				items[i] = types.TransactWriteItem{Update: m.update(id, mk)}
			}
			_, err := m.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
			var canceled *types.TransactionCanceledException
			switch {
			case err == nil:
				inTxn += len(ids)
				ids = nil
			case errors.As(err, &canceled) && len(canceled.CancellationReasons) == len(ids):
				var again []string
				for i, r := range canceled.CancellationReasons {
					switch aws.ToString(r.Code) {
					case "ConditionalCheckFailed":
						if mk.landed(r.Item) {
							inTxn++ // in an earlier attempt of this transaction
						} else {
							dups++
						}
					case "ValidationError":
						alone = append(alone, ids[i])
					default: // None (cancelled for another item), TransactionConflict, ThrottlingError
						again = append(again, ids[i])
					}
				}
				if len(again) == len(ids) {
					return fmt.Errorf("mark %d events: %w", len(ids), err)
				}
				ids = again
			case errors.As(err, &canceled) || apiErrorCode(err) == "ValidationException":
				split = true
			default:
				return fmt.Errorf("mark %d events: %w", len(ids), err)
			}
		}
		return nil
	}, m.onErr)
	if err != nil {
		return dups, inTxn, err
	}
	if split {
		half := len(ids) / 2
		for _, part := range [][]string{ids[:half], ids[half:]} {
			d, t, err := m.markAll(ctx, part, mk)
			dups, inTxn = dups+d, inTxn+t
			if err != nil {
				return dups, inTxn, err
			}
		}
	} else {
		alone = append(alone, ids...) // at most one is left
	}
	for _, id := range alone {
		dup, err := m.markOne(ctx, id, mk)
		if dup {
			dups++
		}
		if err != nil {
			return dups, inTxn, err
		}
	}
	return dups, inTxn, nil
}

// failed marks one event FAILED with the reason and the number of delivery
// attempts. An event already out of PENDING is left alone.
func (m *marker) failed(ctx context.Context, id string, cause error, attempts int) error {
	reason := cutUTF8(cause.Error(), maxLastError)
	_, err := m.markOne(ctx, id, m.mark("SET #status = :failed, #err = :err, #fat = :at, #attempts = :n "+leavePending, outbox.AttrFailedAt,
		map[string]string{"#err": outbox.AttrLastError, "#fat": outbox.AttrFailedAt, "#attempts": outbox.AttrAttempts},
		map[string]types.AttributeValue{
			":failed": &types.AttributeValueMemberS{Value: string(outbox.StatusFailed)},
			":err":    &types.AttributeValueMemberS{Value: reason},
			":at":     &types.AttributeValueMemberS{Value: m.now().UTC().Format(time.RFC3339Nano)},
			":n":      &types.AttributeValueMemberN{Value: strconv.Itoa(attempts)},
		}))
	return err
}

// cutUTF8 is s cut to at most n bytes without splitting a character: an
// endpoint's error body may be in any language.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// leavePending drops what only a PENDING event carries: its entry in the
// sparse pending index and the sweeper's claim.
const leavePending = "REMOVE #bucket, #claimer, #claimexp"

// mark builds a mark from its update expression, its stamp attribute and
// what it names besides the status and leavePending's attributes.
func (m *marker) mark(expr, stamp string, names map[string]string, values map[string]types.AttributeValue) mark {
	mk := mark{
		expr:  expr,
		stamp: stamp,
		names: map[string]string{
			"#status": outbox.AttrStatus, "#bucket": outbox.AttrPendingBucket,
			"#claimer": outbox.AttrClaimedBy, "#claimexp": outbox.AttrClaimExpiresAt,
		},
		values: map[string]types.AttributeValue{
			":pending": &types.AttributeValueMemberS{Value: string(outbox.StatusPending)},
		},
	}
	maps.Copy(mk.names, names)
	maps.Copy(mk.values, values)
	return mk
}

// update is mk applied to id if it is PENDING.
func (m *marker) update(id string, mk mark) *types.Update {
	return &types.Update{
		TableName:                 aws.String(m.table),
		Key:                       map[string]types.AttributeValue{outbox.AttrEventID: &types.AttributeValueMemberS{Value: id}},
		UpdateExpression:          aws.String(mk.expr),
		ConditionExpression:       aws.String("#status = :pending"),
		ExpressionAttributeNames:  mk.names,
		ExpressionAttributeValues: mk.values,
		// The item comes back only when the condition fails, for landed.
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
}

// markOne applies mk to id with UpdateItem, retried until it lands; dup
// reports that id was not PENDING (or no longer exists), unless mk itself
// moved it in an attempt whose answer was lost. An item DynamoDB
// refuses as invalid is reported as unmarkable and left as it is.
func (m *marker) markOne(ctx context.Context, id string, mk mark) (dup bool, err error) {
	u := m.update(id, mk)
	in := &dynamodb.UpdateItemInput{
		TableName: u.TableName, Key: u.Key, UpdateExpression: u.UpdateExpression,
		ConditionExpression: u.ConditionExpression, ExpressionAttributeNames: u.ExpressionAttributeNames,
		ExpressionAttributeValues:           u.ExpressionAttributeValues,
		ReturnValuesOnConditionCheckFailure: u.ReturnValuesOnConditionCheckFailure,
	}
	err = m.policy.retry(ctx, func(ctx context.Context) error {
		_, err := m.db.UpdateItem(ctx, in)
		var ccf *types.ConditionalCheckFailedException
		switch {
		case errors.As(err, &ccf):
			dup = !mk.landed(ccf.Item)
			return nil
		case apiErrorCode(err) == "ValidationException":
			if m.onUnmarkable != nil {
				m.onUnmarkable(id, fmt.Errorf("mark %s: %w: %w", id, errUnmarkable, err))
			}
			return nil
		case err != nil:
			return fmt.Errorf("mark %s: %w", id, err)
		}
		return nil
	}, m.onErr)
	return dup, err
}
