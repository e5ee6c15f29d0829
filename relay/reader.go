package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/ddboutbox/ddboutbox/outbox"
)

// ErrRecordTooOld means an event is older than MaxRecordAge; it is marked
// FAILED instead of sent.
var ErrRecordTooOld = errors.New("event older than max-record-age")

// ErrRowTooLarge means an event's row alone exceeds the batch byte cap, so
// no batch can carry it; the event is marked FAILED.
var ErrRowTooLarge = errors.New("row exceeds the batch byte cap")

// getRecordsLimit is the most records one GetRecords call returns.
const getRecordsLimit = 1000

// readShard follows one shard from just after checkpoint (TRIM_HORIZON when
// there is none, or LATEST when latest is set) to its end, sending every
// record to out in stream order.
func (r *Relay) readShard(ctx context.Context, arn string, w *shardWork, checkpoint string, latest bool, out chan<- record) {
	log := r.log.With("shard", w.id)
	defer r.frontiers.track(ctx, w)()
	// The shard's age series ends with its reader: shards roll over every
	// few hours, and a closed one's last age would stand in every max()
	// alert forever.
	defer r.m.iteratorAge.DeleteLabelValues(w.id)
	// last is the newest sequence number handed to the pipeline: an expired
	// iterator is re-acquired after it, which is never before the
	// checkpoint and never re-reads a record already in flight.
	last := checkpoint
	trimmedLogged, relatestLogged := false, false
	position := func() (string, error) {
		if last == "" && latest {
			return r.iteratorAt(ctx, arn, w.id, streamtypes.ShardIteratorTypeLatest, "")
		}
		return r.iterator(ctx, arn, w.id, last)
	}
	iter, err := position()
	// attempt counts failed calls in a row, expiries expired or refused
	// iterators in a row; both back off, and a page read resets them.
	expiries := 0
	for attempt := 0; ctx.Err() == nil; {
		if err == nil {
			var res *dynamodbstreams.GetRecordsOutput
			called := time.Now()
			res, err = r.streams.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: aws.String(iter), Limit: aws.Int32(getRecordsLimit)})
			if err == nil {
				attempt, expiries = 0, 0
				for _, rec := range res.Records {
					rr := r.toRecord(rec)
					rr.shard = w
					if rr.eventID != "" {
						r.inPipeline.Store(rr.eventID, struct{}{})
					}
					// Counted before it can be settled (see settledBefore).
					w.handed.Add(1)
					select {
					case out <- rr:
						last, latest = rr.seq, false
					case <-ctx.Done():
						w.handed.Add(-1)
						r.inPipeline.Delete(rr.eventID)
						return
					}
				}
				r.observeIteratorAge(w, res.Records)
				if res.NextShardIterator == nil {
					w.handed.Add(1)
					select {
					case out <- record{shard: w, shardEnd: true}:
						log.Info("shard ended")
					case <-ctx.Done():
						w.handed.Add(-1)
					}
					return
				}
				iter = aws.ToString(res.NextShardIterator)
				// A short page means the reader has caught up: pace the
				// calls instead of asking again for the next few records.
				if len(res.Records) < getRecordsLimit {
					_ = sleep(ctx, r.cfg.PollInterval-time.Since(called))
				}
				continue
			}
		}
		if ctx.Err() != nil {
			return
		}
		var expired *streamtypes.ExpiredIteratorException
		var trimmed *streamtypes.TrimmedDataAccessException
		var gone *streamtypes.ResourceNotFoundException
		switch {
		case iter != "" && (errors.As(err, &expired) || iteratorRefused(err)):
			// Expiry is normal after a long stall (an iterator lives 15
			// minutes), so the first one re-positions at once; a service
			// that kept refusing fresh iterators must not make this spin.
			if expiries > 0 && sleep(ctx, r.policy.delay(expiries-1, 0)) != nil {
				return
			}
			expiries++
			if last == "" && latest && !relatestLogged {
				// No record was read yet, so there is no sequence number to
				// go back to: every record is handed over as soon as its
				// page arrives, which clears latest. A new LATEST iterator
				// skips what was written since the first one; the sweeper
				// (unless disabled) delivers those events once they are
				// SweepAfter old.
				log.Warn("shard iterator refused before the first record after LATEST; events written meanwhile are left to the sweeper", "err", err)
				relatestLogged = true
			}
			iter, err = position()
			continue
		case errors.As(err, &trimmed):
			// Past a checkpoint, records were lost to the stream's 24-hour
			// retention and only the sweeper can find them. Without a
			// position nothing was skipped (DynamoDB Local answers so on a
			// fresh stream); the pause keeps a repeat from spinning.
			if last == "" {
				log.Debug("trimmed data at the start of the shard; continuing from TRIM_HORIZON")
				_ = sleep(ctx, r.cfg.PollInterval)
			} else if !trimmedLogged {
				log.Warn("stream records past the checkpoint were trimmed; continuing from TRIM_HORIZON (the sweeper delivers what was missed)", "checkpoint", last)
				trimmedLogged = true
			}
			last, latest = "", false
			iter, err = r.iterator(ctx, arn, w.id, "")
			continue
		case errors.As(err, &gone):
			log.Warn("shard no longer in the stream", "err", err)
			w.stopped.Store(true)
			r.nudge()
			return
		}
		log.Warn("reading shard failed, retrying", "err", err)
		if sleep(ctx, r.policy.delay(attempt, 0)) != nil {
			return
		}
		attempt++
		// A GetRecords failure leaves the iterator valid, so it is tried
		// again: a new one from LATEST would skip the records written
		// meanwhile. Only a failed GetShardIterator leaves none.
		if iter == "" {
			iter, err = position()
		} else {
			err = nil
		}
	}
}

// iteratorRefused reports whether GetRecords refused the shard iterator
// itself (DynamoDB Local answers "Invalid ShardIterator"), which no retry
// of the same iterator can fix.
func iteratorRefused(err error) bool {
	return apiErrorCode(err) == "ValidationException"
}

// apiErrorCode is the AWS error code in err (smithy.APIError), or "".
func apiErrorCode(err error) string {
	var api interface{ ErrorCode() string }
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// observeIteratorAge records how far behind the newest record read is, and
// moves the shard's frontier for the sweeper. It is called once a page has
// been handed on in full.
func (r *Relay) observeIteratorAge(w *shardWork, recs []streamtypes.Record) {
	now := time.Now()
	age := 0.0
	if created := lastCreated(recs); created != nil {
		age = now.Sub(*created).Seconds()
	}
	r.m.iteratorAge.WithLabelValues(w.id).Set(max(age, 0))
	w.advance(recs, now)
}

// lastCreated is the creation time of the last record of a page, or nil
// when the page is empty or the record has none.
func lastCreated(recs []streamtypes.Record) *time.Time {
	if n := len(recs); n > 0 && recs[n-1].Dynamodb != nil {
		return recs[n-1].Dynamodb.ApproximateCreationDateTime
	}
	return nil
}

// iterator positions a shard iterator just after seq, or at TRIM_HORIZON.
func (r *Relay) iterator(ctx context.Context, arn, shardID, seq string) (string, error) {
	if seq == "" {
		return r.iteratorAt(ctx, arn, shardID, streamtypes.ShardIteratorTypeTrimHorizon, "")
	}
	return r.iteratorAt(ctx, arn, shardID, streamtypes.ShardIteratorTypeAfterSequenceNumber, seq)
}

func (r *Relay) iteratorAt(ctx context.Context, arn, shardID string, typ streamtypes.ShardIteratorType, seq string) (string, error) {
	in := &dynamodbstreams.GetShardIteratorInput{
		StreamArn:         aws.String(arn),
		ShardId:           aws.String(shardID),
		ShardIteratorType: typ,
	}
	if seq != "" {
		in.SequenceNumber = aws.String(seq)
	}
	out, err := r.streams.GetShardIterator(ctx, in)
	if err != nil {
		return "", fmt.Errorf("get shard iterator %s: %w", shardID, err)
	}
	return aws.ToString(out.ShardIterator), nil
}

// toRecord decides what a stream record means for delivery. Only INSERTs
// of PENDING outbox items carry a row; MODIFY records are the relay's own
// marks (and the sweeper's claims) and REMOVE records are TTL expiry, so
// both only move the checkpoint.
func (r *Relay) toRecord(rec streamtypes.Record) record {
	out := classifyRecord(rec, r.rules())
	if rec.Dynamodb != nil {
		out.created = aws.ToTime(rec.Dynamodb.ApproximateCreationDateTime)
	}
	if out.eventID == "" {
		r.n.skipped.Add(1)
		r.m.recordsSkipped.Inc()
	} else {
		r.n.read.Add(1)
		r.m.eventsRead.Inc()
	}
	return out
}

// rowRules are what decides whether an event can be sent.
type rowRules struct {
	format   Format
	maxBytes int
	maxAge   time.Duration // 0: no limit
	now      time.Time
}

func (r *Relay) rules() rowRules {
	return rowRules{format: r.cfg.SinkFormat, maxBytes: r.cfg.BatchBytes, maxAge: r.cfg.MaxRecordAge, now: time.Now()}
}

func classifyRecord(rec streamtypes.Record, rules rowRules) record {
	var out record
	if rec.Dynamodb == nil {
		return out
	}
	out.seq = aws.ToString(rec.Dynamodb.SequenceNumber)
	if rec.EventName != streamtypes.OperationTypeInsert || rec.Dynamodb.NewImage == nil {
		return out
	}
	if _, ok := rec.Dynamodb.NewImage[outbox.AttrEventID]; !ok {
		return out // not an outbox item
	}
	img, err := attributevalue.FromDynamoDBStreamsMap(rec.Dynamodb.NewImage)
	if err != nil {
		out.eventID = streamString(rec.Dynamodb.NewImage, outbox.AttrEventID)
		out.fail = fmt.Errorf("convert stream image: %w", err)
		return out
	}
	ev := classifyItem(img, rules)
	ev.seq = out.seq
	return ev
}

// classifyItem turns an outbox item (from a stream image or the sweeper)
// into a record: a row to send, a failure to mark, or nothing for an item
// that is not PENDING.
func classifyItem(img map[string]ddbtypes.AttributeValue, rules rowRules) record {
	var out record
	e, status, err := outbox.DecodeItem(img)
	if err != nil {
		if id, ok := img[outbox.AttrEventID].(*ddbtypes.AttributeValueMemberS); ok && id.Value != "" {
			out.eventID, out.fail = id.Value, err
		}
		return out
	}
	if status != outbox.StatusPending {
		return out
	}
	out.eventID, out.occurredAt = e.ID, e.OccurredAt
	if rules.maxAge > 0 {
		since, err := outbox.PendingSince(img)
		if err != nil {
			out.fail = err
			return out
		}
		out.pendingSince = since
		if out.fail = tooOld(since, rules.now, rules.maxAge); out.fail != nil {
			return out
		}
	}
	row, err := EncodeRow(e)
	if err != nil {
		out.fail = err
		return out
	}
	if envelopeSize(rules.format)+len(row) > rules.maxBytes {
		out.fail = fmt.Errorf("%w: %d bytes, cap %d", ErrRowTooLarge, len(row), rules.maxBytes)
		return out
	}
	out.row = row
	return out
}

// tooOld is ErrRecordTooOld for an event PENDING since since, if that is
// longer than maxAge (0: no limit) before now.
func tooOld(since, now time.Time, maxAge time.Duration) error {
	if age := now.Sub(since); maxAge > 0 && age > maxAge {
		return fmt.Errorf("%w: pending for %s (since it occurred, or was last redriven or replayed), max-record-age is %s",
			ErrRecordTooOld, age.Round(time.Second), maxAge)
	}
	return nil
}

func streamString(img map[string]streamtypes.AttributeValue, name string) string {
	if s, ok := img[name].(*streamtypes.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}
