package relay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

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

// maxLastError bounds last_error: it is for a human, and an endpoint's
// error body can be large.
const maxLastError = 1000

// marker moves outbox items out of PENDING. Every write is conditional on
// status = PENDING, so an event is never moved twice and a FAILED event is
// never overwritten by a late delivery of a duplicate.
type marker struct {
	db          UpdateItemAPI
	table       string
	ttl         time.Duration
	concurrency int
	now         func() time.Time
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

// delivered marks ids DELIVERED, with several writes in flight. It returns
// how many were already out of PENDING (delivered before: a duplicate).
func (m *marker) delivered(ctx context.Context, ids []string) (dups int, err error) {
	now := m.now().UTC()
	values := map[string]types.AttributeValue{
		":pending":   &types.AttributeValueMemberS{Value: string(outbox.StatusPending)},
		":delivered": &types.AttributeValueMemberS{Value: string(outbox.StatusDelivered)},
		":at":        &types.AttributeValueMemberS{Value: now.Format(time.RFC3339Nano)},
		":exp":       &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Add(m.ttl).Unix(), 10)},
	}
	var n atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.concurrency)
	for _, id := range ids {
		g.Go(func() error {
			return m.policy.retry(gctx, func(ctx context.Context) error {
				dup, err := m.update(ctx, id, "SET #status = :delivered, #dat = :at, #exp = :exp "+leavePending,
					map[string]string{"#dat": outbox.AttrDeliveredAt, "#exp": outbox.AttrExpiresAt}, values)
				if dup {
					n.Add(1)
				}
				return m.permanent(id, err)
			}, m.onErr)
		})
	}
	err = g.Wait()
	return int(n.Load()), err
}

// failed marks one event FAILED with the reason and the number of delivery
// attempts. An event already out of PENDING is left alone.
func (m *marker) failed(ctx context.Context, id string, cause error, attempts int) error {
	reason := cause.Error()
	if len(reason) > maxLastError {
		reason = reason[:maxLastError]
	}
	values := map[string]types.AttributeValue{
		":pending": &types.AttributeValueMemberS{Value: string(outbox.StatusPending)},
		":failed":  &types.AttributeValueMemberS{Value: string(outbox.StatusFailed)},
		":err":     &types.AttributeValueMemberS{Value: reason},
		":at":      &types.AttributeValueMemberS{Value: m.now().UTC().Format(time.RFC3339Nano)},
		":n":       &types.AttributeValueMemberN{Value: strconv.Itoa(attempts)},
	}
	return m.policy.retry(ctx, func(ctx context.Context) error {
		_, err := m.update(ctx, id, "SET #status = :failed, #err = :err, #fat = :at, #attempts = :n "+leavePending,
			map[string]string{"#err": outbox.AttrLastError, "#fat": outbox.AttrFailedAt, "#attempts": outbox.AttrAttempts}, values)
		return m.permanent(id, err)
	}, m.onErr)
}

// leavePending drops what only a PENDING event carries: its entry in the
// sparse pending index and the sweeper's claim.
const leavePending = "REMOVE #bucket, #claimer, #claimexp"

// update applies expr to a PENDING item; dup reports that it was not
// PENDING (or no longer exists).
func (m *marker) update(ctx context.Context, id, expr string, names map[string]string, values map[string]types.AttributeValue) (dup bool, err error) {
	allNames := map[string]string{
		"#status": outbox.AttrStatus, "#bucket": outbox.AttrPendingBucket,
		"#claimer": outbox.AttrClaimedBy, "#claimexp": outbox.AttrClaimExpiresAt,
	}
	for k, v := range names {
		allNames[k] = v
	}
	_, err = m.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(m.table),
		Key:                       map[string]types.AttributeValue{outbox.AttrEventID: &types.AttributeValueMemberS{Value: id}},
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String("#status = :pending"),
		ExpressionAttributeNames:  allNames,
		ExpressionAttributeValues: values,
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		return true, nil
	case apiErrorCode(err) == "ValidationException":
		return false, fmt.Errorf("mark %s: %w: %w", id, errUnmarkable, err)
	case err != nil:
		return false, fmt.Errorf("mark %s: %w", id, err)
	}
	return false, nil
}

// permanent reports an unmarkable event and ends its retries; any other
// error is returned to be retried.
func (m *marker) permanent(id string, err error) error {
	if errors.Is(err, errUnmarkable) {
		if m.onUnmarkable != nil {
			m.onUnmarkable(id, err)
		}
		return nil
	}
	return err
}
