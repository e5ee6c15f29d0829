package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/uuid"
	"github.com/testcontainers/testcontainers-go"
	tcdynamodb "github.com/testcontainers/testcontainers-go/modules/dynamodb"

	"github.com/ddboutbox/ddboutbox/dynamo"
	"github.com/ddboutbox/ddboutbox/outbox"
)

// defaultImage is the DynamoDB Local image started when no endpoint is
// given; DYNAMODB_LOCAL_IMAGE overrides it (as in the integration tests).
const defaultImage = "amazon/dynamodb-local:3.3.0"

// Config is the bench's settings.
type Config struct {
	Bookings     int           `json:"bookings"`
	Concurrency  int           `json:"concurrency"`
	Rounds       int           `json:"rounds"`
	Modes        []string      `json:"modes"`
	SinkLatency  Duration      `json:"sink_latency"`
	BatchSize    int           `json:"relay_batch_size"`
	BatchWindow  Duration      `json:"relay_batch_window"`
	DrainTimeout Duration      `json:"drain_timeout"`
	ModeTimeout  Duration      `json:"mode_timeout"`
	Endpoint     string        `json:"dynamodb_endpoint"`
	RelayBin     string        `json:"relay_bin,omitempty"`
	KeepTables   bool          `json:"keep_tables"`
	Progress     time.Duration `json:"-"`
	Log          io.Writer     `json:"-"`
}

// Duration marshals as a Go duration string.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// env is what every mode shares.
type env struct {
	cfg         Config
	clients     *dynamo.Clients
	db          *countingDB
	tables      dynamo.Tables
	floorOutbox string
	proxy       *ddbProxy
	relayBin    string
	hc          *http.Client
	runID       string
}

// Run sets up DynamoDB, the tables and the relay binary, runs the rounds
// and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	endpoint := cfg.Endpoint
	if endpoint == "" {
		image := defaultImage
		if v := os.Getenv("DYNAMODB_LOCAL_IMAGE"); v != "" {
			image = v
		}
		fmt.Fprintf(cfg.Log, "bench: starting DynamoDB Local container %s\n", image)
		c, err := tcdynamodb.Run(ctx, image, testcontainers.WithCmdArgs("-inMemory", "-sharedDb"))
		if c != nil {
			defer func() { _ = testcontainers.TerminateContainer(c) }()
		}
		if err != nil {
			return nil, fmt.Errorf("start DynamoDB Local container %s: %w", image, err)
		}
		hostPort, err := c.ConnectionString(ctx)
		if err != nil {
			return nil, fmt.Errorf("container endpoint: %w", err)
		}
		endpoint = "http://" + hostPort
	}
	cfg.Endpoint = endpoint

	clients, err := dynamo.NewClients(ctx, dynamo.Config{Endpoint: endpoint})
	if err != nil {
		return nil, err
	}
	runID := time.Now().UTC().Format("20060102-150405") + "-" + uuid.NewString()[:8]
	prefix := "bench-" + runID + "-"
	e := &env{
		cfg:     cfg,
		clients: clients,
		db:      &countingDB{db: clients.DB},
		tables: dynamo.Tables{
			Outbox: prefix + "Outbox", Bookings: prefix + "Bookings", State: prefix + "State",
		},
		floorOutbox: prefix + "FloorOutbox",
		runID:       runID,
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: 2 * cfg.Concurrency, MaxIdleConnsPerHost: 2 * cfg.Concurrency, IdleConnTimeout: 30 * time.Second,
		}},
	}
	fmt.Fprintf(cfg.Log, "bench: DynamoDB at %s, tables %s*\n", endpoint, prefix)
	if err := dynamo.EnsureTables(ctx, clients.DB, e.tables); err != nil {
		return nil, err
	}
	// The floor's outbox-shaped table: the same schema (stream, pending
	// index, TTL) as the real one, but no relay reads it.
	floor := e.tables
	floor.Outbox = e.floorOutbox
	if err := dynamo.EnsureTables(ctx, clients.DB, floor); err != nil {
		return nil, err
	}
	if !cfg.KeepTables {
		defer e.deleteTables()
	}

	if contains(cfg.Modes, ModeOutbox) {
		e.relayBin = cfg.RelayBin
		if e.relayBin == "" {
			dir, err := os.MkdirTemp("", "ddboutbox-bench")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(dir)
			fmt.Fprintln(cfg.Log, "bench: building ./cmd/relay")
			if e.relayBin, err = buildRelay(ctx, dir); err != nil {
				return nil, err
			}
		}
		if e.proxy, err = startProxy(endpoint); err != nil {
			return nil, err
		}
		defer e.proxy.close()
	}

	rep := &Report{
		StartedAt: time.Now().UTC(),
		Config:    cfg,
		Host:      hostInfo(),
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
	return rep, nil
}

func (e *env) deleteTables() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, t := range []string{e.tables.Outbox, e.tables.Bookings, e.tables.State, e.floorOutbox} {
		if _, err := e.clients.DB.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(t)}); err != nil {
			fmt.Fprintf(e.cfg.Log, "bench: delete table %s: %v\n", t, err)
		}
	}
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
	// the drain timeout).
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
	// RelayMetrics are the relay's counters from /metrics before SIGTERM.
	RelayMetrics       map[string]float64 `json:"relay_metrics,omitempty"`
	WritesPerEvent     float64            `json:"ddb_write_requests_per_event"`
	WriteItemsPerEvent float64            `json:"ddb_write_items_per_event"`
	Lost               int                `json:"lost"`
	Duplicates         int                `json:"duplicates"`
	AnalyticsErrors    int                `json:"analytics_errors,omitempty"`
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

// runMode runs one mode once: set-up, the bookings, the drain, the count.
func (e *env) runMode(ctx context.Context, mode string, round, pos int) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(e.cfg.ModeTimeout))
	defer cancel()
	res := Result{Mode: mode, Round: round + 1, Position: pos, Bookings: e.cfg.Bookings}

	var (
		sk    *sink
		rp    *relayProc
		q     *memQueue
		op    bookingOp
		label = fmt.Sprintf("round %d/%d %s", round+1, e.cfg.Rounds, mode)
	)
	if hasAnalytics(mode) {
		var err error
		if sk, err = startSink(time.Duration(e.cfg.SinkLatency)); err != nil {
			return res, err
		}
		defer sk.close()
	}
	switch mode {
	case ModePutOnly:
		op = putOnlyOp(e.db, e.tables.Bookings)
	case ModeTxnFloor:
		op = txnFloorOp(e.db, e.tables.Bookings, e.floorOutbox)
	case ModeSyncDualWrite:
		op = syncDualWriteOp(e.db, e.tables.Bookings, e.hc, sk.url)
	case ModeMemoryQueue:
		q = startMemQueue(e.hc, sk.url)
		defer func() {
			if q != nil {
				q.close()
			}
		}()
		op = memoryQueueOp(e.db, e.tables.Bookings, q)
	case ModeOutbox:
		e.proxy.snapshot() // forget what an earlier relay did
		var err error
		rp, err = startRelay(ctx, relaySettings{
			bin: e.relayBin, ddbEndpoint: e.proxy.url, sinkURL: sk.url,
			owner: "bench-" + e.runID, tables: e.tables,
			batchSize: e.cfg.BatchSize, batchWindow: time.Duration(e.cfg.BatchWindow),
		})
		if err != nil {
			return res, err
		}
		defer func() {
			if rp != nil {
				_ = rp.stop(30 * time.Second)
			}
		}()
		op = outboxOp(&outbox.Writer{DB: e.db, Table: e.tables.Outbox}, e.tables.Bookings)
	default:
		return res, fmt.Errorf("unknown mode %q", mode)
	}
	e.db.reset()

	// The bookings: Concurrency closed-loop workers, each booking bounded
	// by its own timeout.
	var (
		next      atomic.Int64
		done      atomic.Int64
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, e.cfg.Bookings)
		commits   = make(map[string]time.Time, e.cfg.Bookings)
		errs      int
		firstErr  error
		aErrs     int
		wg        sync.WaitGroup
	)
	stopProgress := e.progress(label, &done, sk)
	start := time.Now()
	for range e.cfg.Concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= e.cfg.Bookings || ctx.Err() != nil {
					return
				}
				octx, ocancel := context.WithTimeout(ctx, 30*time.Second)
				t0 := time.Now()
				c, err := op(octx, i)
				lat := time.Since(t0)
				ocancel()
				done.Add(1)
				mu.Lock()
				switch {
				case err != nil:
					errs++
					if firstErr == nil {
						firstErr = err
					}
				default:
					latencies = append(latencies, lat)
					if c.eventID != "" {
						commits[c.eventID] = c.committedAt
					}
					if c.analyticsErr != nil {
						aErrs++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	if err := ctx.Err(); err != nil {
		stopProgress()
		return res, fmt.Errorf("bookings did not finish within -mode-timeout: %w", err)
	}
	res.Committed = len(latencies)
	res.Errors, res.AnalyticsErrors = errs, aErrs
	if firstErr != nil {
		res.FirstErr = firstErr.Error()
	}
	res.WallS = wall.Seconds()
	res.PerSecond = float64(res.Committed) / wall.Seconds()
	res.Booking = summarize(latencies)
	res.AppWrites = int(e.db.requests.Load())
	res.AppWriteItems = int(e.db.items.Load())

	if sk != nil {
		// Drain: wait, bounded, for every committed event to arrive.
		deadline := time.Now().Add(time.Duration(e.cfg.DrainTimeout))
		for sk.received() < len(commits) && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
		}
		res.DrainS = time.Since(start.Add(wall)).Seconds()
	}
	stopProgress()

	relayWrites := 0
	switch {
	case q != nil:
		_, dropped := q.close()
		q = nil
		res.AnalyticsErrors += dropped
	case rp != nil:
		m, err := e.waitMarked(ctx, rp, sk.received())
		if err != nil {
			fmt.Fprintf(e.cfg.Log, "bench: %s: relay metrics: %v\n", label, err)
		}
		res.RelayMetrics = m
		if err := rp.stop(30 * time.Second); err != nil {
			fmt.Fprintf(e.cfg.Log, "bench: %s: relay stop: %v\n", label, err)
		}
		rp = nil
		res.RelayRequests, res.RelayWrites = e.proxy.snapshot()
		for _, n := range res.RelayWrites {
			relayWrites += n
		}
	}
	if res.Committed > 0 {
		res.WritesPerEvent = float64(res.AppWrites+relayWrites) / float64(res.Committed)
		res.WriteItemsPerEvent = float64(res.AppWriteItems+relayWrites) / float64(res.Committed)
	}

	if sk != nil {
		arrived := sk.arrivals()
		e2e := make([]time.Duration, 0, len(commits))
		for id, at := range commits {
			got, ok := arrived[id]
			if !ok {
				res.Lost++
				continue
			}
			e2e = append(e2e, got.Sub(at))
		}
		l := summarize(e2e)
		res.EndToEnd = &l
		st := sk.srv.Stats()
		res.Duplicates = st.Duplicates
		res.EndpointRequests = st.Requests + st.Rejected
		if len(commits) > 0 {
			res.EndpointRequestsPer1k = float64(res.EndpointRequests) * 1000 / float64(len(commits))
		}
	}
	return res, nil
}

// waitMarked waits, at most 10 s, until the relay has marked as many
// events as arrived (delivered + duplicate), then returns its counters.
func (e *env) waitMarked(ctx context.Context, rp *relayProc, arrived int) (map[string]float64, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := rp.metrics(ctx)
		if err == nil && m["events_delivered_total"]+m["events_duplicate_total"] >= float64(arrived) {
			return m, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err == nil {
				err = errors.New("not every arrived event marked within 10s")
			}
			return m, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// progress prints a line every cfg.Progress until the returned func is
// called.
func (e *env) progress(label string, done *atomic.Int64, sk *sink) func() {
	if e.cfg.Progress <= 0 {
		return func() {}
	}
	stop := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
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
			n := done.Load()
			line := fmt.Sprintf("bench: %s: %d/%d bookings, %.0f/s, %s", label, n, e.cfg.Bookings,
				float64(n)/time.Since(start).Seconds(), time.Since(start).Round(time.Second))
			if sk != nil {
				line += fmt.Sprintf(", %d rows at the endpoint", sk.received())
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

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
