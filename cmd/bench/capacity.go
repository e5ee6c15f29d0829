package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddboutbox/ddboutbox/outbox"
)

// The relay capacity scenarios.
const (
	ScenarioSaturation = "saturation"
	ScenarioDrain      = "drain"
	ScenarioSweep      = "sweep"
	ScenarioCrash      = "crash"
)

// AllScenarios lists every scenario in the order they run.
var AllScenarios = []string{ScenarioSaturation, ScenarioDrain, ScenarioSweep, ScenarioCrash}

// Capacity is what the relay capacity scenarios measured.
type Capacity struct {
	Saturation *Saturation   `json:"saturation,omitempty"`
	HalfLoad   *HalfLoad     `json:"half_saturation,omitempty"`
	Drain      *Drain        `json:"drain,omitempty"`
	Sweep      []SweepPoint  `json:"batch_sweep,omitempty"`
	Crash      []CrashResult `json:"crash,omitempty"`
}

// Step is one concurrency step of the saturation ramp.
type Step struct {
	Concurrency    int     `json:"concurrency"`
	WallS          float64 `json:"wall_s"`
	BookingsPerS   float64 `json:"bookings_per_s"`
	DeliveredPerS  float64 `json:"delivered_per_s"`
	BookingP50     float64 `json:"booking_p50_ms"`
	BookingP99     float64 `json:"booking_p99_ms"`
	BacklogStart   int     `json:"backlog_start"`
	BacklogEnd     int     `json:"backlog_end"`
	BacklogMax     int     `json:"backlog_max"`
	BacklogSlope   float64 `json:"backlog_slope_per_s"`
	Requests       int     `json:"endpoint_requests"`
	RequestsPerEvt float64 `json:"endpoint_requests_per_event"`
	Errors         int     `json:"errors"`
}

// Sample is the backlog at one instant of the ramp.
type Sample struct {
	AtS       float64 `json:"at_s"`
	Committed int     `json:"committed"`
	Delivered int     `json:"delivered"`
	Backlog   int     `json:"backlog"`
	// Requests is how many POSTs the endpoint answered, accepted or not.
	Requests int `json:"endpoint_requests"`
}

// Saturation is the ramp: its steps, the saturated one, and the backlog
// sampled every second throughout.
type Saturation struct {
	Steps []Step `json:"steps"`
	// At is the index in Steps of the highest booking rate.
	At int `json:"saturated_step"`
	// Hold is Steps[At]'s concurrency again, for -saturation-hold: the
	// saturated rate and what the targets judge.
	Hold    *Step    `json:"hold,omitempty"`
	Backlog []Sample `json:"backlog"`
	// Lost counts the ramp's and the hold's bookings whose row had not
	// reached the endpoint -drain-timeout after the hold.
	Lost int `json:"lost"`
}

// HalfLoad is the open-loop run at half the saturated booking rate, for
// the end-to-end latency target.
type HalfLoad struct {
	Rate     float64 `json:"bookings_per_s_offered"`
	Achieved float64 `json:"bookings_per_s"`
	Events   int     `json:"events"`
	EndToEnd Latency `json:"end_to_end_latency"`
	Lost     int     `json:"lost"`
	Errors   int     `json:"errors"`
}

// Drain is the backlog drain: DrainEvents written with the relay stopped,
// then the relay started.
type Drain struct {
	Events        int                `json:"events"`
	LoadS         float64            `json:"load_s"`
	DrainS        float64            `json:"drain_s"`
	EventsPerS    float64            `json:"events_per_s"`
	Relay         procUsage          `json:"relay_process"`
	RelayRequests map[string]int     `json:"relay_requests"`
	Requests      int                `json:"endpoint_requests"`
	Lost          int                `json:"lost"`
	Duplicates    int                `json:"duplicates"`
	RelayMetrics  map[string]float64 `json:"relay_metrics"`
}

// SweepPoint is one batch size and window of the sweep.
type SweepPoint struct {
	BatchSize      int      `json:"batch_size"`
	Window         Duration `json:"batch_window"`
	Events         int      `json:"events"`
	EndToEnd       Latency  `json:"end_to_end_latency"`
	Requests       int      `json:"endpoint_requests"`
	RequestsPerEvt float64  `json:"endpoint_requests_per_event"`
	Lost           int      `json:"lost"`
	Errors         int      `json:"errors"`
	DrainS         float64  `json:"drain_s"`
}

// runCapacity runs the scenarios cfg.Scenarios names.
func (e *env) runCapacity(ctx context.Context, rep *Report) error {
	for _, sc := range e.cfg.Scenarios {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		switch sc {
		case ScenarioSaturation:
			rep.Capacity.Saturation, rep.Capacity.HalfLoad, err = e.saturation(ctx)
		case ScenarioDrain:
			rep.Capacity.Drain, err = e.drain(ctx)
		case ScenarioSweep:
			rep.Capacity.Sweep, err = e.sweep(ctx)
		case ScenarioCrash:
			rep.Capacity.Crash, err = e.crash(ctx)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", sc, err)
		}
	}
	return nil
}

// relayRun is a stack with an endpoint and, once started, a relay on it.
type relayRun struct {
	st *stack
	sk *sink
	rp *relayProc
}

// newRelayRun starts a stack (with the counting proxy if proxy) and an
// endpoint, but no relay.
func (e *env) newRelayRun(ctx context.Context, proxy bool) (*relayRun, error) {
	st, err := e.newStack(ctx, proxy)
	if err != nil {
		return nil, err
	}
	sk, err := startSink(time.Duration(e.cfg.SinkLatency))
	if err != nil {
		st.close()
		return nil, err
	}
	return &relayRun{st: st, sk: sk}, nil
}

// startRelayRun is newRelayRun with the relay started on it.
func (e *env) startRelayRun(ctx context.Context) (*relayRun, error) {
	r, err := e.newRelayRun(ctx, true)
	if err != nil {
		return nil, err
	}
	if r.rp, err = e.startRelay(ctx, r.st, r.sk.url); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *relayRun) close() {
	if r.rp != nil {
		_ = r.rp.stop(30 * time.Second)
	}
	r.sk.close()
	r.st.close()
}

// saturation ramps closed-loop outbox bookings with the relay running,
// holds the saturated concurrency for -saturation-hold, then offers half
// the held rate open loop.
func (e *env) saturation(ctx context.Context) (*Saturation, *HalfLoad, error) {
	r, err := e.startRelayRun(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer r.close()
	op := outboxOp(&outbox.Writer{DB: r.st.db, Table: r.st.tables.Outbox}, r.st.tables.Bookings)
	b := startBacklog(r.sk)

	sat := &Saturation{}
	commits := map[string]time.Time{} // every step's, for sat.Lost
	best := 0.0
	for c := 1; c <= e.cfg.MaxConcurrency; c *= 2 {
		st, err := e.satStep(ctx, r, op, b, fmt.Sprintf("saturation, concurrency %d", c), c, time.Duration(e.cfg.StepDuration), 0, commits)
		if err != nil {
			sat.Backlog = b.close()
			return sat, nil, err
		}
		sat.Steps = append(sat.Steps, st)
		if st.BookingsPerS > best {
			best, sat.At = st.BookingsPerS, len(sat.Steps)-1
		}
		// The rate stopped rising: one more step confirms it.
		if len(sat.Steps) >= 3 && st.BookingsPerS < 1.05*sat.Steps[len(sat.Steps)-2].BookingsPerS &&
			sat.Steps[len(sat.Steps)-2].BookingsPerS < 1.05*sat.Steps[len(sat.Steps)-3].BookingsPerS {
			break
		}
	}

	// A step is too short to judge delivery against bookings to a few
	// percent: rows go out in batches of up to a window's worth, so one
	// batch more or less moves a 10 s step's rate by 10%. Hold the
	// saturated concurrency longer, starting from an empty backlog, and
	// fit only after the pipeline has filled (a window, the endpoint's
	// latency and a second of slack).
	r.sk.waitForAll(ctx, commits, time.Duration(e.cfg.DrainTimeout))
	settle := time.Duration(e.cfg.BatchWindow) + time.Duration(e.cfg.SinkLatency) + time.Second
	hold, err := e.satStep(ctx, r, op, b, "saturation, hold", sat.Steps[sat.At].Concurrency, time.Duration(e.cfg.SaturationHold), settle, commits)
	sat.Backlog = b.close()
	if err != nil {
		return sat, nil, err
	}
	sat.Hold = &hold

	// Let the backlog drain, then offer half the held rate.
	r.sk.waitForAll(ctx, commits, time.Duration(e.cfg.DrainTimeout))
	sat.Lost = r.sk.missing(commits)
	fmt.Fprintf(e.cfg.Log, "bench: saturation: %d bookings, lost %d\n", len(commits), sat.Lost)
	half := &HalfLoad{Rate: hold.BookingsPerS / 2}
	var n loadCounters
	stopProgress := e.progress("half saturation", 0, &n, r.sk)
	lo := runLoad(ctx, op, loadSpec{workers: 4 * e.cfg.MaxConcurrency, rate: half.Rate, duration: time.Duration(e.cfg.StepDuration)}, &n)
	r.sk.waitForAll(ctx, lo.commits, time.Duration(e.cfg.DrainTimeout))
	stopProgress()
	half.Achieved, half.Events, half.Errors = lo.perSecond(), len(lo.commits), lo.errs
	half.EndToEnd, half.Lost = endToEnd(lo.commits, r.sk.arrivals())
	fmt.Fprintf(e.cfg.Log, "bench: half saturation: %.1f bookings/s offered, e2e p50 %.0fms p99 %.0fms, lost %d\n",
		half.Rate, half.EndToEnd.P50, half.EndToEnd.P99, half.Lost)
	return sat, half, ctx.Err()
}

// satStep runs outbox bookings closed loop at concurrency c for d and
// takes the step's figures; rates and growth are fitted to the backlog
// samples from settle after the step's start.
func (e *env) satStep(ctx context.Context, r *relayRun, op bookingOp, b *backlog, label string, c int, d, settle time.Duration, commits map[string]time.Time) (Step, error) {
	var n loadCounters
	stopProgress := e.progress(label, 0, &n, r.sk)
	first := b.sample()
	from := first.AtS + settle.Seconds()
	lo := runLoad(ctx, countCommits(op, &b.committed), loadSpec{workers: c, duration: d}, &n)
	stopProgress()
	maps.Copy(commits, lo.commits)
	if err := ctx.Err(); err != nil {
		return Step{}, err
	}
	last := b.sample()
	st := Step{
		Concurrency: c, WallS: lo.wall.Seconds(), BookingsPerS: lo.perSecond(),
		BacklogStart: first.Backlog, BacklogEnd: last.Backlog, Errors: lo.errs,
	}
	lat := summarize(lo.latencies)
	st.BookingP50, st.BookingP99 = lat.P50, lat.P99
	st.fit(first, last, b.since(from), lo.wall)
	fmt.Fprintf(e.cfg.Log, "bench: %s: %7.1f bookings/s, relay %7.1f delivered/s, backlog %d -> %d (slope %+.1f/s), %.4f requests/event, p99 %.0fms\n",
		label, st.BookingsPerS, st.DeliveredPerS, st.BacklogStart, st.BacklogEnd, st.BacklogSlope, st.RequestsPerEvt, st.BookingP99)
	return st, nil
}

// fit sets the step's delivery rate, backlog growth and maximum, and
// endpoint requests per event from samples (taken between first and last,
// from when the fit starts) and last; with fewer than three points it
// falls back to first and last over wall.
//
// Rates and growth are least-squares slopes over one-second samples:
// deliveries come in batches, so a difference of two instants would depend
// on where they fall in the cycle.
func (st *Step) fit(first, last Sample, samples []Sample, wall time.Duration) {
	samples = append(slices.Clone(samples), last)
	var xs, backlogs, delivered []float64
	for _, s := range samples {
		xs = append(xs, s.AtS)
		backlogs = append(backlogs, float64(s.Backlog))
		delivered = append(delivered, float64(s.Delivered))
		st.BacklogMax = max(st.BacklogMax, s.Backlog)
	}
	st.BacklogSlope = slope(xs, backlogs)
	st.DeliveredPerS = slope(xs, delivered)
	if len(xs) < 3 { // too short to fit: the plain differences
		samples = []Sample{first, last}
		st.DeliveredPerS = float64(last.Delivered-first.Delivered) / wall.Seconds()
		st.BacklogSlope = float64(last.Backlog-first.Backlog) / wall.Seconds()
	}
	if a, z := samples[0], samples[len(samples)-1]; z.Delivered > a.Delivered {
		st.Requests = z.Requests - a.Requests
		st.RequestsPerEvt = float64(st.Requests) / float64(z.Delivered-a.Delivered)
	}
}

// backlog samples committed and delivered counts every second.
type backlog struct {
	sk        *sink
	start     time.Time
	committed atomic.Int64

	mu      sync.Mutex
	samples []Sample
	stop    chan struct{}
	done    chan struct{}
}

func startBacklog(sk *sink) *backlog {
	b := &backlog{sk: sk, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				s := b.sample()
				b.mu.Lock()
				b.samples = append(b.samples, s)
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// sample reads the counts now.
func (b *backlog) sample() Sample {
	c, d := int(b.committed.Load()), b.sk.received()
	return Sample{AtS: time.Since(b.start).Seconds(), Committed: c, Delivered: d, Backlog: c - d, Requests: b.sk.posts()}
}

// since returns the samples taken at or after at seconds.
func (b *backlog) since(at float64) []Sample {
	b.mu.Lock()
	defer b.mu.Unlock()
	i, _ := slices.BinarySearchFunc(b.samples, at, func(s Sample, at float64) int { return cmp.Compare(s.AtS, at) })
	return slices.Clone(b.samples[i:])
}

// close stops sampling and returns every sample.
func (b *backlog) close() []Sample {
	close(b.stop)
	<-b.done
	return b.samples
}

// countCommits counts op's successful bookings into n.
func countCommits(op bookingOp, n *atomic.Int64) bookingOp {
	return func(ctx context.Context, i int) (commit, error) {
		c, err := op(ctx, i)
		if err == nil {
			n.Add(1)
		}
		return c, err
	}
}

// slope is the least-squares slope of ys over xs (0 with fewer than two
// points).
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// drain writes DrainEvents outbox events with no relay running, then
// starts the relay and times it until every event is marked DELIVERED.
func (e *env) drain(ctx context.Context) (*Drain, error) {
	r, err := e.newRelayRun(ctx, true)
	if err != nil {
		return nil, err
	}
	defer r.close()
	st, sk := r.st, r.sk

	d := &Drain{Events: e.cfg.DrainEvents}
	t0 := time.Now()
	ids, err := e.loadBacklog(ctx, st, e.cfg.DrainEvents)
	if err != nil {
		return nil, err
	}
	d.LoadS = time.Since(t0).Seconds()
	fmt.Fprintf(e.cfg.Log, "bench: drain: %d events written in %.1fs; starting the relay\n", len(ids), d.LoadS)

	t0 = time.Now()
	if r.rp, err = e.startRelay(ctx, st, sk.url); err != nil {
		return nil, err
	}
	rp := r.rp
	if d.RelayMetrics, err = e.waitMarked(ctx, rp, len(ids), time.Duration(e.cfg.ModeTimeout), func(m map[string]float64) {
		fmt.Fprintf(e.cfg.Log, "bench: drain: %.0f/%d marked, %d at the endpoint, %s\n",
			m["events_delivered_total"], len(ids), sk.received(), time.Since(t0).Round(time.Second))
	}); err != nil {
		return d, err
	}
	d.DrainS = time.Since(t0).Seconds()
	d.EventsPerS = float64(len(ids)) / d.DrainS
	if u, err := rp.usage(); err == nil {
		d.Relay = u
	}
	if err := rp.stop(30 * time.Second); err != nil {
		fmt.Fprintf(e.cfg.Log, "bench: drain: relay stop: %v\n", err)
	}
	d.RelayRequests, _, _ = st.proxySnapshot()
	arrived := sk.arrivals()
	for _, id := range ids {
		if _, ok := arrived[id]; !ok {
			d.Lost++
		}
	}
	d.Requests, d.Duplicates = sk.posts(), sk.srv.Stats().Duplicates
	fmt.Fprintf(e.cfg.Log, "bench: drain: %d events in %.1fs = %.0f events/s, relay peak RSS %.1f MiB, CPU %.1fs, lost %d\n",
		d.Events, d.DrainS, d.EventsPerS, d.Relay.PeakRSSMiB, d.Relay.CPUSeconds, d.Lost)
	return d, nil
}

// loadBacklog writes n BookingReserved outbox items, exactly as
// outbox.Writer stores them, with BatchWriteItem: the backlog does not
// need the bookings, only the events in the stream.
func (e *env) loadBacklog(ctx context.Context, st *stack, n int) ([]string, error) {
	const perRequest = 25 // BatchWriteItem's limit
	ids := make([]string, n)
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range 8 {
		wg.Go(func() {
			for {
				from := int(next.Add(perRequest)) - perRequest
				if from >= n || ctx.Err() != nil {
					return
				}
				reqs := make([]types.WriteRequest, 0, perRequest)
				for i := from; i < min(from+perRequest, n); i++ {
					_, ev, err := newBookingWrite(st.tables.Bookings, i, true)
					var item map[string]types.AttributeValue
					if err == nil {
						item, err = outbox.Item(ev)
					}
					if err != nil {
						mu.Lock()
						first = err
						mu.Unlock()
						return
					}
					ids[i] = ev.ID
					reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
				}
				if err := batchWrite(ctx, st.clients.DB, st.tables.Outbox, reqs); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, fmt.Errorf("write backlog: %w", first)
	}
	return ids, ctx.Err()
}

// batchWrite writes reqs, resending what DynamoDB leaves unprocessed.
func batchWrite(ctx context.Context, db *dynamodb.Client, table string, reqs []types.WriteRequest) error {
	for attempt := 0; len(reqs) > 0; attempt++ {
		out, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: reqs}})
		if err != nil {
			return err
		}
		reqs = out.UnprocessedItems[table]
		if len(reqs) > 0 {
			if err := sleep(ctx, time.Duration(min(attempt+1, 20))*50*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}

// sweep runs the relay with every batch size and window against an open
// loop of SweepRate bookings/s for SweepDuration each, on one stack.
func (e *env) sweep(ctx context.Context) ([]SweepPoint, error) {
	r, err := e.newRelayRun(ctx, false)
	if err != nil {
		return nil, err
	}
	defer r.close()
	st, sk := r.st, r.sk
	op := outboxOp(&outbox.Writer{DB: st.db, Table: st.tables.Outbox}, st.tables.Bookings)
	var points []SweepPoint
	for _, size := range e.cfg.SweepBatchSizes {
		for _, w := range e.cfg.SweepWindows {
			window := max(time.Duration(w), time.Millisecond) // the relay's "no linger"
			rp, err := e.startRelayBatching(ctx, st, sk.url, size, window)
			if err != nil {
				return points, err
			}
			reqBefore := sk.posts()
			var n loadCounters
			label := fmt.Sprintf("sweep, batch %d, window %s", size, time.Duration(w))
			stopProgress := e.progress(label, 0, &n, sk)
			lo := runLoad(ctx, op, loadSpec{workers: 256, rate: e.cfg.SweepRate, duration: time.Duration(e.cfg.SweepDuration)}, &n)
			drained := sk.waitForAll(ctx, lo.commits, max(time.Duration(e.cfg.DrainTimeout), 3*time.Minute))
			stopProgress()
			if err := rp.stop(30 * time.Second); err != nil {
				fmt.Fprintf(e.cfg.Log, "bench: %s: relay stop: %v\n", label, err)
			}
			p := SweepPoint{BatchSize: size, Window: w, Events: len(lo.commits), Errors: lo.errs, DrainS: drained.Seconds()}
			p.EndToEnd, p.Lost = endToEnd(lo.commits, sk.arrivals())
			p.Requests = sk.posts() - reqBefore
			if p.Events > 0 {
				p.RequestsPerEvt = float64(p.Requests) / float64(p.Events)
			}
			points = append(points, p)
			fmt.Fprintf(e.cfg.Log, "bench: %s: e2e p50 %.0fms p99 %.0fms, %.3f requests/event, lost %d\n",
				label, p.EndToEnd.P50, p.EndToEnd.P99, p.RequestsPerEvt, p.Lost)
			if err := ctx.Err(); err != nil {
				return points, err
			}
		}
	}
	return points, nil
}

// parseInts reads a comma-separated list of positive integers.
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		v, err := strconv.Atoi(f)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// parseDurations reads a comma-separated list of durations (0 allowed).
func parseDurations(s string) ([]Duration, error) {
	var out []Duration
	for _, f := range splitList(s) {
		v, err := time.ParseDuration(f)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%q is not a duration", f)
		}
		out = append(out, Duration(v))
	}
	return out, nil
}
