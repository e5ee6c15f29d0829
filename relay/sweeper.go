package relay

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/ddboutbox/ddboutbox/outbox"
)

// The sweeper is what no stream consumer does on its own: DynamoDB Streams
// keep records for 24 hours, and a relay can miss records (a longer outage,
// trimmed data, a stream disabled and re-enabled with a new ARN, a redrive,
// a bug). The outbox table is the source of truth, so the sweeper queries
// its sparse pending index for events PENDING for longer than SweepAfter
// that this relay's stream readers have left behind (frontiers) and that
// are not in its pipeline already (inPipeline), claims
// each with a conditional write so that two relays do not both send it,
// and feeds it through the same batch, deliver and mark path.

// maxSweptPerRound bounds one sweep's memory; the next sweep goes on.
const maxSweptPerRound = 10000

// oldestPendingEvery is how often the oldest pending event is measured
// while the sweeper is off.
const oldestPendingEvery = time.Minute

// sweepLoop sweeps every SweepInterval and measures the oldest pending
// event at start and after each round. With the sweeper off the gauge is
// still kept, every oldestPendingEvery: it is how an operator sees that
// delivery has stalled.
func (r *Relay) sweepLoop(ctx context.Context, arn string, out chan<- record) {
	sweeping := r.cfg.SweepInterval >= 0
	every := r.cfg.SweepInterval
	if !sweeping {
		every = oldestPendingEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	r.measureOldestPending(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if sweeping {
			n, err := r.sweep(ctx, arn, out)
			if err != nil && ctx.Err() == nil {
				r.log.Warn("sweep failed", "err", err)
			}
			if n > 0 {
				r.log.Info("sweeper found pending events the stream path missed", "events", n)
			}
		}
		r.measureOldestPending(ctx)
	}
}

func (r *Relay) measureOldestPending(ctx context.Context) {
	if age, err := r.oldestPendingAge(ctx); err == nil {
		r.m.oldestPending.Set(age.Seconds())
	} else if ctx.Err() == nil {
		r.log.Warn("measuring the oldest pending event failed", "err", err)
	}
}

// sweep claims PENDING events older than SweepAfter, and older than what
// the stream path of this relay and of the others on stream arn is still
// going to deliver (see sweepCutoff), and sends them to out.
func (r *Relay) sweep(ctx context.Context, arn string, out chan<- record) (int, error) {
	now := time.Now()
	lag := r.frontiers.maxLag(now)
	for _, s := range append([]leftStream{{arn: arn}}, r.leftStreams...) {
		if s.arn != arn && now.Sub(s.at) > streamRetention {
			continue
		}
		leases, err := r.leases.List(ctx, s.arn)
		if err != nil {
			return 0, err
		}
		unlisted := r.unlisted(arn)
		if s.arn != arn {
			unlisted = leftStreamShard
		}
		lag = max(lag, peersLag(leases, r.cfg.Owner, now, unlisted))
	}
	cutoff := outbox.FormatTime(sweepCutoff(now, r.cfg.SweepAfter, lag))
	claimed := 0
	for _, bucket := range outbox.AllPendingBuckets() {
		p := dynamodb.NewQueryPaginator(r.db, &dynamodb.QueryInput{
			TableName:              aws.String(r.cfg.Tables.Outbox),
			IndexName:              aws.String(outbox.PendingIndex),
			KeyConditionExpression: aws.String("#b = :b AND #o < :cutoff"),
			ExpressionAttributeNames: map[string]string{
				"#b": outbox.AttrPendingBucket, "#o": outbox.AttrOccurredAt,
			},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":b":      &types.AttributeValueMemberS{Value: bucket},
				":cutoff": &types.AttributeValueMemberS{Value: cutoff},
			},
		})
		for p.HasMorePages() && claimed < maxSweptPerRound {
			page, err := p.NextPage(ctx)
			if err != nil {
				return claimed, fmt.Errorf("query %s: %w", outbox.PendingIndex, err)
			}
			for _, key := range page.Items {
				id, _ := key[outbox.AttrEventID].(*types.AttributeValueMemberS)
				if id == nil {
					continue
				}
				if _, busy := r.inPipeline.Load(id.Value); busy {
					continue // read from the stream or swept, not yet settled
				}
				item, err := r.claim(ctx, id.Value)
				if err != nil {
					return claimed, err
				}
				if item == nil {
					continue
				}
				rec := classifyItem(item, r.rules())
				if rec.eventID == "" {
					continue
				}
				r.inPipeline.Store(rec.eventID, swept{})
				select {
				case out <- rec:
					claimed++
					r.n.swept.Add(1)
					r.m.sweeperFound.Inc()
				case <-ctx.Done():
					r.inPipeline.Delete(rec.eventID)
					return claimed, ctx.Err()
				}
			}
		}
	}
	return claimed, nil
}

// oldestPendingAge reads the first entry of each pending-index partition:
// the index is sorted by occurred_at, so that is one item per partition.
func (r *Relay) oldestPendingAge(ctx context.Context) (time.Duration, error) {
	var oldest string
	for _, bucket := range outbox.AllPendingBuckets() {
		out, err := r.db.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(r.cfg.Tables.Outbox),
			IndexName:                 aws.String(outbox.PendingIndex),
			KeyConditionExpression:    aws.String("#b = :b"),
			ExpressionAttributeNames:  map[string]string{"#b": outbox.AttrPendingBucket},
			ExpressionAttributeValues: map[string]types.AttributeValue{":b": &types.AttributeValueMemberS{Value: bucket}},
			Limit:                     aws.Int32(1),
		})
		if err != nil {
			return 0, fmt.Errorf("query %s: %w", outbox.PendingIndex, err)
		}
		if len(out.Items) == 0 {
			continue
		}
		if at, ok := out.Items[0][outbox.AttrOccurredAt].(*types.AttributeValueMemberS); ok && (oldest == "" || at.Value < oldest) {
			oldest = at.Value
		}
	}
	if oldest == "" {
		return 0, nil
	}
	t, err := time.Parse(time.RFC3339Nano, oldest)
	if err != nil {
		return 0, fmt.Errorf("parse occurred_at %q: %w", oldest, err)
	}
	return time.Since(t), nil
}

// swept marks, in Relay.inPipeline, an event this relay claimed: its claim
// is kept alive until it is settled.
type swept struct{}

// claimLoop keeps the claims on the swept events in the pipeline alive
// until they are settled: during an endpoint outage longer than
// ClaimDuration another relay's sweeper would otherwise claim and send
// them again. It runs beside the sweeper, which blocks while the pipeline
// is full.
func (r *Relay) claimLoop(ctx context.Context) {
	if r.cfg.SweepInterval < 0 {
		return
	}
	t := time.NewTicker(r.cfg.ClaimDuration / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := r.renewClaims(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("renewing the claims on swept events failed; the next round retries", "renewed", n, "err", err)
		}
	}
}

// renewClaims extends this relay's claim on every swept event still in the
// pipeline by ClaimDuration, MarkConcurrency at a time (a pipeline can hold
// thousands, and each round must end well within ClaimDuration). An event
// already settled (no longer PENDING) or claimed by another relay (this
// claim had lapsed) is left alone.
func (r *Relay) renewClaims(ctx context.Context) (renewed int, err error) {
	var ids []string
	r.inPipeline.Range(func(k, v any) bool {
		if _, ok := v.(swept); ok {
			ids = append(ids, k.(string))
		}
		return true
	})
	var n atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.MarkConcurrency)
	for _, id := range ids {
		g.Go(func() error {
			_, err := r.writeClaim(gctx, id, "#status = :pending AND #by = :me", nil, types.ReturnValueNone)
			switch {
			case claimRefused(err), apiErrorCode(err) == "ValidationException":
				// Settled, claimed by another relay, being marked in a
				// transaction right now, or an item with no room for the
				// claim: nothing to keep.
			case err != nil:
				return fmt.Errorf("renew claim %s: %w", id, err)
			default:
				n.Add(1)
			}
			return nil
		})
	}
	err = g.Wait()
	return int(n.Load()), err
}

// claim takes a PENDING event for ClaimDuration and returns it, or nil when
// it is no longer PENDING, another relay's claim is still alive, or it is
// being marked in a transaction right now. A live claim of this relay's
// own owner is taken again: the sweeper skips what is in this relay's
// pipeline, so such a claim was made by an attempt whose answer was lost,
// or by this relay before it restarted, and waiting for it to lapse would
// only hold the event back for ClaimDuration.
func (r *Relay) claim(ctx context.Context, id string) (map[string]types.AttributeValue, error) {
	out, err := r.writeClaim(ctx, id, "#status = :pending AND (attribute_not_exists(#exp) OR #exp < :now OR #by = :me)",
		map[string]types.AttributeValue{":now": &types.AttributeValueMemberN{Value: strconv.FormatInt(time.Now().UnixMilli(), 10)}},
		types.ReturnValueAllNew)
	switch {
	case claimRefused(err):
		return nil, nil
	case apiErrorCode(err) == "ValidationException":
		// An item with no room for the claim (see marker's errUnmarkable)
		// must not stop every sweep at it.
		r.log.Warn("DynamoDB refuses to claim this pending event; skipping it (an item near 400 KB has no room for the claim)", "event_id", id, "err", err)
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("claim %s: %w", id, err)
	}
	return out.Attributes, nil
}

// claimRefused reports that a claim write was refused because the event is
// settled or claimed by another relay (its condition failed), or is being
// marked in a transaction right now.
func claimRefused(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	var inTxn *types.TransactionConflictException
	return errors.As(err, &ccf) || errors.As(err, &inTxn)
}

// writeClaim claims id for this relay until ClaimDuration from now if cond
// holds; cond may use #status, #by, #exp, :pending and :me, and the values
// in extra.
func (r *Relay) writeClaim(ctx context.Context, id, cond string, extra map[string]types.AttributeValue, ret types.ReturnValue) (*dynamodb.UpdateItemOutput, error) {
	values := map[string]types.AttributeValue{
		":me":      &types.AttributeValueMemberS{Value: r.cfg.Owner},
		":until":   &types.AttributeValueMemberN{Value: strconv.FormatInt(time.Now().Add(r.cfg.ClaimDuration).UnixMilli(), 10)},
		":pending": &types.AttributeValueMemberS{Value: string(outbox.StatusPending)},
	}
	maps.Copy(values, extra)
	return r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(r.cfg.Tables.Outbox),
		Key:                 map[string]types.AttributeValue{outbox.AttrEventID: &types.AttributeValueMemberS{Value: id}},
		UpdateExpression:    aws.String("SET #by = :me, #exp = :until"),
		ConditionExpression: aws.String(cond),
		ExpressionAttributeNames: map[string]string{
			"#by": outbox.AttrClaimedBy, "#exp": outbox.AttrClaimExpiresAt, "#status": outbox.AttrStatus,
		},
		ExpressionAttributeValues: values,
		ReturnValues:              ret,
	})
}
