package relay

import (
	"context"
	"errors"
	"time"

	"github.com/ddboutbox/ddboutbox/dynamo"
)

// pipeline batches records from in until in is closed, then flushes what
// it holds. Up to BatchesInFlight batches are POSTed at once, but they are
// marked and checkpointed one at a time in the order they were cut, so a
// shard's checkpoint never passes a batch that is still in flight.
func (r *Relay) pipeline(ctx context.Context, arn string, in <-chan record) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// queue holds the batches in flight in order; its capacity, with the
	// one being settled, is what bounds them.
	queue := make(chan *flight, r.cfg.BatchesInFlight-1)
	settled := make(chan error, 1)
	go func() {
		settled <- r.settleAll(ctx, arn, queue)
		cancel() // a failed settle stops the batcher too
	}()
	err := r.batch(ctx, in, func(recs []record) error {
		f := &flight{recs: recs, send: sendable(recs), done: make(chan struct{})}
		select {
		case queue <- f:
		case <-ctx.Done():
			return ctx.Err()
		}
		go func() {
			f.err = r.deliver(ctx, f.send)
			close(f.done)
		}()
		return nil
	})
	close(queue)
	if serr := <-settled; serr != nil {
		return serr
	}
	return err
}

// flight is a batch handed to the endpoint, send its rows to POST; done
// closes when its POSTs are over, with err set only when ctx ended first.
type flight struct {
	recs []record
	send []*record
	done chan struct{}
	err  error
}

// settleAll settles the batches in the order they were queued, each
// marked at the pace nextPace sets from how far behind the batches before
// it found marking.
func (r *Relay) settleAll(ctx context.Context, arn string, queue <-chan *flight) error {
	var next *flight
	p := r.firstPace()
	for {
		f := next
		if f == nil {
			var ok bool
			if f, ok = <-queue; !ok {
				return nil
			}
		}
		<-f.done
		if f.err != nil {
			return f.err
		}
		marked, err := r.settle(ctx, arn, f.recs, p)
		if err != nil {
			return err
		}
		next = nil
		l, judged := caughtUp, true
		select {
		case n, ok := <-queue:
			if !ok {
				return nil
			}
			next = n
			switch {
			case len(n.send) == 0:
				// Nothing to POST (the MODIFY records of earlier marks, or
				// only failed rows): done at once, it says nothing of marking.
				judged = false
			case !n.delivered():
			// Taking n from a full queue hands it at once the batch a
			// waiting batcher holds: full still means the batcher waits.
			case len(queue) == cap(queue):
				l = farBehind
			default:
				l = behind
			}
		default:
		}
		if marked > 0 && judged { // nor does a batch with nothing to mark
			p = r.nextPace(p, l)
		}
	}
}

// lag is how far behind marking was, as the batch after the one just
// marked found it.
type lag int

const (
	// caughtUp: the next batch was still being POSTed, or none was queued.
	caughtUp lag = iota
	// behind: it was delivered, and waited for the marks.
	behind
	// farBehind: it waited, and so many batches wait behind it that the
	// batcher cannot cut another: reading the stream is held up.
	farBehind
)

// pace is how a batch's delivered events are marked: width writes at
// once, each a TransactWriteItems of up to batch events, or an UpdateItem
// per event when batch is 1.
type pace struct{ width, batch int }

// firstPace is one write at a time, which nextPace widens as needed. With
// one batch in flight the next batch is POSTed only once this one is
// settled, so marking is never seen behind: it marks MarkConcurrency at a
// time.
func (r *Relay) firstPace() pace {
	if r.cfg.BatchesInFlight == 1 {
		return pace{width: r.cfg.MarkConcurrency, batch: 1}
	}
	return pace{width: 1, batch: 1}
}

// nextPace is how the next batch is marked, after p and with marking l
// behind. Behind, with batches delivered and waiting for the marks but
// room in flight for more, the pace holds: the lag costs nothing but the
// time until events read DELIVERED, and wider marking would take the
// table's (on DynamoDB Local, the emulator's) capacity from the
// application's writes. Far behind, when the batcher is held up and
// reading the stream waits, the marks go twice as wide, up to
// MarkConcurrency; far behind at that width, they go in transactions of
// MarkBatchSize, fewer and larger writes. Caught up, they narrow again:
// out of transactions first, then by half, down to one UpdateItem at a
// time. So a relay that keeps up spreads its marks over the time until
// the next batch arrives, as few at once as keep reading going, rather
// than writing them in a burst after each POST.
func (r *Relay) nextPace(p pace, l lag) pace {
	widest := r.cfg.MarkConcurrency
	switch {
	case r.cfg.BatchesInFlight == 1:
		return p
	case l == caughtUp && p.batch > 1:
		return pace{width: p.width, batch: 1}
	case l == caughtUp:
		return pace{width: max(p.width/2, 1), batch: 1}
	case l == behind:
		return p
	case p.width >= widest:
		return pace{width: widest, batch: r.cfg.MarkBatchSize}
	default:
		return pace{width: min(p.width*2, widest), batch: 1}
	}
}

// delivered reports whether f's POSTs are over.
func (f *flight) delivered() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// batch cuts the records from in into batches by rows, bytes and linger,
// and hands each to emit, until in is closed or ctx ends.
func (r *Relay) batch(ctx context.Context, in <-chan record, emit func([]record) error) error {
	b := newBatcher(r.cfg.BatchSize, r.cfg.BatchBytes, r.cfg.SinkFormat)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	flush := func() error {
		linger.Stop()
		if b.empty() {
			return nil
		}
		return emit(b.take())
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
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// sendable is what of recs is POSTed: the rows not already failed.
func sendable(recs []record) []*record {
	var send []*record
	for i := range recs {
		if recs[i].row != nil && recs[i].fail == nil {
			send = append(send, &recs[i])
		}
	}
	return send
}

// deliver POSTs a batch's sendable rows; rows that cannot be delivered get
// their fail set. It only fails when ctx ends first.
func (r *Relay) deliver(ctx context.Context, send []*record) error {
	if len(send) == 0 {
		return nil
	}
	return r.send(ctx, send)
}

// settle marks a delivered batch's events DELIVERED at pace p (it returns
// how many) and unsendable ones FAILED, then checkpoints each shard at its
// last record in the batch. Everything before that record in the shard
// was in this batch or an earlier, already settled one, so it is done: the
// checkpoint never passes a PENDING event. It only fails when ctx ends
// first.
func (r *Relay) settle(ctx context.Context, arn string, recs []record, p pace) (marked int, err error) {
	var delivered []string
	for i := range recs {
		rec := &recs[i]
		switch {
		case rec.eventID == "":
		case rec.fail != nil:
			r.log.Warn("event failed", "event_id", rec.eventID, "attempts", rec.attempts, "err", rec.fail)
			if err := r.marker.failed(ctx, rec.eventID, rec.fail, rec.attempts); err != nil {
				return 0, err
			}
			r.n.failed.Add(1)
			r.m.eventsFailed.Inc()
		case rec.row != nil:
			delivered = append(delivered, rec.eventID)
			r.m.lagSeconds.Observe(time.Since(rec.occurredAt).Seconds())
		}
	}
	if len(delivered) > 0 {
		r.m.markWidth.Set(float64(p.width))
		start := time.Now()
		dups, inTxn, err := r.marker.delivered(ctx, delivered, p)
		if err != nil {
			return 0, err
		}
		r.log.Debug("batch marked", "events", len(delivered), "width", p.width, "per_write", p.batch, "took", time.Since(start))
		r.n.markedInTxn.Add(int64(inTxn))
		r.m.markedInTransactions.Add(float64(inTxn))
		r.n.delivered.Add(int64(len(delivered) - dups))
		r.n.duplicates.Add(int64(dups))
		r.m.eventsDelivered.Add(float64(len(delivered) - dups))
		r.m.eventsDuplicate.Add(float64(dups))
	}
	for _, rec := range recs {
		r.inPipeline.Delete(rec.eventID)
	}
	return len(delivered), r.checkpoint(ctx, arn, recs)
}

// checkpoint writes each shard's checkpoint once: its last sequence number
// in recs, or ShardEnd when the batch closes the shard, with what the
// shard's settledBefore has become.
func (r *Relay) checkpoint(ctx context.Context, arn string, recs []record) error {
	var order []*shardWork
	last := map[*shardWork]string{}
	for _, rec := range recs {
		if rec.shard == nil {
			continue // swept events have no stream position
		}
		rec.shard.settled.Add(1)
		if !rec.created.IsZero() {
			rec.shard.settledTo.Store(rec.created.UnixNano())
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
		if seq == "" || w.lost.Load() {
			continue
		}
		// A lost lease is final: retrying would hold up every batch behind
		// this one, on every shard, until ctx ends.
		lost := false
		err := r.policy.retry(ctx, func(ctx context.Context) error {
			err := r.leases.Checkpoint(ctx, arn, w.id, seq, w.settledBefore())
			if errors.Is(err, dynamo.ErrLeaseLost) {
				lost = true
				return nil
			}
			return err
		}, func(err error) {
			r.log.Warn("checkpoint failed, retrying", "shard", w.id, "err", err)
		})
		if err != nil {
			return err
		}
		if lost {
			r.leaseLost(w)
			continue
		}
		r.n.checkpoints.Add(1)
		if seq == dynamo.ShardEnd {
			w.finished.Store(true)
			r.nudge()
		}
	}
	return nil
}
