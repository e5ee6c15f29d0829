package relay

import (
	"context"
	"time"

	"github.com/ddboutbox/ddboutbox/dynamo"
)

// pipeline batches records from in and processes each batch in turn until
// in is closed, then flushes what it holds. One batch is in flight at a
// time, which keeps every shard's records in stream order end to end.
func (r *Relay) pipeline(ctx context.Context, arn string, in <-chan record) error {
	b := newBatcher(r.cfg.BatchSize, r.cfg.BatchBytes, r.cfg.SinkFormat)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	flush := func() error {
		linger.Stop()
		if b.empty() {
			return nil
		}
		return r.process(ctx, arn, b.take())
	}
	for {
		select {
		case rec, ok := <-in:
			if !ok {
				return flush()
			}
			b.maxBytes = int(r.capBytes.Load())
			if !b.fits(rec) {
				if err := flush(); err != nil {
					return err
				}
			}
			if b.empty() {
				linger.Reset(r.cfg.BatchWindow)
			}
			if b.add(rec) {
				if err := flush(); err != nil {
					return err
				}
			}
		case <-linger.C:
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// process delivers one batch: POST the rows, mark them DELIVERED (and
// unsendable ones FAILED), then checkpoint each shard at its last record in
// the batch. Everything before that record in the shard was in this batch or
// an earlier one, so it is done: the checkpoint never passes a PENDING event.
// It only fails when ctx ends first.
func (r *Relay) process(ctx context.Context, arn string, recs []record) error {
	var send []*record
	for i := range recs {
		if recs[i].row != nil && recs[i].fail == nil {
			send = append(send, &recs[i])
		}
	}
	if len(send) > 0 {
		if err := r.send(ctx, send); err != nil {
			return err
		}
	}
	var delivered []string
	for i := range recs {
		rec := &recs[i]
		switch {
		case rec.eventID == "":
		case rec.fail != nil:
			r.log.Warn("event failed", "event_id", rec.eventID, "attempts", rec.attempts, "err", rec.fail)
			if err := r.marker.failed(ctx, rec.eventID, rec.fail, rec.attempts); err != nil {
				return err
			}
			r.n.failed.Add(1)
			r.m.eventsFailed.Inc()
		case rec.row != nil:
			delivered = append(delivered, rec.eventID)
			r.m.lagSeconds.Observe(time.Since(rec.occurredAt).Seconds())
		}
	}
	if len(delivered) > 0 {
		dups, err := r.marker.delivered(ctx, delivered)
		if err != nil {
			return err
		}
		r.n.delivered.Add(int64(len(delivered) - dups))
		r.n.duplicates.Add(int64(dups))
		r.m.eventsDelivered.Add(float64(len(delivered) - dups))
		r.m.eventsDuplicate.Add(float64(dups))
	}
	for _, rec := range recs {
		if rec.shard == nil {
			r.swept.Delete(rec.eventID)
		}
	}
	return r.checkpoint(ctx, arn, recs)
}

// checkpoint writes each shard's checkpoint once: its last sequence number
// in recs, or ShardEnd when the batch closes the shard.
func (r *Relay) checkpoint(ctx context.Context, arn string, recs []record) error {
	var order []*shardWork
	last := map[*shardWork]string{}
	for _, rec := range recs {
		if rec.shard == nil {
			continue // swept events have no stream position
		}
		if _, seen := last[rec.shard]; !seen {
			order = append(order, rec.shard)
		}
		switch {
		case rec.shardEnd:
			last[rec.shard] = dynamo.ShardEnd
		case rec.seq != "":
			last[rec.shard] = rec.seq
		}
	}
	for _, w := range order {
		seq := last[w]
		if seq == "" {
			continue
		}
		err := r.policy.retry(ctx, func(ctx context.Context) error {
			return r.leases.Checkpoint(ctx, arn, w.id, seq)
		}, func(err error) {
			r.log.Warn("checkpoint failed, retrying", "shard", w.id, "err", err)
		})
		if err != nil {
			return err
		}
		r.n.checkpoints.Add(1)
		if seq == dynamo.ShardEnd {
			w.finished.Store(true)
			r.nudge()
		}
	}
	return nil
}
