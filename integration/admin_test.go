package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddboutbox/ddboutbox/cmd/analytics-sink/endpoint"
	"github.com/ddboutbox/ddboutbox/dynamo"
	"github.com/ddboutbox/ddboutbox/outbox"
)

// The operator functions need no relay: the tests commit events, put them
// in the state the relay would leave them in with the same UpdateItem
// calls, and read the items back.

// adminBase is the occurred_at of the first event of the admin tests:
// whole hours, so stored times have no fraction, which is the case that
// byte-wise string comparison in DynamoDB gets wrong near a bound.
var adminBase = time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)

// adminCommit commits one event per time, in order, so ids sort like times.
func (e *env) adminCommit(times ...time.Time) []outbox.Event {
	e.t.Helper()
	evs := make([]outbox.Event, len(times))
	for i, at := range times {
		ev, err := outbox.NewEvent("AdminTest", "Test", fmt.Sprintf("agg-%d", i), map[string]any{"n": i})
		if err != nil {
			e.t.Fatal(err)
		}
		ev.OccurredAt = at
		if err := e.writer.Commit(context.Background(), outbox.Tx{Events: []outbox.Event{ev}}); err != nil {
			e.t.Fatalf("commit: %v", err)
		}
		evs[i] = ev
	}
	return evs
}

// adminFail does what the relay does to a poison event.
func (e *env) adminFail(id, reason string) {
	e.t.Helper()
	e.adminUpdate(id, "SET #s = :failed, #err = :err, #fat = :at ADD #att :one REMOVE #b",
		map[string]string{"#err": outbox.AttrLastError, "#fat": outbox.AttrFailedAt, "#att": outbox.AttrAttempts},
		map[string]types.AttributeValue{
			":failed": &types.AttributeValueMemberS{Value: string(outbox.StatusFailed)},
			":err":    &types.AttributeValueMemberS{Value: reason},
			":at":     &types.AttributeValueMemberS{Value: time.Now().UTC().Format(time.RFC3339Nano)},
			":one":    &types.AttributeValueMemberN{Value: "1"},
		})
}

// adminDeliver does what the relay does after the endpoint accepted id.
func (e *env) adminDeliver(id string, at time.Time) {
	e.t.Helper()
	e.adminUpdate(id, "SET #s = :delivered, #dat = :at, #exp = :exp REMOVE #b",
		map[string]string{"#dat": outbox.AttrDeliveredAt, "#exp": outbox.AttrExpiresAt},
		map[string]types.AttributeValue{
			":delivered": &types.AttributeValueMemberS{Value: string(outbox.StatusDelivered)},
			":at":        &types.AttributeValueMemberS{Value: at.UTC().Format(time.RFC3339Nano)},
			":exp":       &types.AttributeValueMemberN{Value: strconv.FormatInt(at.Add(7*24*time.Hour).Unix(), 10)},
		})
}

func (e *env) adminUpdate(id, expr string, names map[string]string, values map[string]types.AttributeValue) {
	e.t.Helper()
	names["#s"], names["#b"] = outbox.AttrStatus, outbox.AttrPendingBucket
	values[":pending"] = &types.AttributeValueMemberS{Value: string(outbox.StatusPending)}
	_, err := clients.DB.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName:                 aws.String(e.tables.Outbox),
		Key:                       map[string]types.AttributeValue{outbox.AttrEventID: &types.AttributeValueMemberS{Value: id}},
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String("#s = :pending"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	if err != nil {
		e.t.Fatalf("mark %s: %v", id, err)
	}
}

// item reads an outbox item as attribute name to string value (numbers as
// their decimal text); absent attributes are missing keys.
func (e *env) adminItem(id string) map[string]string {
	e.t.Helper()
	av := getItem(e.t, e.tables.Outbox, outbox.AttrEventID, id)
	out := map[string]string{}
	for k, v := range av {
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			out[k] = v.Value
		case *types.AttributeValueMemberN:
			out[k] = v.Value
		}
	}
	return out
}

// adminInPendingIndex reports whether the sweeper's index lists id.
func (e *env) adminInPendingIndex(ev outbox.Event) bool {
	e.t.Helper()
	out, err := clients.DB.Query(context.Background(), &dynamodb.QueryInput{
		TableName:              aws.String(e.tables.Outbox),
		IndexName:              aws.String(outbox.PendingIndex),
		KeyConditionExpression: aws.String("#b = :b AND #o = :o"),
		ExpressionAttributeNames: map[string]string{
			"#b": outbox.AttrPendingBucket, "#o": outbox.AttrOccurredAt,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":b": &types.AttributeValueMemberS{Value: outbox.PendingBucket(ev.ID)},
			":o": &types.AttributeValueMemberS{Value: outbox.FormatTime(ev.OccurredAt)},
		},
	})
	if err != nil {
		e.t.Fatalf("query %s: %v", outbox.PendingIndex, err)
	}
	for _, it := range out.Items {
		if v, ok := it[outbox.AttrEventID].(*types.AttributeValueMemberS); ok && v.Value == ev.ID {
			return true
		}
	}
	return false
}

// adminWaitPending waits for a GSI, which is updated asynchronously.
func (e *env) adminWaitPending(evs ...outbox.Event) {
	e.t.Helper()
	waitFor(e.t, 10*time.Second, func() (bool, string) {
		for _, ev := range evs {
			if !e.adminInPendingIndex(ev) {
				return false, ev.ID + " not in " + outbox.PendingIndex
			}
		}
		return true, ""
	})
}

func recordIDs(recs []outbox.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func adminIDs(evs ...outbox.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func adminHour(n int) time.Time { return adminBase.Add(time.Duration(n) * time.Hour) }

func TestAdminList(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	ctx := context.Background()
	ev := e.adminCommit(adminHour(0), adminHour(1), adminHour(2), adminHour(3), adminHour(4), adminHour(5))
	for _, i := range []int{1, 3, 5} {
		e.adminFail(ev[i].ID, "endpoint said 400")
	}
	delivered := time.Now().UTC()
	e.adminDeliver(ev[0].ID, delivered)
	e.adminDeliver(ev[4].ID, delivered.Add(time.Second))

	tests := []struct {
		name string
		f    outbox.Filter
		want []string
	}{
		{"everything", outbox.Filter{}, adminIDs(ev...)},
		{"by status", outbox.Filter{Status: outbox.StatusFailed}, adminIDs(ev[1], ev[3], ev[5])},
		{"pending", outbox.Filter{Status: outbox.StatusPending}, adminIDs(ev[2])},
		{"time range is [from, to)", outbox.Filter{From: adminHour(1), To: adminHour(5)}, adminIDs(ev[1], ev[2], ev[3], ev[4])},
		{"status and time", outbox.Filter{Status: outbox.StatusFailed, From: adminHour(2), To: adminHour(5)}, adminIDs(ev[3])},
		{"open start", outbox.Filter{To: adminHour(2)}, adminIDs(ev[0], ev[1])},
		{"open end", outbox.Filter{From: adminHour(4)}, adminIDs(ev[4], ev[5])},
		// "…T13:00:00Z" sorts after "…T13:00:00.5Z" byte-wise though it is
		// earlier: the bound must not let ev[3] in.
		{"sub-second bound", outbox.Filter{From: adminHour(3).Add(500 * time.Millisecond)}, adminIDs(ev[4], ev[5])},
		{"sub-second upper bound", outbox.Filter{To: adminHour(3).Add(500 * time.Millisecond)}, adminIDs(ev[0], ev[1], ev[2], ev[3])},
		{"ids, unknown ignored, twice once", outbox.Filter{IDs: []string{ev[4].ID, ev[0].ID, "nope", ev[0].ID}}, adminIDs(ev[0], ev[4])},
		{"ids and status", outbox.Filter{IDs: []string{ev[0].ID, ev[1].ID}, Status: outbox.StatusFailed}, adminIDs(ev[1])},
		{"ids and time", outbox.Filter{IDs: []string{ev[0].ID, ev[1].ID}, From: adminHour(1)}, adminIDs(ev[1])},
		{"delivered after", outbox.Filter{DeliveredAfter: delivered}, adminIDs(ev[4])},
		{"nothing", outbox.Filter{Status: outbox.StatusDelivered, From: adminHour(1), To: adminHour(3)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := outbox.List(ctx, clients.DB, e.tables.Outbox, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if got := recordIDs(recs); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v\nwant %v", got, tt.want)
			}
		})
	}

	recs, err := outbox.List(ctx, clients.DB, e.tables.Outbox, outbox.Filter{IDs: []string{ev[1].ID, ev[4].ID}})
	if err != nil || len(recs) != 2 {
		t.Fatalf("list: %v, %v", recs, err)
	}
	failed, dlv := recs[0], recs[1]
	if failed.Status != outbox.StatusFailed || failed.Attempts != 1 || failed.LastError != "endpoint said 400" ||
		failed.FailedAt.IsZero() || !failed.DeliveredAt.IsZero() || failed.Type != "AdminTest" ||
		failed.AggregateID != "agg-1" || !failed.OccurredAt.Equal(adminHour(1)) || string(failed.Payload) != `{"n":1}` {
		t.Errorf("failed record: %+v", failed)
	}
	if dlv.Status != outbox.StatusDelivered || !dlv.DeliveredAt.Equal(delivered.Add(time.Second)) || !dlv.FailedAt.IsZero() {
		t.Errorf("delivered record: %+v", dlv)
	}

	for _, f := range []outbox.Filter{{Status: "LOST"}, {From: adminHour(2), To: adminHour(1)}, {IDs: []string{""}}} {
		var ve *outbox.ValidationError
		if _, err := outbox.List(ctx, clients.DB, e.tables.Outbox, f); !errors.As(err, &ve) {
			t.Errorf("List(%+v): got %v, want a ValidationError", f, err)
		}
	}
}

func TestAdminRedrive(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	ctx := context.Background()
	ev := e.adminCommit(adminHour(0), adminHour(1), adminHour(2), adminHour(3), adminHour(4), adminHour(5))
	for _, i := range []int{0, 1, 2, 3} {
		e.adminFail(ev[i].ID, "boom")
	}
	e.adminDeliver(ev[4].ID, time.Now())
	redrive := func(f outbox.Filter, want int) {
		t.Helper()
		n, err := outbox.Redrive(ctx, clients.DB, e.tables.Outbox, f)
		if err != nil || n != want {
			t.Fatalf("Redrive(%+v) = %d, %v; want %d", f, n, err, want)
		}
	}

	// By id: only the FAILED one of the three moves; again, nothing moves.
	before4, before5 := e.adminItem(ev[4].ID), e.adminItem(ev[5].ID)
	redrive(outbox.Filter{IDs: adminIDs(ev[0], ev[4], ev[5])}, 1)
	redrive(outbox.Filter{IDs: adminIDs(ev[0], ev[4], ev[5])}, 0)
	it := e.adminItem(ev[0].ID)
	if it[outbox.AttrStatus] != "PENDING" || it[outbox.AttrPendingBucket] != outbox.PendingBucket(ev[0].ID) {
		t.Errorf("redriven item: %v", it)
	}
	if _, err := time.Parse(time.RFC3339Nano, it[outbox.AttrRedrivenAt]); err != nil {
		t.Errorf("redriven_at: %v", err)
	}
	if _, ok := it[outbox.AttrFailedAt]; ok || it[outbox.AttrLastError] != "boom" || it[outbox.AttrAttempts] != "1" {
		t.Errorf("redriven item must drop failed_at, keep last_error and attempts: %v", it)
	}
	if got := e.adminItem(ev[4].ID); !maps.Equal(got, before4) {
		t.Errorf("delivered event changed: %v, was %v", got, before4)
	}
	if got := e.adminItem(ev[5].ID); !maps.Equal(got, before5) {
		t.Errorf("pending event changed: %v, was %v", got, before5)
	}

	// By time range: ev[1] only (ev[2] occurred at the exclusive end).
	redrive(outbox.Filter{From: adminHour(1), To: adminHour(2)}, 1)
	redrive(outbox.Filter{From: adminHour(1), To: adminHour(2)}, 0)
	if s := e.adminItem(ev[2].ID)[outbox.AttrStatus]; s != "FAILED" {
		t.Errorf("event outside the range: status %s", s)
	}

	// All: the rest.
	redrive(outbox.Filter{}, 2)
	redrive(outbox.Filter{}, 0)
	if s := e.summary(); s.Pending != 5 || s.Delivered != 1 || s.Failed != 0 {
		t.Errorf("summary %+v", s)
	}
	// The sweeper finds them through the sparse index.
	e.adminWaitPending(ev[0], ev[1], ev[2], ev[3])

	var ve *outbox.ValidationError
	if _, err := outbox.Redrive(ctx, clients.DB, e.tables.Outbox, outbox.Filter{Status: outbox.StatusDelivered}); !errors.As(err, &ve) {
		t.Errorf("redrive of DELIVERED: got %v, want a ValidationError", err)
	}
}

func TestAdminReplay(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	ctx := context.Background()
	ev := e.adminCommit(adminHour(0), adminHour(1), adminHour(2), adminHour(3), adminHour(1))
	for i := range 4 {
		e.adminDeliver(ev[i].ID, time.Now())
	}
	e.adminFail(ev[4].ID, "boom") // in range, but not DELIVERED

	var ve *outbox.ValidationError
	for _, f := range []outbox.Filter{{}, {From: adminHour(0)}, {To: adminHour(9)}, {From: adminHour(0), To: adminHour(9), Status: outbox.StatusFailed}} {
		if n, err := outbox.Replay(ctx, clients.DB, e.tables.Outbox, f); !errors.As(err, &ve) || n != 0 {
			t.Errorf("Replay(%+v) = %d, %v; want a ValidationError", f, n, err)
		}
	}
	if s := e.summary(); s.Delivered != 4 {
		t.Fatalf("a rejected replay changed items: %+v", s)
	}

	f := outbox.Filter{From: adminHour(1), To: adminHour(3)}
	if n, err := outbox.Replay(ctx, clients.DB, e.tables.Outbox, f); err != nil || n != 2 {
		t.Fatalf("replay = %d, %v; want 2", n, err)
	}
	if n, err := outbox.Replay(ctx, clients.DB, e.tables.Outbox, f); err != nil || n != 0 {
		t.Fatalf("second replay = %d, %v; want 0", n, err)
	}
	for _, x := range ev[1:3] {
		it := e.adminItem(x.ID)
		_, dat := it[outbox.AttrDeliveredAt]
		_, exp := it[outbox.AttrExpiresAt]
		if it[outbox.AttrStatus] != "PENDING" || it[outbox.AttrPendingBucket] != outbox.PendingBucket(x.ID) || dat || exp || it[outbox.AttrReplayedAt] == "" {
			t.Errorf("replayed item %s: %v", x.ID, it)
		}
	}
	for _, x := range []outbox.Event{ev[0], ev[3]} {
		if it := e.adminItem(x.ID); it[outbox.AttrStatus] != "DELIVERED" || it[outbox.AttrExpiresAt] == "" {
			t.Errorf("event outside the range: %v", it)
		}
	}
	if s := e.adminItem(ev[4].ID)[outbox.AttrStatus]; s != "FAILED" {
		t.Errorf("FAILED event in range: status %s", s)
	}
	e.adminWaitPending(ev[1], ev[2])
}

// buildOutboxctl builds cmd/outboxctl for the test.
func buildOutboxctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "outboxctl")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/outboxctl").CombinedOutput()
	if err != nil {
		t.Fatalf("build outboxctl: %v\n%s", err, out)
	}
	return bin
}

// outboxctl runs bin (buildOutboxctl) on e's tables with args after the
// global flags, and returns what it printed and its exit code.
func (e *env) outboxctl(bin string, args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	global := []string{"-dynamodb-endpoint", ddbEndpoint, "-outbox-table", e.tables.Outbox,
		"-bookings-table", e.tables.Bookings, "-state-table", e.tables.State}
	cmd := exec.Command(bin, append(global, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run outboxctl %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// TestAdminCLI runs the built binary: the flags, the output formats and the
// exit codes an operator sees.
func TestAdminCLI(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	bin := buildOutboxctl(t)
	ev := e.adminCommit(adminHour(0), adminHour(1), adminHour(2))
	e.adminFail(ev[0].ID, "endpoint said 400: bad\tfield")
	e.adminDeliver(ev[1].ID, time.Now())

	// A lease as a relay would leave it, for status to show.
	arn, err := dynamo.StreamARN(context.Background(), clients.DB, e.tables.Outbox)
	if err != nil {
		t.Fatal(err)
	}
	leases := &dynamo.Leases{DB: clients.DB, Table: e.tables.State, Owner: "relay-a", Duration: time.Minute}
	if _, err := leases.Acquire(context.Background(), arn, dynamo.Shard{ID: "shardId-00000001-aaaa", ParentID: "shardId-00000000-ffff"}); err != nil {
		t.Fatal(err)
	}
	const seq = "49590338271490256608559692538361571095921575989136588898"
	if err := leases.Checkpoint(context.Background(), arn, "shardId-00000001-aaaa", seq, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := leases.HoldOwner(context.Background(), dynamo.Process{Instance: "i-1", Host: "host-a", PID: 4242}, nil); err != nil {
		t.Fatal(err)
	}

	ctl := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		return e.outboxctl(bin, args...)
	}

	t.Run("status json", func(t *testing.T) {
		out, _, code := ctl("status", "-o", "json")
		var got struct {
			Pending, Delivered, Failed int
			StreamARN                  string `json:"stream_arn"`
			Shards                     []struct {
				ShardID        string   `json:"shard_id"`
				Checkpoint     string   `json:"checkpoint"`
				Owner          string   `json:"owner"`
				LeaseCounter   int      `json:"lease_counter"`
				LeaseLive      bool     `json:"lease_live"`
				ParentShardIDs []string `json:"parent_shard_ids"`
			}
			Relays []struct {
				Owner, Instance, Host string
				PID                   int
				HoldLive              bool `json:"hold_live"`
			}
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 {
			t.Fatalf("exit %d, %v: %s", code, err, out)
		}
		if got.Pending != 1 || got.Delivered != 1 || got.Failed != 1 || got.StreamARN != arn || len(got.Shards) != 1 {
			t.Fatalf("status %+v", got)
		}
		sh := got.Shards[0]
		if sh.ShardID != "shardId-00000001-aaaa" || sh.Checkpoint != seq || sh.Owner != "relay-a" || sh.LeaseCounter != 1 ||
			!sh.LeaseLive || !slices.Equal(sh.ParentShardIDs, []string{"shardId-00000000-ffff"}) {
			t.Fatalf("shard %+v", sh)
		}
		if len(got.Relays) != 1 || got.Relays[0].Owner != "relay-a" || got.Relays[0].Instance != "i-1" ||
			got.Relays[0].Host != "host-a" || got.Relays[0].PID != 4242 || !got.Relays[0].HoldLive {
			t.Fatalf("relays %+v", got.Relays)
		}
	})
	t.Run("status table", func(t *testing.T) {
		out, _, code := ctl("status")
		for _, want := range []string{"PENDING  DELIVERED  FAILED", "shardId-00000001-aaaa", "relay-a", "495903…588898", "shardId-00000000-ffff", "host-a  4242"} {
			if code != 0 || !strings.Contains(out, want) {
				t.Fatalf("exit %d, no %q in:\n%s", code, want, out)
			}
		}
	})
	t.Run("failed json has the payload as JSON", func(t *testing.T) {
		out, _, code := ctl("-o", "json", "failed")
		var got []map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 || len(got) != 1 {
			t.Fatalf("exit %d, %v: %s", code, err, out)
		}
		r := got[0]
		if r["event_id"] != ev[0].ID || r["last_error"] != "endpoint said 400: bad\tfield" || r["attempts"] != 1.0 ||
			r["payload"].(map[string]any)["n"] != 0.0 || r["status"] != "FAILED" {
			t.Fatalf("record %v", r)
		}
	})
	t.Run("failed table", func(t *testing.T) {
		out, _, _ := ctl("failed")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "EVENT ID") || !strings.Contains(lines[1], "endpoint said 400: bad field") || !strings.Contains(lines[1], `{"n":0}`) {
			t.Fatalf("table:\n%s", out)
		}
	})
	t.Run("usage errors exit 2 with one line", func(t *testing.T) {
		for _, args := range [][]string{
			{"redrive"}, {"redrive", "-all", "-id", "x"}, {"replay", "-from", "2025-05-01T00:00:00Z"},
			{"failed", "-from", "yesterday"}, {"status", "-o", "xml"}, {"nope"}, {"tail", "-interval", "0s"},
		} {
			out, stderr, code := ctl(args...)
			if code != 2 || out != "" || strings.Count(stderr, "\n") != 1 {
				t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, stderr)
			}
		}
	})
	t.Run("redrive and replay", func(t *testing.T) {
		if out, _, code := ctl("redrive", "-all", "-dry-run", "-o", "json"); code != 0 || !strings.Contains(out, ev[0].ID) {
			t.Fatalf("dry run: exit %d: %s", code, out)
		}
		if s := e.summary(); s.Failed != 1 {
			t.Fatalf("a dry run moved events: %+v", s)
		}
		out, _, code := ctl("redrive", "-id", ev[0].ID, "-o", "json")
		if code != 0 || strings.TrimSpace(out) != "{\n  \"redriven\": 1\n}" {
			t.Fatalf("redrive: exit %d: %s", code, out)
		}
		out, _, code = ctl("replay", "-from", adminHour(0).Format(time.RFC3339), "-to", adminHour(3).Format(time.RFC3339))
		if code != 0 || !strings.HasPrefix(out, "replayed 1 event(s)") {
			t.Fatalf("replay: exit %d: %s", code, out)
		}
		if s := e.summary(); s.Pending != 3 {
			t.Fatalf("summary %+v", s)
		}
	})
	t.Run("tail follows deliveries in delivered_at order", func(t *testing.T) {
		since := time.Now().UTC()
		// Stamped out of id order, as concurrent batches are, before tail
		// starts: its first poll shows them sorted.
		e.adminDeliver(ev[2].ID, since.Add(2*time.Millisecond))
		e.adminDeliver(ev[0].ID, since.Add(time.Millisecond))
		e.adminDeliver(ev[1].ID, since.Add(3*time.Millisecond))

		cmd := exec.Command(bin, "-dynamodb-endpoint", ddbEndpoint, "-outbox-table", e.tables.Outbox,
			"tail", "-o", "json", "-interval", "100ms", "-since", since.Format(time.RFC3339Nano))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() }) // if the test fails first
		lines := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		read := func(n int) []string {
			t.Helper()
			var got []string
			timeout := time.After(10 * time.Second)
			for len(got) < n {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("tail ended after %v: %s", got, stderr.String())
					}
					var r struct {
						EventID string `json:"event_id"`
					}
					if err := json.Unmarshal([]byte(l), &r); err != nil {
						t.Fatalf("line %q: %v", l, err)
					}
					got = append(got, r.EventID)
				case <-timeout:
					t.Fatalf("tail printed %v within 10s; stderr %s", got, stderr.String())
				}
			}
			return got
		}
		if got, want := read(3), adminIDs(ev[0], ev[2], ev[1]); !slices.Equal(got, want) {
			t.Errorf("tail order %v, want %v", got, want)
		}
		// A marking that lands after later ones were printed, with an older
		// stamp (within -lag), is still shown.
		late := e.adminCommit(adminHour(9))[0]
		e.adminDeliver(late.ID, since.Add(500*time.Microsecond))
		if got := read(1); got[0] != late.ID {
			t.Errorf("late delivery: got %v, want %s", got, late.ID)
		}
		// Ctrl-C ends it cleanly, and nothing was printed twice.
		time.Sleep(300 * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		var extra []string
		for l := range lines {
			extra = append(extra, l)
		}
		if err := cmd.Wait(); err != nil || len(extra) != 0 {
			t.Errorf("after SIGINT: %v, extra lines %v, stderr %s", err, extra, stderr.String())
		}
	})
}

// outboxctl on a table whose stream was disabled: status shows the stream
// as disabled instead of failing, and init, which enables a new stream,
// prints one JSON object naming the tables with -o json, given before or
// after the command.
func TestAdminCLIInitEnablesADisabledStream(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	bin := buildOutboxctl(t)
	e.adminCommit(adminHour(0))
	oldARN, err := dynamo.StreamARN(t.Context(), clients.DB, e.tables.Outbox)
	if err != nil {
		t.Fatal(err)
	}
	e.setStream(false)

	type streamStatus struct {
		Pending       int
		StreamARN     string `json:"stream_arn"`
		StreamEnabled bool   `json:"stream_enabled"`
	}
	status := func() streamStatus {
		t.Helper()
		out, stderr, code := e.outboxctl(bin, "status", "-o", "json")
		var st streamStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 {
			t.Fatalf("status -o json: exit %d, %v: %s%s", code, err, out, stderr)
		}
		return st
	}
	if st := status(); st.Pending != 1 || st.StreamARN != oldARN || st.StreamEnabled {
		t.Fatalf("status json of a disabled stream: %+v; want the old ARN, not enabled", st)
	}
	out, stderr, code := e.outboxctl(bin, "status")
	if code != 0 || !strings.Contains(out, "stream: "+oldARN+" (disabled") {
		t.Fatalf("status of a disabled stream: exit %d, want it shown as disabled:\n%s%s", code, out, stderr)
	}

	want := map[string]string{"outbox": e.tables.Outbox, "bookings": e.tables.Bookings, "state": e.tables.State}
	var newARN string
	for _, args := range [][]string{{"init", "-o", "json"}, {"-o", "json", "init"}} {
		out, stderr, code := e.outboxctl(bin, args...)
		var got map[string]string
		if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 || !maps.Equal(got, want) {
			t.Fatalf("%v: exit %d, %v: %q%s; want %v", args, code, err, out, stderr, want)
		}
		st := status()
		if !st.StreamEnabled || st.StreamARN == oldARN || (newARN != "" && st.StreamARN != newARN) {
			t.Fatalf("status after %v: %+v; want one new enabled stream (old %q)", args, st, oldARN)
		}
		newARN = st.StreamARN
	}
	if out, stderr, code := e.outboxctl(bin, "init"); code != 0 || !strings.HasPrefix(out, "tables ready: "+e.tables.Outbox) {
		t.Fatalf("init: exit %d: %s%s", code, out, stderr)
	}
}
