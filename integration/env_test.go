package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddboutbox/ddboutbox/cmd/analytics-sink/endpoint"
	"github.com/ddboutbox/ddboutbox/dynamo"
	"github.com/ddboutbox/ddboutbox/outbox"
	"github.com/ddboutbox/ddboutbox/relay"
)

// env is one test's world: its own tables in the shared DynamoDB Local and
// its own analytics endpoint (the only fake: the true HTTP boundary).
type env struct {
	t       *testing.T
	cl      *dynamo.Clients
	tables  dynamo.Tables
	writer  *outbox.Writer
	sink    *endpoint.Server
	sinkURL string
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

func newEnv(t *testing.T, opts endpoint.Options) *env {
	t.Helper()
	return newEnvOn(t, clients, opts)
}

// testTables names a test's own tables, which do not exist yet.
func testTables(t *testing.T) dynamo.Tables {
	prefix := fmt.Sprintf("%s-%06d", unsafeChars.ReplaceAllString(t.Name(), "_"), rand.IntN(1e6))
	return dynamo.Tables{Outbox: prefix + "-Outbox", Bookings: prefix + "-Bookings", State: prefix + "-State"}
}

// newEnvOn is newEnv on another DynamoDB (a test's own container).
func newEnvOn(t *testing.T, cl *dynamo.Clients, opts endpoint.Options) *env {
	t.Helper()
	tables := testTables(t)
	if err := dynamo.EnsureTables(t.Context(), cl.DB, tables); err != nil {
		t.Fatalf("ensure tables: %v", err)
	}
	sink := endpoint.New(opts)
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	return &env{
		t: t, cl: cl, tables: tables, sink: sink, sinkURL: srv.URL + "/rows",
		writer: &outbox.Writer{DB: cl.DB, Table: tables.Outbox},
	}
}

// relayConfig is a relay config tuned for tests: quick polls and short
// backoffs, so that waits are bounded by seconds.
func (e *env) relayConfig() relay.Config {
	return relay.Config{
		SinkURL:           e.sinkURL,
		BatchWindow:       200 * time.Millisecond,
		Tables:            e.tables,
		PollInterval:      50 * time.Millisecond,
		ShardSyncInterval: time.Second,
		RetryBase:         50 * time.Millisecond,
		RetryMax:          time.Second,
		Owner:             "relay-" + e.t.Name(),
		ShutdownTimeout:   20 * time.Second,
	}
}

// startRelay runs a relay in-process until the test ends; stop ends it
// early and returns Run's error.
func (e *env) startRelay(cfg relay.Config) (r *relay.Relay, stop func() error) {
	e.t.Helper()
	return e.startRelayOn(cfg, e.cl.DB)
}

// startRelayOn is startRelay with the relay's DynamoDB client db.
func (e *env) startRelayOn(cfg relay.Config, db relay.DB) (r *relay.Relay, stop func() error) {
	e.t.Helper()
	r, err := relay.New(cfg, db, e.cl.Streams, nil)
	if err != nil {
		e.t.Fatalf("new relay: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var runErr error
	var stoppedByTest atomic.Bool
	stopOnce := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(60 * time.Second):
				runErr = fmt.Errorf("relay did not stop within 60s")
			}
		})
		return runErr
	}
	// A test that stops the relay itself judges the error; otherwise the
	// relay must stop cleanly.
	stop = func() error {
		stoppedByTest.Store(true)
		return stopOnce()
	}
	e.t.Cleanup(func() {
		if err := stopOnce(); err != nil && !stoppedByTest.Load() {
			e.t.Errorf("relay stopped with error: %v", err)
		}
	})
	return r, stop
}

// runRelay runs a relay in-process and returns Run's error once it
// stops by itself (or the test ends): for tests in which it must stop
// without being asked.
func (e *env) runRelay(cfg relay.Config) <-chan error {
	e.t.Helper()
	r, err := relay.New(cfg, e.cl.DB, e.cl.Streams, nil)
	if err != nil {
		e.t.Fatalf("new relay: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(e.t.Context()) }()
	return done
}

// takeOverOwner holds owner as another process would that judged this
// test's relay gone, and returns that process's view of the state table.
func (e *env) takeOverOwner(owner string) *dynamo.Leases {
	e.t.Helper()
	intruder := &dynamo.Leases{DB: e.cl.DB, Table: e.tables.State, Owner: owner, Duration: time.Minute}
	if err := intruder.HoldOwner(e.t.Context(), dynamo.Process{Instance: "intruder"}, func(dynamo.Process) bool { return true }); err != nil {
		e.t.Fatalf("take the owner over: %v", err)
	}
	return intruder
}

// waitOwnerTaken waits up to timeout for a relay of runRelay to stop by
// itself with ErrOwnerTaken.
func waitOwnerTaken(t *testing.T, done <-chan error, timeout time.Duration) {
	t.Helper()
	select {
	case err := <-done:
		if !errors.Is(err, dynamo.ErrOwnerTaken) {
			t.Fatalf("Run returned %v, want ErrOwnerTaken", err)
		}
	case <-time.After(timeout):
		t.Fatalf("the relay still runs %s after its owner was taken over", timeout)
	}
}

// commitEvents commits n events, each in its own transaction, from
// `workers` goroutines, and returns their ids.
func (e *env) commitEvents(n, workers int) []string {
	e.t.Helper()
	ids, err := e.tryCommitEvents(n, workers)
	if err != nil {
		e.t.Fatal(err)
	}
	return ids
}

// tryCommitEvents is commitEvents for a goroutine other than the test's,
// which must not call t.Fatal: it returns the first error instead.
func (e *env) tryCommitEvents(n, workers int) ([]string, error) {
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				ev, err := outbox.NewEvent("TestEvent", "Test", fmt.Sprintf("agg-%d", i), map[string]any{"n": i})
				if err == nil {
					err = e.writer.Commit(context.Background(), outbox.Tx{Events: []outbox.Event{ev}})
				}
				if err != nil {
					errs <- err
					return
				}
				ids[i] = ev.ID
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return ids, nil
}

// waitFor polls cond until it holds or timeout passes; what describes the
// state for the failure message.
func waitFor(t *testing.T, timeout time.Duration, cond func() (ok bool, what string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, what := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitDelivered waits until the endpoint holds every id.
func (e *env) waitDelivered(ids []string, timeout time.Duration) {
	e.t.Helper()
	waitFor(e.t, timeout, func() (bool, string) {
		got := e.sink.EventIDs()
		missing := 0
		for _, id := range ids {
			if got[id] == 0 {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d events not received (stats %+v)", missing, len(ids), e.sink.Stats())
	})
}

func (e *env) summary() outbox.Summary {
	e.t.Helper()
	s, err := outbox.Summarize(context.Background(), e.cl.DB, e.tables.Outbox)
	if err != nil {
		e.t.Fatalf("summarize: %v", err)
	}
	return s
}

// waitMarked waits until the outbox holds want DELIVERED items and nothing
// PENDING: marking follows the POST, so the endpoint sees rows first.
func (e *env) waitMarked(want int, timeout time.Duration) {
	e.t.Helper()
	waitFor(e.t, timeout, func() (bool, string) {
		s := e.summary()
		return s.Delivered == want && s.Pending == 0, fmt.Sprintf("outbox %+v, want %d delivered", s, want)
	})
}

// setStream enables (NEW_IMAGE) or disables the outbox table's stream, as
// an operator would with UpdateTable. A stream enabled again is a new one,
// with a new ARN.
func (e *env) setStream(enabled bool) {
	e.t.Helper()
	spec := &types.StreamSpecification{StreamEnabled: aws.Bool(enabled)}
	if enabled {
		spec.StreamViewType = types.StreamViewTypeNewImage
	}
	_, err := e.cl.DB.UpdateTable(context.Background(), &dynamodb.UpdateTableInput{TableName: aws.String(e.tables.Outbox), StreamSpecification: spec})
	if err != nil {
		e.t.Fatalf("update stream of %s to enabled=%v: %v", e.tables.Outbox, enabled, err)
	}
}

// getItem reads one item consistently; nil when absent.
func getItem(t *testing.T, table, keyAttr, key string) map[string]types.AttributeValue {
	t.Helper()
	out, err := clients.DB.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName:      aws.String(table),
		Key:            map[string]types.AttributeValue{keyAttr: &types.AttributeValueMemberS{Value: key}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("get %s from %s: %v", key, table, err)
	}
	return out.Item
}

// rowFields decodes every row the endpoint received, keyed by event_id.
func (e *env) rowFields() map[string]map[string]any {
	e.t.Helper()
	out := map[string]map[string]any{}
	for _, r := range e.sink.Rows() {
		var f map[string]any
		if err := json.Unmarshal(r.Raw, &f); err != nil {
			e.t.Fatalf("row %s: %v", r.EventID, err)
		}
		out[r.EventID] = f
	}
	return out
}
