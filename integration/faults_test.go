package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
	"github.com/testcontainers/testcontainers-go"
	tcdynamodb "github.com/testcontainers/testcontainers-go/modules/dynamodb"

	"github.com/ddboutbox/ddboutbox/cmd/analytics-sink/endpoint"
	"github.com/ddboutbox/ddboutbox/dynamo"
	"github.com/ddboutbox/ddboutbox/outbox"
	"github.com/ddboutbox/ddboutbox/relay"
)

// persistentDynamoDB is a DynamoDB Local of one test's own, with its data
// on a host directory and a fixed host port, so that it can be restarted
// under a running relay.
type persistentDynamoDB struct {
	c        *tcdynamodb.DynamoDBContainer
	endpoint string
}

func startPersistentDynamoDB(t *testing.T) *persistentDynamoDB {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	dir := t.TempDir()
	c, err := tcdynamodb.Run(context.Background(), dynamoImage(),
		testcontainers.WithCmdArgs("-sharedDb", "-dbPath", "/data"),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.Binds = append(hc.Binds, dir+":/data")
			hc.PortBindings = nat.PortMap{"8000/tcp": {{HostIP: "127.0.0.1", HostPort: port}}}
		}))
	if c != nil {
		t.Cleanup(func() { _ = testcontainers.TerminateContainer(c) })
	}
	if err != nil {
		t.Fatalf("start a DynamoDB Local with a volume: %v", err)
	}
	return &persistentDynamoDB{c: c, endpoint: "http://127.0.0.1:" + port}
}

func (p *persistentDynamoDB) restart(t *testing.T) {
	t.Helper()
	stop := 5 * time.Second
	if err := p.c.Stop(context.Background(), &stop); err != nil {
		t.Fatalf("stop DynamoDB Local: %v", err)
	}
	if err := p.c.Start(context.Background()); err != nil {
		t.Fatalf("start DynamoDB Local again: %v", err)
	}
}

// Every test here injects one fault, asserts that no event is lost and
// logs the duplicates the endpoint saw.

func (e *env) reportDuplicates() {
	e.t.Helper()
	e.t.Logf("endpoint: %+v", e.sink.Stats())
}

// status reads one event's status and last_error.
func (e *env) status(id string) (outbox.Status, string) {
	e.t.Helper()
	item := getItem(e.t, e.tables.Outbox, outbox.AttrEventID, id)
	s, _ := item[outbox.AttrStatus].(*types.AttributeValueMemberS)
	le, _ := item[outbox.AttrLastError].(*types.AttributeValueMemberS)
	if s == nil {
		e.t.Fatalf("event %s has no status: %v", id, item)
	}
	msg := ""
	if le != nil {
		msg = le.Value
	}
	return outbox.Status(s.Value), msg
}

// phase switches an injected fault on for a while.
type phase struct{ until atomic.Int64 }

func (p *phase) startFor(d time.Duration) { p.until.Store(time.Now().Add(d).UnixNano()) }
func (p *phase) on() bool                 { return time.Now().UnixNano() < p.until.Load() }

// unavailableDuring is an endpoint that answers 503 while p is on.
func unavailableDuring(p *phase) endpoint.Options {
	return endpoint.Options{Reject: func([]endpoint.Row) (int, time.Duration) {
		if p.on() {
			return http.StatusServiceUnavailable, 0
		}
		return 0, 0
	}}
}

// sweeperOutage is an env whose endpoint is down until the test ends
// outage, and a relay config that sweeps events a second old every 200 ms,
// retries at most every 200 ms and renews its leases every second: the
// setting in which the sweeper would take what the stream path holds.
func sweeperOutage(t *testing.T) (e *env, outage *phase, cfg relay.Config) {
	t.Helper()
	outage = &phase{}
	outage.startFor(time.Hour)
	e = newEnv(t, unavailableDuring(outage))
	cfg = e.relayConfig()
	cfg.SweepAfter = time.Second
	cfg.SweepInterval = 200 * time.Millisecond
	cfg.RetryMax = 200 * time.Millisecond
	cfg.LeaseDuration = 3 * time.Second
	return e, outage, cfg
}

// The relay is killed with SIGKILL three times during a 5,000-event load:
// all 5,000 arrive, with at most 3 x batches-in-flight x batch-size
// duplicates: a kill re-sends at most the batches that were in flight.
func TestSIGKILLThreeTimesLosesNothing(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	const total, batch, inFlight = 5000, 100, 2
	start := func() *exec.Cmd {
		cmd := exec.Command(relayBin, "-dynamodb-endpoint", ddbEndpoint,
			"-outbox-table", e.tables.Outbox, "-state-table", e.tables.State, "-sink-url", e.sinkURL,
			"-batch-size", fmt.Sprint(batch), "-batches-in-flight", fmt.Sprint(inFlight),
			"-batch-window", "100ms", "-poll-interval", "50ms", "-owner", "sigkill-test", "-log-level", "warn", "-metrics-addr", "127.0.0.1:0")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start relay: %v", err)
		}
		return cmd
	}
	var ids []string
	var commitErr error
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		for range 25 {
			more, err := e.tryCommitEvents(total/25, 8)
			if err != nil {
				commitErr = err
				return
			}
			ids = append(ids, more...)
		}
	}()
	cmd := start()
	for i, at := range []int{800, 2000, 3200} {
		waitFor(t, 2*time.Minute, func() (bool, string) {
			n := e.sink.Stats().Rows
			return n >= at, fmt.Sprintf("%d rows before kill %d", n, i+1)
		})
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		cmd = start()
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	<-loaded
	if commitErr != nil {
		t.Fatal(commitErr)
	}
	if len(ids) != total {
		t.Fatalf("committed %d, want %d", len(ids), total)
	}
	e.waitDelivered(ids, 3*time.Minute)
	e.waitMarked(total, time.Minute)
	st := e.sink.Stats()
	if st.DistinctEventIDs != total {
		t.Fatalf("endpoint has %d distinct events, want %d", st.DistinctEventIDs, total)
	}
	if st.Duplicates > 3*inFlight*batch {
		t.Fatalf("%d duplicates after 3 kills, want <= %d", st.Duplicates, 3*inFlight*batch)
	}
	e.reportDuplicates()
}

func p99(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[(len(ds)*99)/100]
}

// The endpoint answers 503 for 30s: everything is delivered after it
// recovers, and bookings do not slow down meanwhile.
func TestEndpointOutageDeliversAllAndSparesBookings(t *testing.T) {
	// Not parallel: booking latency is compared before and during the
	// outage, and other tests' load would blur it.
	var outage phase
	e := newEnv(t, unavailableDuring(&outage))
	cfg := e.relayConfig()
	cfg.RetryMax = 2 * time.Second
	r, _ := e.startRelay(cfg)

	measure := func(n int) (ids []string, lat []time.Duration) {
		for i := range n {
			ev, _ := outbox.NewEvent("TestEvent", "Test", fmt.Sprint(i), map[string]any{"n": i})
			t0 := time.Now()
			if err := e.writer.Commit(context.Background(), outbox.Tx{Events: []outbox.Event{ev}}); err != nil {
				t.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
			ids = append(ids, ev.ID)
		}
		return ids, lat
	}
	before, latBefore := measure(300)
	e.waitDelivered(before, time.Minute)
	outage.startFor(30 * time.Second)
	during, latDuring := measure(300)
	waitFor(t, time.Minute, func() (bool, string) {
		return e.sink.Stats().Rejected > 0, "no request reached the endpoint during the outage"
	})
	t.Logf("booking p99 before %s, during the outage %s; retries %d", p99(latBefore), p99(latDuring), r.Stats().Retries)
	if p99(latDuring) > p99(latBefore)*3/2 {
		t.Fatalf("booking p99 during the outage %s > 1.5 x %s before it", p99(latDuring), p99(latBefore))
	}
	e.waitDelivered(append(before, during...), 2*time.Minute)
	e.waitMarked(600, time.Minute)
	if s := e.summary(); s.Failed != 0 {
		t.Fatalf("outbox %+v: an outage must not fail events", s)
	}
	e.reportDuplicates()
}

// 429 with Retry-After: 2 makes the relay wait at least 2s before its next
// request; then everything is delivered.
func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	var throttled atomic.Int32
	e := newEnv(t, endpoint.Options{Reject: func([]endpoint.Row) (int, time.Duration) {
		if throttled.Add(1) <= 3 {
			return http.StatusTooManyRequests, 2 * time.Second
		}
		return 0, 0
	}})
	e.startRelay(e.relayConfig())
	ids := e.commitEvents(200, 4)
	e.waitDelivered(ids, time.Minute)
	reqs := e.sink.Requests()
	got429 := 0
	for i, r := range reqs {
		if r.Status != http.StatusTooManyRequests {
			continue
		}
		got429++
		if i+1 < len(reqs) {
			if gap := reqs[i+1].At.Sub(r.At); gap < 2*time.Second {
				t.Fatalf("request %d came %s after a 429 with Retry-After: 2", i+1, gap)
			}
		}
	}
	if got429 != 3 {
		t.Fatalf("%d requests were throttled, want 3", got429)
	}
	e.waitMarked(len(ids), time.Minute)
	e.reportDuplicates()
}

// One poison row among 2,000: the endpoint rejects any batch holding it
// with 400. The other 1,999 are delivered, the poison event is FAILED with
// the reason and does not block its shard; redriven after the endpoint is
// fixed, it is delivered.
func TestPoisonRowIsIsolatedAndRedriveDeliversIt(t *testing.T) {
	var poison atomic.Value
	poison.Store("")
	e := newEnv(t, endpoint.Options{Reject: func(rows []endpoint.Row) (int, time.Duration) {
		for _, r := range rows {
			if r.EventID == poison.Load().(string) {
				return http.StatusBadRequest, 0
			}
		}
		return 0, 0
	}})
	ids := e.commitEvents(2000, 10)
	bad := ids[1234]
	poison.Store(bad)
	cfg := e.relayConfig()
	cfg.SweepAfter = time.Second
	cfg.SweepInterval = 500 * time.Millisecond
	e.startRelay(cfg)

	good := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == bad })
	e.waitDelivered(good, time.Minute)
	// Marking trails delivery; on a loaded 2-core machine by tens of seconds.
	waitFor(t, 90*time.Second, func() (bool, string) {
		s, _ := e.status(bad)
		return s == outbox.StatusFailed, fmt.Sprintf("poison event is %s", s)
	})
	if _, msg := e.status(bad); !strings.Contains(msg, "400") {
		t.Fatalf("last_error %q does not say what the endpoint answered", msg)
	}
	if n := e.sink.EventIDs()[bad]; n != 0 {
		t.Fatalf("the poison row was accepted %d times", n)
	}
	// Later events are not blocked behind it.
	after := e.commitEvents(20, 2)
	e.waitDelivered(after, 30*time.Second)

	poison.Store("")
	n, err := outbox.Redrive(context.Background(), clients.DB, e.tables.Outbox, outbox.Filter{IDs: []string{bad}})
	if err != nil || n != 1 {
		t.Fatalf("redrive moved %d: %v", n, err)
	}
	e.waitDelivered([]string{bad}, 30*time.Second)
	waitFor(t, 30*time.Second, func() (bool, string) {
		s, _ := e.status(bad)
		return s == outbox.StatusDelivered, fmt.Sprintf("redriven event is %s", s)
	})
	e.reportDuplicates()
}

// sweepOnlyConfig starts the relay at LATEST, so that the events written
// before it are left to its sweeper, which takes them 2 s after they were
// written.
func (e *env) sweepOnlyConfig() relay.Config {
	cfg := e.relayConfig()
	cfg.StartPosition = relay.StartLatest
	cfg.SweepAfter = 2 * time.Second
	cfg.SweepInterval = 500 * time.Millisecond
	return cfg
}

// Events whose stream records the relay never reads (it starts at LATEST
// after they were written) are delivered by the sweeper.
func TestSweeperDeliversEventsTheStreamMissed(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	ids := e.commitEvents(300, 6)
	r, _ := e.startRelay(e.sweepOnlyConfig())
	e.waitDelivered(ids, time.Minute)
	e.waitMarked(len(ids), 30*time.Second)
	if s := r.Stats(); s.Swept < int64(len(ids)) || s.Read != 0 {
		t.Fatalf("relay stats %+v: want all %d swept and none read from the stream", s, len(ids))
	}
	// New events still flow through the stream.
	more := e.commitEvents(50, 2)
	e.waitDelivered(more, 30*time.Second)
	if s := r.Stats(); s.Read < 50 {
		t.Fatalf("relay read %d events from the stream after starting at LATEST, want 50", s.Read)
	}
	e.reportDuplicates()
}

// A lease row left behind for a shard the stream no longer lists (its
// records trimmed while no relay finished it: no relay can take it over)
// must not hold the sweeper back. It publishes settled_before three hours
// ago, so before the sweeper went by the shard listing it would have left
// these events alone until the row's updated_at was a day old.
func TestSweeperIgnoresTheLeaseOfAShardTheStreamLost(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	ctx := t.Context()
	arn, err := dynamo.StreamARN(ctx, clients.DB, e.tables.Outbox)
	if err != nil {
		t.Fatal(err)
	}
	ghost := &dynamo.Leases{DB: clients.DB, Table: e.tables.State, Owner: "ghost", Duration: time.Millisecond}
	const gone = "shardId-00000000000000000000-trimmed"
	if _, err := ghost.Acquire(ctx, arn, dynamo.Shard{ID: gone}); err != nil {
		t.Fatal(err)
	}
	if err := ghost.Checkpoint(ctx, arn, gone, "5", time.Now().Add(-3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	ids := e.commitEvents(40, 4)
	r, _ := e.startRelay(e.sweepOnlyConfig())
	e.waitDelivered(ids, time.Minute)
	if s := r.Stats(); s.Swept < int64(len(ids)) {
		t.Fatalf("relay stats %+v: want all %d swept", s, len(ids))
	}
}

// A relay restarted under the same owner (the hostname by default) finds
// the claims it made before on events it never settled, alive for another
// ClaimDuration: it takes them again at once instead of leaving them
// undelivered until they lapse. Another relay's live claim still holds.
func TestSweeperRetakesItsOwnLiveClaims(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	cfg := e.sweepOnlyConfig()
	ids := e.commitEvents(21, 3)
	mine, theirs := ids[:20], ids[20]
	claim := func(id, owner string) {
		_, err := clients.DB.UpdateItem(t.Context(), &dynamodb.UpdateItemInput{
			TableName:        aws.String(e.tables.Outbox),
			Key:              map[string]types.AttributeValue{outbox.AttrEventID: &types.AttributeValueMemberS{Value: id}},
			UpdateExpression: aws.String("SET #by = :by, #exp = :exp"),
			ExpressionAttributeNames: map[string]string{
				"#by": outbox.AttrClaimedBy, "#exp": outbox.AttrClaimExpiresAt,
			},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":by":  &types.AttributeValueMemberS{Value: owner},
				":exp": &types.AttributeValueMemberN{Value: strconv.FormatInt(time.Now().Add(10*time.Minute).UnixMilli(), 10)},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range mine {
		claim(id, cfg.Owner)
	}
	claim(theirs, "another-relay")
	r, _ := e.startRelay(cfg)
	e.waitDelivered(mine, 30*time.Second)
	time.Sleep(4 * cfg.SweepInterval) // sweeps that could take theirs
	if n := e.sink.EventIDs()[theirs]; n != 0 || r.Stats().Swept != int64(len(mine)) {
		t.Fatalf("relay %+v, %s received %d times: want only this relay's %d claimed events swept", r.Stats(), theirs, n, len(mine))
	}
}

// The outbox stream is re-enabled (a new ARN) during an endpoint outage
// while two relays share it. The relay that holds the shard retries its
// batch of the old stream; the other moves to the new stream at once and
// must leave that batch alone (it went by the new stream's leases only and
// swept all 30 again). Given up after -shutdown-timeout, the batch is left
// to the sweepers and the relay goes on with the new stream (it used to
// exit 1). Events written while the stream was disabled are on no stream:
// the sweepers deliver them (the old stream's ended shard, never
// checkpointed, used to hold the sweeper's cutoff before them).
func TestStreamReEnabledDuringAnOutageWithTwoRelays(t *testing.T) {
	for _, shutdown := range []time.Duration{30 * time.Second, 2 * time.Second} {
		t.Run("shutdown-timeout "+shutdown.String(), func(t *testing.T) {
			t.Parallel()
			e, outage, cfg := sweeperOutage(t)
			cfg.ShutdownTimeout = shutdown
			var relays []*relay.Relay
			for _, owner := range []string{"a", "b"} {
				cfg.Owner = owner
				r, _ := e.startRelay(cfg) // each must stop cleanly at the end
				relays = append(relays, r)
			}
			ids := e.commitEvents(30, 2)
			waitFor(t, 30*time.Second, func() (bool, string) {
				return e.sink.Stats().Rejected >= 3, "no relay is retrying the batch"
			})
			e.setStream(false)
			unstreamed := e.commitEvents(5, 2) // no stream has them: only a sweeper can
			e.setStream(true)
			time.Sleep(4 * time.Second) // both see the new stream; sweepers look
			outage.startFor(0)
			e.waitDelivered(ids, time.Minute)
			e.waitDelivered(unstreamed, 30*time.Second)
			e.waitMarked(len(ids)+len(unstreamed), 30*time.Second)
			more := e.commitEvents(10, 2) // the new stream is read
			e.waitDelivered(more, 30*time.Second)
			if d := e.sink.Stats().Duplicates; d != 0 {
				t.Fatalf("relays %+v and %+v, endpoint %+v: want no duplicates", relays[0].Stats(), relays[1].Stats(), e.sink.Stats())
			}
		})
	}
}

// One relay, the stream re-enabled during an endpoint outage, and the old
// stream's batch cut off after -shutdown-timeout: the old stream's ended
// shard is never checkpointed. The relay's sweeper must still deliver the
// events that no stream holds, written while the stream was disabled (the
// ended shard's reader used to hold its cutoff before them for a day).
func TestASweeperAfterACutOffSettleDeliversWhatNoStreamHolds(t *testing.T) {
	e, outage, cfg := sweeperOutage(t)
	cfg.ShutdownTimeout = 2 * time.Second
	var logs syncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	r, _ := e.startRelay(cfg)
	ids := e.commitEvents(30, 2)
	waitFor(t, 30*time.Second, func() (bool, string) {
		return e.sink.Stats().Rejected >= 3, "the relay is not retrying the batch"
	})
	e.setStream(false)
	unstreamed := e.commitEvents(5, 2)
	e.setStream(true)
	waitFor(t, 30*time.Second, logs.logged("was not delivered within -shutdown-timeout"))
	outage.startFor(0)
	e.waitDelivered(append(ids, unstreamed...), time.Minute)
	e.waitMarked(len(ids)+len(unstreamed), 30*time.Second)
	if s := r.Stats(); s.Swept < int64(len(unstreamed)) {
		t.Fatalf("relay %+v: want the %d unstreamed events swept", s, len(unstreamed))
	}
}

// The outbox stream is re-enabled during an endpoint outage, and while the
// relay settles the old stream's batch in hand another process takes over
// its -owner. The takeover outranks the stream change: once the batch is
// delivered and marked, Run returns ErrOwnerTaken and never reads the new
// stream for an owner another process acts for (it used to take the new
// stream's leases and read it until its next renewal).
func TestATakeoverWhileSettlingAReEnabledStreamStopsTheRelay(t *testing.T) {
	t.Parallel()
	var outage phase
	outage.startFor(time.Hour)
	e := newEnv(t, unavailableDuring(&outage))
	var logs syncBuffer
	cfg := e.relayConfig()
	cfg.LeaseDuration = 3 * time.Second // renewed every second, settling included
	cfg.SweepAfter = time.Hour          // only the stream path delivers
	cfg.ShutdownTimeout = time.Minute
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	done := e.runRelay(cfg)
	ids := e.commitEvents(20, 2)
	waitFor(t, 30*time.Second, func() (bool, string) {
		return e.sink.Stats().Rejected > 0, "the relay sent nothing"
	})
	ctx := t.Context()

	e.setStream(false)
	e.setStream(true)
	newARN, err := dynamo.StreamARN(ctx, e.cl.DB, e.tables.Outbox)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, logs.logged("stream was re-enabled")) // settling the batch in hand
	intruder := e.takeOverOwner(cfg.Owner)
	waitFor(t, 15*time.Second, logs.logged("took over this -owner")) // seen while still settling
	outage.startFor(0)
	waitOwnerTaken(t, done, time.Minute)
	e.waitDelivered(ids, 30*time.Second)
	e.waitMarked(len(ids), 30*time.Second)
	if leases, err := intruder.List(ctx, newARN); err != nil || len(leases) != 0 {
		t.Fatalf("leases of the new stream: %+v, %v; want none: the relay read it for an owner it no longer held", leases, err)
	}
}

// Swept events that the endpoint keeps refusing for longer than
// -claim-duration stay claimed by the relay that swept them: it renews the
// claims until they are settled, or another relay's sweeper would claim
// and send them again once they lapsed.
func TestSweptEventsStayClaimedThroughAnOutage(t *testing.T) {
	t.Parallel()
	e, outage, cfg := sweeperOutage(t)
	ids := e.commitEvents(20, 2)
	cfg.StartPosition = relay.StartLatest // only the sweeper can deliver them
	// Renewed every 10 s. CI runs this with -race beside the other
	// parallel tests on one DynamoDB Local, whose writes then queue for
	// seconds: 4 s claims were once renewed 0.85 s late there, and 10 s
	// claims went 13 s without a renewal landing (the sweeper itself took
	// 17 s to find the events).
	cfg.ClaimDuration = 30 * time.Second
	r, _ := e.startRelay(cfg)
	waitFor(t, 30*time.Second, func() (bool, string) {
		return r.Stats().Swept == int64(len(ids)) && e.sink.Stats().Rejected >= 3, "the swept events are not being retried"
	})
	time.Sleep(cfg.ClaimDuration + 5*time.Second) // unrenewed, every claim would have lapsed
	now := time.Now().UnixMilli()
	for _, id := range ids {
		item := getItem(t, e.tables.Outbox, outbox.AttrEventID, id)
		by, _ := item[outbox.AttrClaimedBy].(*types.AttributeValueMemberS)
		exp, _ := item[outbox.AttrClaimExpiresAt].(*types.AttributeValueMemberN)
		if by == nil || by.Value != cfg.Owner || exp == nil {
			t.Fatalf("event %s: claimed_by %v, claim_expires_at %v; want claimed by %s", id, by, exp, cfg.Owner)
		}
		if at, _ := strconv.ParseInt(exp.Value, 10, 64); at <= now {
			t.Fatalf("event %s: claim lapsed %dms ago while the relay still retries it", id, now-at)
		}
	}
	outage.startFor(0)
	e.waitDelivered(ids, 30*time.Second)
	e.waitMarked(len(ids), 30*time.Second)
}

// The endpoint hangs: the per-request timeout fires, the batch is sent
// again, and nothing is lost.
func TestHangingEndpointTimesOutAndRetries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, endpoint.Options{})
	var hung atomic.Int32
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hung.Add(1) <= 2 {
			// Never answer. The body must be read for net/http to notice
			// the client going away; the bound keeps Close from hanging.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
			return
		}
		e.sink.ServeHTTP(w, r)
	}))
	t.Cleanup(hanging.Close)
	cfg := e.relayConfig()
	cfg.SinkURL = hanging.URL + "/rows"
	cfg.RequestTimeout = time.Second
	r, _ := e.startRelay(cfg)
	ids := e.commitEvents(200, 4)
	e.waitDelivered(ids, time.Minute)
	e.waitMarked(len(ids), 30*time.Second)
	if h := hung.Load(); h < 3 {
		t.Fatalf("%d requests reached the endpoint; want the 2 hung ones and more", h)
	}
	if s := r.Stats(); s.Retries < 2 {
		t.Fatalf("relay retried %d times; want >= 2 after two timeouts", s.Retries)
	}
	e.reportDuplicates()
}

// An event whose row exceeds the byte cap and one whose payload is not a
// JSON object are FAILED with a clear reason; their neighbours arrive.
func TestUnsendableEventsFailAndNeighboursArrive(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	cfg := e.relayConfig()
	cfg.BatchBytes = 4096
	e.startRelay(cfg)
	ctx := context.Background()

	before := e.commitEvents(20, 2)
	big, _ := outbox.NewEvent("TestEvent", "Test", "big", map[string]string{"blob": strings.Repeat("x", 5000)})
	if err := e.writer.Commit(ctx, outbox.Tx{Events: []outbox.Event{big}}); err != nil {
		t.Fatal(err)
	}
	notObject, _ := outbox.NewEvent("TestEvent", "Test", "array", map[string]int{})
	item, err := outbox.Item(notObject)
	if err != nil {
		t.Fatal(err)
	}
	// outbox.Writer refuses such a payload, so write it as another
	// producer might have.
	item[outbox.AttrPayload] = &types.AttributeValueMemberS{Value: `[1,2,3]`}
	if _, err := clients.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(e.tables.Outbox), Item: item}); err != nil {
		t.Fatal(err)
	}
	after := e.commitEvents(20, 2)

	e.waitDelivered(append(before, after...), time.Minute)
	for _, c := range []struct{ id, want string }{
		{big.ID, "exceeds the batch byte cap"},
		{notObject.ID, "must be a JSON object"},
	} {
		waitFor(t, 30*time.Second, func() (bool, string) {
			s, msg := e.status(c.id)
			return s == outbox.StatusFailed && strings.Contains(msg, c.want), fmt.Sprintf("event %s is %s (%q), want FAILED with %q", c.id, s, msg, c.want)
		})
	}
	if ids := e.sink.EventIDs(); ids[big.ID]+ids[notObject.ID] != 0 {
		t.Fatal("an unsendable event reached the endpoint")
	}
	e.reportDuplicates()
}

// The endpoint answers 401 for 20s (a key being rotated): nothing is
// FAILED, even with a small max-attempts, the relay reports not-ready
// meanwhile, and everything is delivered once the key works.
func TestUnauthorizedEndpointFailsNothingAndIsNotReady(t *testing.T) {
	t.Parallel()
	// The 20s start with the first request, however long commits take.
	var rotating phase
	var first sync.Once
	e := newEnv(t, endpoint.Options{Reject: func([]endpoint.Row) (int, time.Duration) {
		first.Do(func() { rotating.startFor(20 * time.Second) })
		if rotating.on() {
			return http.StatusUnauthorized, 0
		}
		return 0, 0
	}})
	cfg := e.relayConfig()
	cfg.MaxAttempts = 3
	cfg.RetryMax = 2 * time.Second
	r, _ := e.startRelay(cfg)
	// Watch readiness from the start: commits may outlast the 401 window
	// on a loaded machine.
	var sawNotReady atomic.Bool
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	go func() {
		for watchCtx.Err() == nil {
			if err := r.Ready(); err != nil && strings.Contains(err.Error(), "misconfigured") {
				sawNotReady.Store(true)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	ids := e.commitEvents(300, 4)
	e.waitDelivered(ids, 2*time.Minute)
	stopWatch()
	if !sawNotReady.Load() {
		t.Fatal("the relay never reported not-ready (misconfigured) while the endpoint answered 401")
	}
	if st := e.sink.Stats(); st.Rejected == 0 {
		t.Fatalf("endpoint %+v: no request was answered 401; the test proved nothing", st)
	}
	e.waitMarked(len(ids), 30*time.Second)
	if err := r.Ready(); err != nil {
		t.Fatalf("Ready() = %v after the key works again", err)
	}
	if s := e.summary(); s.Failed != 0 {
		t.Fatalf("outbox %+v: a 401 must never fail events", s)
	}
	e.reportDuplicates()
}

// DynamoDB Local, with its data on a volume, restarts while the relay
// runs: the relay reconnects and delivers what was written before and
// after the restart.
func TestDynamoDBRestartWhileRelayRuns(t *testing.T) {
	ddb := startPersistentDynamoDB(t)
	ctx := context.Background()
	cl, err := dynamo.NewClients(ctx, dynamo.Config{Endpoint: ddb.endpoint})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, cl, endpoint.Options{})
	cfg := e.relayConfig()
	cfg.RetryMax = time.Second
	e.startRelay(cfg)

	before := e.commitEvents(200, 4)
	e.waitDelivered(before, time.Minute)
	ddb.restart(t)
	var after []string
	waitFor(t, time.Minute, func() (bool, string) {
		ev, _ := outbox.NewEvent("TestEvent", "Test", "after", map[string]int{"n": len(after)})
		if err := e.writer.Commit(ctx, outbox.Tx{Events: []outbox.Event{ev}}); err != nil {
			return false, fmt.Sprintf("commit after restart: %v", err)
		}
		after = append(after, ev.ID)
		return len(after) >= 200, ""
	})
	e.waitDelivered(append(before, after...), 2*time.Minute)
	e.waitMarked(len(before)+len(after), time.Minute)
	e.reportDuplicates()
}

// An endpoint outage longer than sweep-after, with light traffic: the
// events the stream path holds are PENDING and old enough to sweep, but no
// sweeper takes them, so the endpoint gets each event once. With two
// relays on the stream, the one that holds no shard cannot see the
// other's pipeline and goes by the settled_before the lease holder
// publishes; before it did, it swept all 30 and each arrived twice.
func TestSweeperLeavesEventsInThePipelineAlone(t *testing.T) {
	for _, owners := range [][]string{{"a"}, {"a", "b"}} {
		t.Run(fmt.Sprintf("%d relays", len(owners)), func(t *testing.T) {
			t.Parallel()
			e, outage, cfg := sweeperOutage(t)
			var relays []*relay.Relay
			for _, owner := range owners {
				cfg.Owner = owner
				r, _ := e.startRelay(cfg)
				relays = append(relays, r)
			}
			ids := e.commitEvents(30, 2)
			// Long enough for several sweeps to find the events old enough.
			waitFor(t, 30*time.Second, func() (bool, string) {
				return e.sink.Stats().Rejected >= 5, "no relay is retrying the batch"
			})
			time.Sleep(4 * cfg.SweepAfter)
			outage.startFor(0)
			e.waitDelivered(ids, 30*time.Second)
			e.waitMarked(len(ids), 30*time.Second)
			var stats []relay.Stats
			var swept int64
			for _, r := range relays {
				stats = append(stats, r.Stats())
				swept += r.Stats().Swept
			}
			if swept != 0 || e.sink.Stats().Duplicates != 0 {
				t.Fatalf("relays %+v, endpoint %+v: want nothing swept and no duplicates", stats, e.sink.Stats())
			}
		})
	}
}
