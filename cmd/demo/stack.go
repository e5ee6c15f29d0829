package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ddboutbox/ddboutbox/cmd/analytics-sink/endpoint"
	"github.com/ddboutbox/ddboutbox/cmd/booking/bookings"
	"github.com/ddboutbox/ddboutbox/dynamo"
	"github.com/ddboutbox/ddboutbox/outbox"
	"github.com/ddboutbox/ddboutbox/relay"
)

type config struct {
	endpoint, jarDir      string
	bookingAddr, sinkAddr string
	sinkLatency           time.Duration
	bookings, concurrency int
	batchSize             int
	batchWindow           time.Duration
	keep                  bool
}

func (c config) validate() error {
	if err := (dynamo.Config{Endpoint: c.endpoint}).Validate(); err != nil {
		return fmt.Errorf("-dynamodb-endpoint: %w", err)
	}
	switch {
	case c.endpoint == "" && c.jarDir == "":
		return errors.New("give -dynamodb-endpoint or -dynamodb-local-jar-dir (make demo sets it)")
	case c.bookings < 1 || c.concurrency < 1 || c.batchSize < 1:
		return errors.New("-bookings, -concurrency and -batch-size must be at least 1")
	case c.batchWindow <= 0:
		// As for the relay: 0 would read as "no linger" but be the default.
		return errors.New("-batch-window must be positive (1ms for next to no linger)")
	case c.sinkLatency < 0:
		return errors.New("-sink-latency must not be negative")
	}
	return nil
}

// deliveryTimeout bounds the wait for the relay to drain after the load.
const deliveryTimeout = 3 * time.Minute

func run(ctx context.Context, c config, out io.Writer) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if c.endpoint == "" {
		ep, stop, err := startDynamoDBLocal(ctx, c.jarDir)
		if err != nil {
			return err
		}
		defer stop()
		c.endpoint = ep
	}
	clients, err := dynamo.NewClients(ctx, dynamo.Config{Endpoint: c.endpoint})
	if err != nil {
		return err
	}
	tables := dynamo.Tables{}.WithDefaults()
	if err := dynamo.EnsureTables(ctx, clients.DB, tables); err != nil {
		return err
	}

	sink := endpoint.New(endpoint.Options{Latency: c.sinkLatency})
	stopSink, err := serve(c.sinkAddr, sink)
	if err != nil {
		return err
	}
	defer stopSink()
	svc := &bookings.Service{DB: clients.DB, BookingsTable: tables.Bookings, OutboxTable: tables.Outbox, Logger: log}
	stopBooking, err := serve(c.bookingAddr, svc.Handler())
	if err != nil {
		return err
	}
	defer stopBooking()

	r, err := relay.New(relay.Config{
		SinkURL: "http://" + c.sinkAddr + "/rows", BatchSize: c.batchSize, BatchWindow: c.batchWindow,
		Tables: tables, Owner: "demo", Logger: log,
	}, clients.DB, clients.Streams, nil)
	if err != nil {
		return err
	}
	relayCtx, stopRelay := context.WithCancel(context.Background())
	relayDone := make(chan error, 1)
	go func() { relayDone <- r.Run(relayCtx) }()
	defer func() {
		stopRelay()
		<-relayDone
	}()

	fmt.Fprintf(out, "DynamoDB %s | booking service http://%s/bookings | analytics endpoint http://%s/stats\n",
		c.endpoint, c.bookingAddr, c.sinkAddr)
	start := time.Now()
	var made, failed atomic.Int64
	latencies := make(chan time.Duration, c.bookings)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		load(ctx, "http://"+c.bookingAddr+"/bookings", c.bookings, c.concurrency, &made, &failed, latencies)
	}()

	progress := func() string {
		st, rs := sink.Stats(), r.Stats()
		done := rs.Delivered + rs.Duplicates + rs.Failed
		return fmt.Sprintf("bookings %d/%d (refused %d) | rows received %d | marked delivered %d | failed %d | backlog %d | lag %s | endpoint requests %d | %s",
			made.Load(), c.bookings, failed.Load(), st.DistinctEventIDs, rs.Delivered, rs.Failed,
			made.Load()-done, latestLag(sink), st.Requests, time.Since(start).Round(100*time.Millisecond))
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(deliveryTimeout)
	loadFinished := false
wait:
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out)
			return nil
		case <-deadline:
			fmt.Fprintf(out, "\n%s\n", progress())
			return fmt.Errorf("not everything was delivered within %s", deliveryTimeout)
		case <-loadDone:
			loadFinished, loadDone = true, nil
		case <-tick.C:
			fmt.Fprintf(out, "\r%s", progress())
			if rs := r.Stats(); loadFinished && rs.Delivered+rs.Duplicates+rs.Failed >= made.Load() {
				break wait
			}
		}
	}
	close(latencies)
	summary(ctx, out, clients, tables.Outbox, sink.Stats(), latencies, time.Since(start), c.sinkLatency)
	if c.keep {
		fmt.Fprintln(out, "stack is running; Ctrl-C to stop")
		<-ctx.Done()
	}
	return nil
}

// latestLag is how long the oldest row of the latest accepted POST waited
// between its commit (occurred_at) and reaching the endpoint.
func latestLag(sink *endpoint.Server) string {
	reqs, rows := sink.Requests(), sink.Rows()
	for i := len(reqs) - 1; i >= 0; i-- {
		q := reqs[i]
		if q.Status/100 != 2 || q.Rows == 0 || q.Rows > len(rows) {
			continue
		}
		f, err := rows[len(rows)-q.Rows].Fields()
		if err != nil {
			return "-"
		}
		at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(f["occurred_at"]))
		if err != nil {
			return "-"
		}
		return q.At.Sub(at).Round(10 * time.Millisecond).String()
	}
	return "-"
}

func load(ctx context.Context, url string, n, workers int, made, failed *atomic.Int64, latencies chan<- time.Duration) {
	var next atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n) && ctx.Err() == nil; i = next.Add(1) {
				body := fmt.Sprintf(`{"user_id":"user-%d","session_id":"session-%d"}`, i%50, i)
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", strings.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					failed.Add(1)
					continue
				}
				latencies <- time.Since(t0)
				made.Add(1)
			}
		}()
	}
	wg.Wait()
}

func summary(ctx context.Context, out io.Writer, clients *dynamo.Clients, table string, st endpoint.Stats, latencies <-chan time.Duration, elapsed, sinkLatency time.Duration) {
	var ls []time.Duration
	for l := range latencies {
		ls = append(ls, l)
	}
	slices.Sort(ls)
	pct := func(p float64) time.Duration {
		if len(ls) == 0 {
			return 0
		}
		return ls[int(p*float64(len(ls)-1))].Round(100 * time.Microsecond)
	}
	fmt.Fprintf(out, "\n\nsummary after %s\n", elapsed.Round(100*time.Millisecond))
	fmt.Fprintf(out, "  booking latency      p50 %s  p99 %s  max %s (the endpoint's %s is not on this path)\n",
		pct(0.5), pct(0.99), pct(1), sinkLatency)
	fmt.Fprintf(out, "  analytics endpoint   %d rows in %d requests (%.1f rows/request), %d duplicates\n",
		st.Rows, st.Requests, float64(st.Rows)/max(1, float64(st.Requests)), st.Duplicates)
	if s, err := outbox.Summarize(ctx, clients.DB, table); err == nil {
		fmt.Fprintf(out, "  outbox table         %d delivered, %d pending, %d failed\n", s.Delivered, s.Pending, s.Failed)
	}
}

func serve(addr string, h http.Handler) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// startDynamoDBLocal runs DynamoDB Local in memory on a free loopback port.
func startDynamoDBLocal(ctx context.Context, dir string) (endpoint string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("find a free port: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("java", "-Djava.library.path="+filepath.Join(dir, "DynamoDBLocal_lib"),
		"-jar", filepath.Join(dir, "DynamoDBLocal.jar"), "-inMemory", "-sharedDb", "-port", fmt.Sprint(port))
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start DynamoDB Local: %w", err)
	}
	stop = func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return "http://" + addr, stop, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", nil, fmt.Errorf("DynamoDB Local did not listen on %s within 30s", addr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
