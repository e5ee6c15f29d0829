package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/ddboutbox/ddboutbox/cmd/analytics-sink/endpoint"
	"github.com/ddboutbox/ddboutbox/outbox"
)

// defaultImage is the DynamoDB Local image started when no endpoint is
// given; DYNAMODB_LOCAL_IMAGE overrides it (as in the integration tests).
const defaultImage = "amazon/dynamodb-local:3.3.0"

// Config is the bench's settings.
type Config struct {
	Bookings    int      `json:"bookings"`
	Concurrency int      `json:"concurrency"`
	Rounds      int      `json:"rounds"`
	Modes       []string `json:"modes"`
	SinkLatency Duration `json:"sink_latency"`
	BatchSize   int      `json:"relay_batch_size"`
	BatchWindow Duration `json:"relay_batch_window"`
	// BatchesInFlight is the relay's -batches-in-flight.
	BatchesInFlight int `json:"relay_batches_in_flight"`
	// MarkBatchSize is the relay's -mark-batch-size.
	MarkBatchSize int `json:"relay_mark_batch_size"`
	// Scenarios are the relay capacity scenarios to run after the modes.
	Scenarios []string `json:"scenarios"`
	// Saturation: closed-loop steps of StepDuration at concurrency 1, 2,
	// 4, ... up to MaxConcurrency, until the booking rate stops rising.
	StepDuration   Duration `json:"saturation_step"`
	MaxConcurrency int      `json:"saturation_max_concurrency"`
	// SaturationHold is how long the saturated concurrency runs again,
	// for the figures the targets judge.
	SaturationHold Duration `json:"saturation_hold"`
	// DrainEvents is the backlog the drain scenario writes first.
	DrainEvents int `json:"drain_events"`
	// Sweep: every batch size with every window, open loop at SweepRate
	// bookings/s for SweepDuration.
	SweepBatchSizes []int      `json:"sweep_batch_sizes"`
	SweepWindows    []Duration `json:"sweep_windows"`
	SweepRate       float64    `json:"sweep_rate"`
	SweepDuration   Duration   `json:"sweep_duration"`
	// WarmUp is how many transactions warm each fresh container up.
	WarmUp int `json:"warm_up_transactions"`
	// ModeWarmUp is how long each mode runs unmeasured first.
	ModeWarmUp Duration `json:"mode_warm_up"`
	// CrashBookings is how many bookings a crash run aims for; it is
	// killed half way.
	CrashBookings int           `json:"crash_bookings"`
	DrainTimeout  Duration      `json:"drain_timeout"`
	ModeTimeout   Duration      `json:"mode_timeout"`
	Endpoint      string        `json:"dynamodb_endpoint"`
	RelayBin      string        `json:"relay_bin,omitempty"`
	KeepTables    bool          `json:"keep_tables"`
	Progress      time.Duration `json:"-"`
	Log           io.Writer     `json:"-"`
}

// Duration marshals as a Go duration string.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// env is what every scenario shares.
type env struct {
	cfg        Config
	image      string
	relayBin   string
	bookingBin string
	hc         *http.Client
	runID      string
}

// dynamoDB names what the runs write to: the endpoint given, or the
// DynamoDB Local image started per run.
func (e *env) dynamoDB() string {
	if e.cfg.Endpoint != "" {
		return e.cfg.Endpoint
	}
	return "container " + e.image
}

// Run builds the binaries, runs the modes in rounds and then the relay
// capacity scenarios, and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	e := &env{
		cfg:   cfg,
		image: imageName(),
		runID: time.Now().UTC().Format("20060102-150405") + "-" + uuid.NewString()[:8],
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: 2 * cfg.Concurrency, MaxIdleConnsPerHost: 2 * cfg.Concurrency, IdleConnTimeout: 30 * time.Second,
		}},
	}
	if cfg.Endpoint != "" {
		fmt.Fprintf(cfg.Log, "bench: sharing DynamoDB at %s between every run: DynamoDB Local slows down as stream records pile up, so later runs are slower; leave -dynamodb-endpoint empty for a fresh container per run\n", cfg.Endpoint)
	} else {
		fmt.Fprintf(cfg.Log, "bench: a fresh DynamoDB Local container (%s) per run\n", e.image)
	}
	dir, err := os.MkdirTemp("", "ddboutbox-bench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if e.relayBin = cfg.RelayBin; e.relayBin == "" {
		fmt.Fprintln(cfg.Log, "bench: building ./cmd/relay")
		if e.relayBin, err = buildCmd(ctx, dir, "relay"); err != nil {
			return nil, err
		}
	}
	if slices.Contains(cfg.Modes, ModeBookingHTTP) {
		fmt.Fprintln(cfg.Log, "bench: building ./cmd/booking")
		if e.bookingBin, err = buildCmd(ctx, dir, "booking"); err != nil {
			return nil, err
		}
	}

	rep := &Report{
		StartedAt: time.Now().UTC(),
		Config:    cfg,
		Host:      hostInfo(e.dynamoDB()),
		Methods:   methods(),
	}
	for round := range cfg.Rounds {
		for pos, mode := range rotate(cfg.Modes, round) {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			res, err := e.runMode(ctx, mode, round, pos)
			if err != nil {
				return rep, fmt.Errorf("round %d, %s: %w", round+1, mode, err)
			}
			rep.Runs = append(rep.Runs, res)
			fmt.Fprintf(cfg.Log, "bench: round %d/%d %-15s %s\n", round+1, cfg.Rounds, mode, res.oneLine())
		}
	}
	rep.summarize()
	if err := e.runCapacity(ctx, rep); err != nil {
		return rep, err
	}
	rep.evaluate()
	return rep, nil
}

// Result is one mode's figures in one round.
type Result struct {
	Mode  string `json:"mode"`
	Round int    `json:"round"`
	// Position is the mode's place in its round's order, from 0.
	Position  int     `json:"position"`
	Bookings  int     `json:"bookings"`
	Committed int     `json:"committed"`
	Errors    int     `json:"errors"`
	FirstErr  string  `json:"first_error,omitempty"`
	WallS     float64 `json:"wall_s"`
	PerSecond float64 `json:"bookings_per_s"`
	// Booking is the latency of one booking as its handler would see it.
	Booking Latency `json:"booking_latency"`
	// EndToEnd is commit acknowledged -> first arrival of the row at the
	// endpoint; nil for modes without analytics.
	EndToEnd *Latency `json:"end_to_end_latency,omitempty"`
	// DrainS is how long after the last booking the last row arrived (or
	// the drain timeout); for txn-floor-marks, the last mark was made.
	DrainS                float64 `json:"drain_s,omitempty"`
	EndpointRequests      int     `json:"endpoint_requests"`
	EndpointRequestsPer1k float64 `json:"endpoint_requests_per_1000_events"`
	// AppWrites are the write calls made in-process (PutItem or
	// TransactWriteItems); AppWriteItems the items they wrote.
	AppWrites     int `json:"app_write_requests"`
	AppWriteItems int `json:"app_write_items"`
	// RelayWrites are the relay's write requests to DynamoDB by operation
	// and table, counted by the proxy it talks through (outbox only).
	RelayWrites map[string]int `json:"relay_write_requests,omitempty"`
	// RelayRequests are all of the relay's DynamoDB requests by operation.
	RelayRequests map[string]int `json:"relay_requests,omitempty"`
	// RelayMetrics are the relay's counters from /metrics before SIGTERM,
	// since it started: the warm-up's included. RelayMetricsWarmUp are
	// the same after the warm-up, to take them out.
	RelayMetrics       map[string]float64 `json:"relay_metrics,omitempty"`
	RelayMetricsWarmUp map[string]float64 `json:"relay_metrics_warm_up,omitempty"`
	// Relay is the relay process's CPU time and peak RSS before SIGTERM.
	Relay *procUsage `json:"relay_process,omitempty"`
	// EmulatorCPUMs is DynamoDB Local's CPU time per committed booking,
	// from the first booking until every row arrived and was marked; 0
	// when it could not be read.
	EmulatorCPUMs      float64 `json:"ddb_local_cpu_ms_per_booking,omitempty"`
	WritesPerEvent     float64 `json:"ddb_write_requests_per_event"`
	WriteItemsPerEvent float64 `json:"ddb_write_items_per_event"`
	Lost               int     `json:"lost"`
	Duplicates         int     `json:"duplicates"`
	AnalyticsErrors    int     `json:"analytics_errors,omitempty"`
}

func (r Result) oneLine() string {
	s := fmt.Sprintf("%7.1f bookings/s  p50 %7.1fms  p99 %7.1fms", r.PerSecond, r.Booking.P50, r.Booking.P99)
	if r.EndToEnd != nil {
		s += fmt.Sprintf("  e2e p50 %7.1fms p99 %7.1fms  lost %d dup %d", r.EndToEnd.P50, r.EndToEnd.P99, r.Lost, r.Duplicates)
	}
	if r.Errors > 0 {
		s += fmt.Sprintf("  ERRORS %d (%s)", r.Errors, r.FirstErr)
	}
	return s
}

// runMode runs one mode once on a fresh stack: set-up, the bookings, the
// drain, the count.
func (e *env) runMode(ctx context.Context, mode string, round, pos int) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(e.cfg.ModeTimeout))
	defer cancel()
	res := Result{Mode: mode, Round: round + 1, Position: pos, Bookings: e.cfg.Bookings}
	label := fmt.Sprintf("round %d/%d %s", round+1, e.cfg.Rounds, mode)

	st, err := e.newStack(ctx, usesRelay(mode))
	if err != nil {
		return res, err
	}
	defer st.close()
	var (
		sk      *sink
		rp      *relayProc
		bp      *bookingProc
		bpProxy *ddbProxy
		q       *memQueue
		mq      *markQueue
		op      bookingOp
	)
	if hasAnalytics(mode) {
		if sk, err = startSink(time.Duration(e.cfg.SinkLatency)); err != nil {
			return res, err
		}
		defer sk.close()
	}
	if usesRelay(mode) {
		if rp, err = e.startRelay(ctx, st, sk.url); err != nil {
			return res, err
		}
		defer func() {
			if rp != nil {
				_ = rp.stop(30 * time.Second)
			}
		}()
	}
	switch mode {
	case ModePutOnly:
		op = putOnlyOp(st.db, st.tables.Bookings)
	case ModeTxnFloor:
		op = txnFloorOp(st.db, st.tables.Bookings, st.tables.Outbox, nil)
	case ModeTxnFloorMarks:
		mq = startMarkQueue(st.db, st.tables.Outbox)
		defer func() {
			if mq != nil {
				mq.close()
			}
		}()
		op = txnFloorOp(st.db, st.tables.Bookings, st.tables.Outbox, mq)
	case ModeSyncDualWrite:
		op = syncDualWriteOp(st.db, st.tables.Bookings, e.hc, sk.url)
	case ModeMemoryQueue:
		q = startMemQueue(e.hc, sk.url)
		defer func() {
			if q != nil {
				q.close()
			}
		}()
		op = memoryQueueOp(st.db, st.tables.Bookings, q)
	case ModeOutbox:
		op = outboxOp(&outbox.Writer{DB: st.db, Table: st.tables.Outbox}, st.tables.Bookings)
	case ModeBookingHTTP:
		// Its own counting proxy: the booking process writes through
		// its own client, so its writes are counted on the wire.
		if bpProxy, err = startProxy(st.endpoint); err != nil {
			return res, err
		}
		defer bpProxy.close()
		if bp, err = startBooking(ctx, e.bookingBin, st, bpProxy.url); err != nil {
			return res, err
		}
		defer bp.stop(10 * time.Second)
		op = bookingHTTPOp(e.hc, bp.url)
	default:
		return res, fmt.Errorf("unknown mode %q", mode)
	}
	if res.RelayMetricsWarmUp, err = e.warmUpMode(ctx, label, op, sk, rp, mq); err != nil {
		return res, err
	}
	var before endpoint.Stats // what the warm-up sent
	beforePosts := 0
	if sk != nil {
		before, beforePosts = sk.srv.Stats(), sk.posts()
	}
	st.db.reset()
	st.proxySnapshot() // count the relay's requests from here on
	if bpProxy != nil {
		bpProxy.snapshot() // and the booking process's
	}

	markedBefore := 0
	if mq != nil {
		markedBefore = mq.count()
	}
	cpuBefore, cpuOK := st.emulatorCPU()
	var n loadCounters
	stopProgress := e.progress(label, e.cfg.Bookings, &n, sk)
	lo := runLoad(ctx, op, loadSpec{workers: e.cfg.Concurrency, count: e.cfg.Bookings}, &n)
	if err := ctx.Err(); err != nil {
		stopProgress()
		return res, fmt.Errorf("bookings did not finish within -mode-timeout: %w", err)
	}
	res.Committed = len(lo.latencies)
	res.Errors, res.AnalyticsErrors = lo.errs, lo.analyticsErrs
	if mq != nil {
		// Its marks are counted and timed with its bookings' writes.
		t0 := time.Now()
		if err := mq.wait(ctx); err != nil {
			stopProgress()
			return res, fmt.Errorf("marks did not finish within -mode-timeout: %w", err)
		}
		res.DrainS = time.Since(t0).Seconds()
		// Each committed booking's event must have moved from PENDING
		// to DELIVERED: what did not counts as an analytics error.
		res.AnalyticsErrors += max(len(lo.latencies)-(mq.count()-markedBefore), 0)
	}
	if lo.firstErr != nil {
		res.FirstErr = lo.firstErr.Error()
	}
	res.WallS = lo.wall.Seconds()
	res.PerSecond = lo.perSecond()
	res.Booking = summarize(lo.latencies)
	res.AppWrites = int(st.db.requests.Load())
	res.AppWriteItems = int(st.db.items.Load())
	if bpProxy != nil {
		_, writes, items := bpProxy.snapshot()
		res.AppWrites, res.AppWriteItems = 0, items
		for _, n := range writes {
			res.AppWrites += n
		}
	}

	if sk != nil {
		res.DrainS = sk.waitForAll(ctx, lo.commits, time.Duration(e.cfg.DrainTimeout)).Seconds()
	}
	stopProgress()

	relayWrites, relayItems := 0, 0
	switch {
	case q != nil:
		_, dropped := q.close()
		q = nil
		res.AnalyticsErrors += dropped
	case mq != nil:
		mq.close()
		mq = nil
	case rp != nil:
		m, err := e.waitMarked(ctx, rp, sk.received(), markWait, nil)
		if err != nil {
			fmt.Fprintf(e.cfg.Log, "bench: %s: relay metrics: %v\n", label, err)
		}
		res.RelayMetrics = m
		if u, err := rp.usage(); err == nil {
			res.Relay = &u
		}
		if err := rp.stop(30 * time.Second); err != nil {
			fmt.Fprintf(e.cfg.Log, "bench: %s: relay stop: %v\n", label, err)
		}
		rp = nil
		res.RelayRequests, res.RelayWrites, relayItems = st.proxySnapshot()
		for _, n := range res.RelayWrites {
			relayWrites += n
		}
	}
	if cpu, ok := st.emulatorCPU(); ok && cpuOK && res.Committed > 0 {
		res.EmulatorCPUMs = (cpu - cpuBefore) * 1000 / float64(res.Committed)
	}
	if res.Committed > 0 {
		res.WritesPerEvent = float64(res.AppWrites+relayWrites) / float64(res.Committed)
		res.WriteItemsPerEvent = float64(res.AppWriteItems+relayItems) / float64(res.Committed)
	}
	if sk != nil {
		e2e, lost := endToEnd(lo.commits, sk.arrivals())
		res.EndToEnd, res.Lost = &e2e, lost
		st := sk.srv.Stats()
		res.Duplicates = st.Duplicates - before.Duplicates
		res.EndpointRequests = sk.posts() - beforePosts
		if len(lo.commits) > 0 {
			res.EndpointRequestsPer1k = float64(res.EndpointRequests) * 1000 / float64(len(lo.commits))
		}
	}
	return res, nil
}

// warmUpMode runs the mode itself, unmeasured, for -mode-warm-up, and
// waits until what it sent was delivered and marked: DynamoDB Local's JIT
// compiles each operation's path (stream writes, UpdateItem, GetRecords)
// only once it runs, and a mode must not pay for that in its figures.
// With a relay, it returns the relay's counters once the warm-up's events
// are marked.
func (e *env) warmUpMode(ctx context.Context, label string, op bookingOp, sk *sink, rp *relayProc, mq *markQueue) (map[string]float64, error) {
	d := time.Duration(e.cfg.ModeWarmUp)
	if d <= 0 {
		return nil, nil
	}
	var n loadCounters
	lo := runLoad(ctx, op, loadSpec{workers: e.cfg.Concurrency, duration: d}, &n)
	if lo.firstErr != nil {
		return nil, fmt.Errorf("warm-up: %w", lo.firstErr)
	}
	if sk != nil {
		sk.waitForAll(ctx, lo.commits, time.Duration(e.cfg.DrainTimeout))
	}
	if mq != nil {
		if err := mq.wait(ctx); err != nil {
			return nil, fmt.Errorf("warm-up: marks: %w", err)
		}
	}
	var m map[string]float64
	if rp != nil {
		var err error
		if m, err = e.waitMarked(ctx, rp, sk.received(), markWait, nil); err != nil {
			fmt.Fprintf(e.cfg.Log, "bench: %s: warm-up: %v\n", label, err)
		}
	}
	return m, ctx.Err()
}

// endToEnd is the commit -> first arrival latency of every committed event
// that arrived, and how many did not.
func endToEnd(commits, arrived map[string]time.Time) (Latency, int) {
	lost := 0
	e2e := make([]time.Duration, 0, len(commits))
	for key, at := range commits {
		got, ok := arrived[key]
		if !ok {
			lost++
			continue
		}
		e2e = append(e2e, got.Sub(at))
	}
	return summarize(e2e), lost
}

// startRelay starts the relay process on st with the bench's settings.
func (e *env) startRelay(ctx context.Context, st *stack, sinkURL string) (*relayProc, error) {
	return e.startRelayBatching(ctx, st, sinkURL, e.cfg.BatchSize, time.Duration(e.cfg.BatchWindow))
}

// startRelayBatching is startRelay with another batch size and window.
func (e *env) startRelayBatching(ctx context.Context, st *stack, sinkURL string, batchSize int, window time.Duration) (*relayProc, error) {
	return startRelay(ctx, relaySettings{
		bin: e.relayBin, ddbEndpoint: st.relayEndpoint(), sinkURL: sinkURL,
		owner: "bench-" + e.runID, tables: st.tables,
		batchSize: batchSize, batchWindow: window, inFlight: e.cfg.BatchesInFlight,
		markBatch: e.cfg.MarkBatchSize,
	})
}

// markWait bounds how long the modes wait for the relay's last marks after
// the last row arrived.
const markWait = 10 * time.Second

// waitMarked waits, at most timeout, until the relay has marked want
// events (delivered + duplicate), then returns its counters. progress, if
// not nil, is called with the counters every cfg.Progress.
func (e *env) waitMarked(ctx context.Context, rp *relayProc, want int, timeout time.Duration, progress func(map[string]float64)) (map[string]float64, error) {
	start, last := time.Now(), time.Now()
	for {
		m, err := rp.metrics(ctx)
		if err == nil && m["events_delivered_total"]+m["events_duplicate_total"] >= float64(want) {
			return m, nil
		}
		if err := ctx.Err(); err != nil {
			return m, err
		}
		if time.Since(start) > timeout {
			return m, fmt.Errorf("relay marked %.0f of %d events within %s (last error: %v)", m["events_delivered_total"]+m["events_duplicate_total"], want, timeout, err)
		}
		if progress != nil && e.cfg.Progress > 0 && time.Since(last) >= e.cfg.Progress {
			last = time.Now()
			progress(m)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// progress prints a line every cfg.Progress until the returned func is
// called.
func (e *env) progress(label string, total int, n *loadCounters, sk *sink) func() {
	if e.cfg.Progress <= 0 {
		return func() {}
	}
	stop := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	before := 0 // rows of earlier phases (warm-up, earlier steps)
	if sk != nil {
		before = sk.received()
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(e.cfg.Progress)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			done := n.answered.Load()
			line := fmt.Sprintf("bench: %s: %d bookings, %.0f/s, %s", label, done,
				float64(done)/time.Since(start).Seconds(), time.Since(start).Round(time.Second))
			if total > 0 {
				line = fmt.Sprintf("bench: %s: %d/%d bookings, %.0f/s, %s", label, done, total,
					float64(done)/time.Since(start).Seconds(), time.Since(start).Round(time.Second))
			}
			if sk != nil {
				line += fmt.Sprintf(", %d rows at the endpoint", sk.received()-before)
			}
			fmt.Fprintln(e.cfg.Log, line)
		}
	}()
	return func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-finished
	}
}
