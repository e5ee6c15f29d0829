// Package relay tails the outbox table's DynamoDB stream and delivers
// outbox events to an analytics endpoint: it micro-batches rows, POSTs each
// batch as one JSON request, marks the events DELIVERED and only then
// checkpoints the shard. Delivery is at-least-once: a checkpoint never
// passes an event that is neither DELIVERED nor FAILED, so after a crash at
// most the batches in flight (Config.BatchesInFlight) are sent again.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"golang.org/x/time/rate"

	"github.com/ddboutbox/ddboutbox/dynamo"
)

// DB is the part of the DynamoDB client the relay needs.
type DB interface {
	dynamo.DescribeTableAPI
	dynamo.LeaseAPI
	UpdateItemAPI
	TransactWriteItemsAPI
}

// StreamsAPI is the part of the DynamoDB Streams client the relay needs.
type StreamsAPI interface {
	dynamo.DescribeStreamAPI
	GetShardIterator(ctx context.Context, in *dynamodbstreams.GetShardIteratorInput, optFns ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *dynamodbstreams.GetRecordsInput, optFns ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error)
}

var (
	_ DB         = (*dynamodb.Client)(nil)
	_ StreamsAPI = (*dynamodbstreams.Client)(nil)
)

// Stats counts what the relay did since it started.
type Stats struct {
	// Read is outbox events read from the stream.
	Read int64
	// Delivered is events marked DELIVERED by this relay.
	Delivered int64
	// Duplicates is events the endpoint accepted that were already out of
	// PENDING (delivered before, e.g. by a relay that crashed before its
	// checkpoint).
	Duplicates int64
	// Failed is events marked FAILED.
	Failed int64
	// Batches is POSTs the endpoint accepted; Requests is all POSTs.
	Batches, Requests int64
	// Skipped is stream records that carry no event to send: MODIFY
	// (the relay's own marks), REMOVE (TTL expiry), non-outbox items.
	Skipped int64
	// Checkpoints is checkpoint writes.
	Checkpoints int64
	// Retries is POSTs repeated after a failure.
	Retries int64
	// Swept is PENDING events the sweeper claimed for delivery.
	Swept int64
	// MarkedInTransactions is delivered events marked in TransactWriteItems
	// because marking was far behind (see Config.MarkBatchSize).
	MarkedInTransactions int64
}

type counters struct {
	read, delivered, duplicates, failed, batches, requests, skipped, checkpoints, retries, swept, markedInTxn atomic.Int64
}

// Relay moves outbox events from the stream to the endpoint.
type Relay struct {
	cfg     Config
	log     *slog.Logger
	db      DB
	streams StreamsAPI
	sink    Sink
	leases  *dynamo.Leases
	marker  *marker
	policy  backoff
	n       counters
	m       *metrics
	health  health
	// started is set once the stream is found and the owner held.
	started atomic.Bool
	// self is this process in the owner row; ownerWait is why it waits
	// for the owner (nil once held).
	self      dynamo.Process
	ownerWait atomic.Pointer[error]
	// inPipeline holds the ids of the events read or swept and not yet
	// settled, so that the sweeper leaves them alone: during an outage
	// longer than SweepAfter they are PENDING and old enough to sweep, but
	// already on their way (read from the stream, or swept before). Swept
	// ones map to swept{}, whose claims claimLoop keeps alive.
	inPipeline sync.Map
	// frontiers is how far each shard reader has read, for the sweeper.
	frontiers frontiers
	// capBytes is the byte cap in force: BatchBytes, lowered when the
	// endpoint answers 413.
	capBytes atomic.Int64

	// wake nudges the coordinator when a shard finished.
	wake chan struct{}
	// leftStreams are the streams Run moved on from, oldest first: other
	// relays may still be settling what they read of them, which the
	// sweeper must leave to them. Run appends between tails, so the
	// sweeper, started by the next tail, reads it without a lock.
	leftStreams []leftStream
	// listed is the current stream's shards as the last shard sync found
	// them, for the sweeper (see peersLag).
	listed atomic.Pointer[shardListing]
}

// shardListing is the set of shard ids DescribeStream listed for a stream.
type shardListing struct {
	arn string
	ids map[string]bool
}

// unlisted reports, for stream arn, whether its last listing lacked a
// shard; nil when arn has not been listed yet.
func (r *Relay) unlisted(arn string) func(shardID string) bool {
	l := r.listed.Load()
	if l == nil || l.arn != arn {
		return nil
	}
	return func(id string) bool { return !l.ids[id] }
}

// leftStreamShard is unlisted for a stream the table no longer uses: no
// relay takes over any of its shards.
func leftStreamShard(string) bool { return true }

// New builds a relay. sink may be nil, in which case batches are POSTed to
// cfg.SinkURL. cfg.WebhookSecret signs through the relay's own sink or an
// *HTTPSink without a Signer; any other sink must sign by itself, so New
// refuses it with a secret rather than send unsigned requests.
func New(cfg Config, db DB, streams StreamsAPI, sink Sink) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if sink == nil {
		sink = &HTTPSink{URL: cfg.SinkURL, Timeout: cfg.RequestTimeout, Client: &http.Client{}}
	}
	if len(cfg.WebhookSecret) > 0 {
		hs, ok := sink.(*HTTPSink)
		if !ok {
			return nil, fmt.Errorf("%w: a webhook secret signs only an *HTTPSink; a %T must sign its requests itself (see Signer)", ErrInvalidConfig, sink)
		}
		if hs.Signer == nil {
			signed := *hs
			signed.Signer = &Signer{Secret: cfg.WebhookSecret}
			sink = &signed
		}
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	r := &Relay{
		m:       m,
		cfg:     cfg,
		log:     cfg.Logger.With("component", "relay"),
		db:      db,
		streams: streams,
		policy:  backoff{base: cfg.RetryBase, max: cfg.RetryMax},
		wake:    make(chan struct{}, 1),
		self:    thisProcess(),
		leases: &dynamo.Leases{
			DB: db, Table: cfg.Tables.State, Owner: cfg.Owner, Duration: cfg.LeaseDuration,
		},
	}
	// POSTs are counted and timed inside the limiter: its wait is the
	// relay's, not the endpoint's, and a wait cut short sends nothing.
	r.sink = meteredSink{next: sink, m: m, n: &r.n}
	// One limiter for every POST, retries and split halves included: the
	// vendor counts requests per dataset.
	var lim *rate.Limiter
	if cfg.SinkRate > 0 {
		lim = rate.NewLimiter(rate.Limit(cfg.SinkRate), 1)
	}
	if lim != nil || cfg.SinkMaxInFlight > 0 {
		r.sink = LimitSink(r.sink, lim, cfg.SinkMaxInFlight)
	}
	r.capBytes.Store(int64(cfg.BatchBytes))
	r.marker = &marker{
		db: db, table: cfg.Tables.Outbox, ttl: cfg.DeliveredTTL,
		now: time.Now, policy: r.policy,
		onErr: func(err error) { r.log.Warn("mark failed, retrying", "err", err) },
		onUnmarkable: func(id string, err error) {
			r.log.Error("DynamoDB refuses to mark this event, which stays PENDING; the shard goes on (an item near 400 KB has no room for the mark)", "event_id", id, "err", err)
		},
	}
	return r, nil
}

// Stats returns a snapshot of the counters.
func (r *Relay) Stats() Stats {
	return Stats{
		Read: r.n.read.Load(), Delivered: r.n.delivered.Load(), Duplicates: r.n.duplicates.Load(),
		Failed: r.n.failed.Load(), Batches: r.n.batches.Load(), Requests: r.n.requests.Load(),
		Skipped: r.n.skipped.Load(), Checkpoints: r.n.checkpoints.Load(),
		Retries: r.n.retries.Load(), Swept: r.n.swept.Load(), MarkedInTransactions: r.n.markedInTxn.Load(),
	}
}

// shardWork is one shard being read by this relay.
type shardWork struct {
	id     string
	cancel context.CancelFunc
	// finished is set by the pipeline once the shard's end is checkpointed.
	finished atomic.Bool
	// stopped is set when the reader quit early (lease lost, shard gone);
	// the coordinator forgets the shard so a later sync can take it again.
	stopped atomic.Bool
	// lost is set once another owner holds the lease: the pipeline skips
	// the shard's checkpoints, which could only fail from then on.
	lost atomic.Bool
	// readTo is the reader's frontier for this relay's sweeper (see
	// frontiers), in Unix nanoseconds; 0 until its first page.
	readTo atomic.Int64
	// handed counts the records the reader handed to the pipeline and
	// settled those the pipeline settled; settledTo is the creation time
	// (Unix nanoseconds) of the last settled record that had one. With
	// readTo they make settledBefore, for the other relays' sweepers.
	handed, settled, settledTo atomic.Int64
}

// leaseLost stops w for good once another owner holds its lease. Its
// records still in the pipeline are delivered and marked but not
// checkpointed, so the new owner reads them again from the last
// checkpoint: duplicates, never a loss. It logs once per shard.
func (r *Relay) leaseLost(w *shardWork) {
	if r.stopLost(w) {
		r.log.Warn("lease lost: the shard moved to another owner, which reads its unsettled records again", "shard", w.id)
	}
}

// stopLost stops w for good, without a checkpoint, and reports whether it
// was still running.
func (r *Relay) stopLost(w *shardWork) bool {
	if w.lost.Swap(true) {
		return false
	}
	if w.cancel != nil {
		w.cancel()
	}
	w.stopped.Store(true)
	return true
}

// Run tails the stream until ctx is done, then stops reading, delivers the
// batch in hand, marks and checkpoints it, releases its leases and returns
// nil. It returns an error if the stream cannot be found or the final flush
// does not complete within ShutdownTimeout. When the table's stream is
// re-enabled (a new stream ARN), Run settles what it holds of the old
// stream the same way and goes on with the new one; the old stream's
// unread records are left to the sweeper.
//
// Only one process at a time acts for an Owner: Run waits while another
// live one does, and returns an error wrapping dynamo.ErrOwnerTaken, after
// settling the batch in hand, if another takes over from it.
func (r *Relay) Run(ctx context.Context) error {
	arn, err := r.streamARN(ctx)
	if err == nil {
		err = r.holdOwner(ctx)
	}
	if err == nil {
		defer r.releaseOwner()
		r.started.Store(true)
	}
	for err == nil {
		if err = r.tail(ctx, arn); !errors.Is(err, errStreamChanged) {
			return err
		}
		r.leftStreams = append(r.leftStreams, leftStream{arn: arn, at: time.Now()})
		arn, err = r.streamARN(ctx)
	}
	if ctx.Err() != nil {
		return nil // stopped while finding a stream or waiting for the owner: nothing in hand
	}
	return err
}

// leftStream is a stream of the outbox table that this relay stopped
// reading when the table's stream was re-enabled.
type leftStream struct {
	arn string
	at  time.Time
}

// errStreamChanged ends tail when the outbox table's latest stream is no
// longer the one it reads.
var errStreamChanged = errors.New("outbox stream changed")

// tail reads the stream arn until ctx is done or the table's stream
// changes, then drains the pipeline and releases its leases.
func (r *Relay) tail(ctx context.Context, arn string) error {
	log := r.log.With("stream", arn)
	log.Info("relay started", "owner", r.cfg.Owner, "sink", redactURL(r.cfg.SinkURL), "profile", r.cfg.SinkProfile,
		"sink_format", r.cfg.SinkFormat, "sink_rate", r.cfg.SinkRate, "signed", len(r.cfg.WebhookSecret) > 0,
		"batch_size", r.cfg.BatchSize, "batch_bytes", r.cfg.BatchBytes, "batch_window", r.cfg.BatchWindow)

	// The pipeline outlives ctx so that the batch in hand is delivered on
	// shutdown; it is cut off ShutdownTimeout after ctx ends.
	pipeCtx, pipeCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer pipeCancel()
	records := make(chan record, 2*r.cfg.BatchSize)
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- r.pipeline(pipeCtx, arn, records) }()

	// Everything that feeds the pipeline stops with readCtx, so that
	// records can be closed once they are gone.
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	var readers sync.WaitGroup
	running := map[string]*shardWork{}
	syncShards := func() {
		if err := r.syncShards(readCtx, arn, running, records, &readers); err != nil && readCtx.Err() == nil {
			log.Warn("shard sync failed", "err", err)
		}
	}
	syncShards()
	readers.Add(1)
	go func() {
		defer readers.Done()
		r.sweepLoop(readCtx, arn, records)
	}()
	// Claims on swept events are renewed until the pipeline is done, the
	// drain after shutdown included: one that lapsed while its event was
	// still being POSTed would let another relay's sweeper send it too.
	claimCtx, stopClaims := context.WithCancel(pipeCtx)
	claimsDone := make(chan struct{})
	go func() {
		defer close(claimsDone)
		r.claimLoop(claimCtx)
	}()
	defer func() { stopClaims(); <-claimsDone }()
	syncTick := time.NewTicker(r.cfg.ShardSyncInterval)
	defer syncTick.Stop()
	renewTick := time.NewTicker(r.cfg.LeaseDuration / 3)
	defer renewTick.Stop()

	var pipeErr, done error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case pipeErr = <-pipeDone:
			break loop
		case <-r.wake:
			syncShards()
		case <-syncTick.C:
			if changed := r.streamChanged(ctx, arn); changed != "" {
				log.Warn("the outbox table's stream was re-enabled: settling this one and following the new one; the sweeper delivers what this one still held unread", "new_stream", changed)
				done = errStreamChanged
				break loop
			}
			syncShards()
		case <-renewTick.C:
			if done = r.renewHolds(ctx, arn, running); done != nil {
				break loop
			}
		}
	}

	log.Info("relay stopping: flushing the batch in hand")
	stopReading()
	readers.Wait()
	close(records)
	if pipeErr == nil {
		stop := time.AfterFunc(r.cfg.ShutdownTimeout, pipeCancel)
	drain:
		for {
			select {
			case pipeErr = <-pipeDone:
				break drain
			case <-renewTick.C:
				// Leases kept while the batch in hand is settled: one that
				// lapsed would let another relay read it again meanwhile
				// (and, on a stream left behind, sweep it). A takeover
				// outranks a stream change: Run must not go on to the new
				// stream for an owner another process acts for.
				if !errors.Is(done, dynamo.ErrOwnerTaken) {
					if err := r.renewHolds(pipeCtx, arn, running); err != nil {
						done = err
					}
				}
			}
		}
		stop.Stop()
		switch {
		case errors.Is(pipeErr, context.Canceled) && errors.Is(done, errStreamChanged):
			// Nobody reads the old stream again: what it held stays PENDING
			// for the sweepers, this relay's included.
			log.Warn("the batch in hand of the old stream was not delivered within -shutdown-timeout; the sweeper delivers its events", "shutdown_timeout", r.cfg.ShutdownTimeout)
			r.inPipeline.Clear()
			pipeErr = nil
		case errors.Is(pipeErr, context.Canceled):
			pipeErr = fmt.Errorf("shutdown timeout %s passed before the batch in hand was delivered; "+
				"it was not checkpointed and will be read again: %w", r.cfg.ShutdownTimeout, pipeErr)
		}
	}
	// Every reader of this stream has returned: one whose shard ended
	// without its end checkpointed (the pipeline cut off) must not hold
	// the sweeper's cutoff on the next stream.
	r.frontiers.forget()
	r.release(arn, running)
	st := r.Stats()
	log.Info("relay stopped", "read", st.Read, "delivered", st.Delivered, "duplicates", st.Duplicates,
		"failed", st.Failed, "batches", st.Batches, "marked_in_transactions", st.MarkedInTransactions)
	if pipeErr != nil {
		return pipeErr
	}
	return done
}

// streamChanged returns the outbox table's latest stream ARN if it is not
// arn, and "" otherwise. An error (or a stream disabled and not yet
// re-enabled, whose old stream is still read to its end) is not a change.
func (r *Relay) streamChanged(ctx context.Context, arn string) string {
	latest, err := dynamo.StreamARN(ctx, r.db, r.cfg.Tables.Outbox)
	if err != nil || latest == arn {
		return ""
	}
	return latest
}

// streamARN finds the outbox table's stream, waiting out transient errors
// (DynamoDB starting, a network blip) so that a relay started alongside its
// database comes up by itself. A missing table or stream is a
// configuration error and returned at once.
func (r *Relay) streamARN(ctx context.Context) (string, error) {
	for attempt := 0; ; attempt++ {
		arn, err := dynamo.StreamARN(ctx, r.db, r.cfg.Tables.Outbox)
		var missing *ddbtypes.ResourceNotFoundException
		if err == nil || errors.Is(err, dynamo.ErrNoStream) || errors.As(err, &missing) || ctx.Err() != nil {
			return arn, err
		}
		r.log.Warn("finding the outbox stream failed, retrying", "err", err)
		if err := sleep(ctx, r.policy.delay(attempt, 0)); err != nil {
			return "", err
		}
	}
}

// syncShards starts a reader for every shard that is ready: not finished,
// not running, with its parent finished (or gone from the stream, which
// happens once its records are older than 24 hours), and whose lease this
// relay could take.
func (r *Relay) syncShards(ctx context.Context, arn string, running map[string]*shardWork, out chan<- record, readers *sync.WaitGroup) error {
	for id, w := range running {
		if w.finished.Load() || w.stopped.Load() {
			delete(running, id)
		}
	}
	shards, err := dynamo.ListShards(ctx, r.streams, arn)
	if err != nil {
		return err
	}
	leases, err := r.leases.List(ctx, arn)
	if err != nil {
		return err
	}
	finished := map[string]bool{}
	for _, l := range leases {
		finished[l.ShardID] = l.Finished()
	}
	known := map[string]bool{}
	for _, s := range shards {
		known[s.ID] = true
	}
	r.listed.Store(&shardListing{arn: arn, ids: known})
	for _, s := range shards {
		if running[s.ID] != nil || finished[s.ID] {
			continue
		}
		if s.ParentID != "" && known[s.ParentID] && !finished[s.ParentID] {
			continue // a child waits for its parent, or order across the split is lost
		}
		lease, err := r.leases.Acquire(ctx, arn, s)
		if errors.Is(err, dynamo.ErrLeaseHeld) {
			continue
		}
		if err != nil {
			return err
		}
		if lease.Finished() {
			continue
		}
		// LATEST only where nothing was read before: a child of a shard we
		// finished continues where its parent ended.
		latest := lease.Checkpoint == "" && r.cfg.StartPosition == StartLatest && !(s.ParentID != "" && finished[s.ParentID])
		rctx, cancel := context.WithCancel(ctx)
		w := &shardWork{id: s.ID, cancel: cancel}
		running[s.ID] = w
		readers.Add(1)
		go func() {
			defer readers.Done()
			r.readShard(rctx, arn, w, lease.Checkpoint, latest, out)
		}()
	}
	return nil
}

// renew extends this relay's leases; a shard whose lease was lost stops.
func (r *Relay) renew(ctx context.Context, arn string, running map[string]*shardWork) {
	for id, w := range running {
		if w.finished.Load() || w.lost.Load() {
			continue
		}
		err := r.leases.Renew(ctx, arn, id, w.settledBefore())
		if errors.Is(err, dynamo.ErrLeaseLost) {
			r.leaseLost(w)
			delete(running, id)
		} else if err != nil && ctx.Err() == nil {
			r.log.Warn("lease renewal failed", "shard", id, "err", err)
		}
	}
}

// renewHolds keeps this process's hold of its owner and then its leases.
// Once another process acts for the owner it stops every shard instead and
// returns an error wrapping dynamo.ErrOwnerTaken.
func (r *Relay) renewHolds(ctx context.Context, arn string, running map[string]*shardWork) error {
	if err := r.renewOwner(ctx); err != nil {
		return r.ownerTaken(err, running)
	}
	r.renew(ctx, arn, running)
	return nil
}

// ownerTaken stops every shard of this relay once another process acts
// for its owner, and returns err: the batch in hand is still delivered and
// marked, but no checkpoint of this process may overwrite the new one's.
func (r *Relay) ownerTaken(err error, running map[string]*shardWork) error {
	// One line for the process: every shard stops for the same reason, and
	// none moved to another owner of its own.
	r.log.Error("another relay process took over this -owner; stopping", "owner", r.cfg.Owner, "shards", len(running), "err", err)
	for _, w := range running {
		r.stopLost(w)
	}
	return err
}

// release gives up the leases of unfinished shards on shutdown so another
// relay (or this one restarted) can take them at once.
func (r *Relay) release(arn string, running map[string]*shardWork) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for id, w := range running {
		if w.finished.Load() || w.lost.Load() {
			continue
		}
		if err := r.leases.Release(ctx, arn, id); err != nil {
			r.log.Warn("lease release failed", "shard", id, "err", err)
		}
	}
}

func (r *Relay) nudge() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}
