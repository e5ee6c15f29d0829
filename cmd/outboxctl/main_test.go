package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/ddboutbox/ddboutbox/cmd/internal/cli"
	"github.com/ddboutbox/ddboutbox/dynamo"
	"github.com/ddboutbox/ddboutbox/outbox"
)

// Commands against DynamoDB Local are tested in integration/admin_test.go;
// these cover what needs no table: flag checks and output formats.

// Usage errors are found before any AWS client is made: these would
// otherwise need credentials and a network.
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"nope"},
		{"status", "extra"},
		{"-o", "xml", "status"},
		{"init", "-o", "xml"},
		{"init", "extra"},
		{"redrive"},
		{"redrive", "-dry-run"},
		{"redrive", "-all", "-id", "x"},
		{"redrive", "-all", "-from", "2025-05-01T00:00:00Z"},
		{"redrive", "-id", "x", "-to", "2025-05-01T00:00:00Z"},
		{"redrive", "-from", "2025-05-02T00:00:00Z", "-to", "2025-05-01T00:00:00Z"},
		{"replay", "-from", "2025-05-01T00:00:00Z"},
		{"replay", "-to", "2025-05-01T00:00:00Z"},
		{"failed", "-from", "2025-05-01"},
		{"failed", "-id", ""},
		{"tail", "-interval", "0s"},
		{"tail", "-lag", "-1s"},
		{"-outbox-table", "", "status"},
		{"-state-table=", "tail"},
		{"-dynamodb-endpoint", "127.0.0.1:8000", "failed"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, &stdout, &stderr)
		if !errors.Is(err, cli.ErrUsage) || stdout.Len() != 0 || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: got %v (stdout %q), want a one-line usage error", args, err, stdout.String())
		}
	}
}

func TestHelp(t *testing.T) {
	for cmd, want := range map[string]string{"redrive": "-all", "replay": "-dry-run", "tail": "-interval duration", "failed": "-from time", "init": "-o format"} {
		var stderr bytes.Buffer
		err := run(context.Background(), []string{cmd, "-h"}, &bytes.Buffer{}, &stderr)
		if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr.String(), want) {
			t.Errorf("%s -h: %v, no %q in:\n%s", cmd, err, want, stderr.String())
		}
	}
}

func testRecords() []outbox.Record {
	at := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	return []outbox.Record{
		{
			Event:  outbox.Event{ID: "0196-a", Type: "BookingReserved", AggregateType: "Booking", AggregateID: "b-1", OccurredAt: at, Payload: json.RawMessage("{\n  \"seats\": 2\n}")},
			Status: outbox.StatusFailed, Attempts: 3, LastError: "endpoint said 400:\n\tbad row", FailedAt: at.Add(time.Minute),
		},
		{
			Event:  outbox.Event{ID: "0196-b", Type: "BookingCancelled", AggregateType: "Booking", AggregateID: "b-1", OccurredAt: at.Add(time.Second), Payload: json.RawMessage(`{"note":"` + strings.Repeat("x", 300) + `"}`)},
			Status: outbox.StatusFailed, Attempts: 1, LastError: "timeout",
		},
	}
}

func TestWriteRecordsTable(t *testing.T) {
	var buf bytes.Buffer
	if err := writeRecords(&buf, formatTable, testRecords()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and two rows, got:\n%s", buf.String())
	}
	// Aligned: every column starts at the same offset on every line.
	col := strings.Index(lines[0], "OCCURRED AT")
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l[col:], "2025-05-01T10:00:0") {
			t.Errorf("misaligned row %q", l)
		}
	}
	if !strings.Contains(lines[1], `endpoint said 400:  bad row`) || !strings.Contains(lines[1], `{"seats":2}`) {
		t.Errorf("row 1 %q: want the error on one line and the payload compacted", lines[1])
	}
	if !strings.HasSuffix(lines[2], "…") || len([]rune(lines[2])) > 250 {
		t.Errorf("row 2 %q: want the long payload cut", lines[2])
	}
}

func TestWriteRecordsJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := writeRecords(&buf, formatJSON, testRecords()); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("not one JSON document: %v\n%s", err, buf.String())
	}
	if len(got) != 2 || got[0]["event_id"] != "0196-a" || got[0]["payload"].(map[string]any)["seats"] != 2.0 ||
		got[0]["last_error"] != "endpoint said 400:\n\tbad row" || got[0]["attempts"] != 3.0 {
		t.Fatalf("got %v", got)
	}
	buf.Reset()
	if err := writeRecords(&buf, formatJSON, nil); err != nil || strings.TrimSpace(buf.String()) != "[]" {
		t.Fatalf("no records: %q, %v", buf.String(), err)
	}
}

func TestWriteStatus(t *testing.T) {
	now := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	st := status{
		Summary: outbox.Summary{Pending: 2, Delivered: 10, Failed: 1, OldestPending: now.Add(-90 * time.Second)},
		Now:     now,
		Stream:  dynamo.Stream{ARN: "arn:stream", Enabled: true},
		Leases: []dynamo.Lease{
			{ShardID: "shardId-2", Checkpoint: "49590338271490256608559692538361571095921575989136588898", Owner: "relay-a", Counter: 7, ExpiresAtMilli: now.Add(20 * time.Second).UnixMilli(), ParentShardIDs: []string{"shardId-1"}, SettledBeforeMilli: now.Add(-4 * time.Second).UnixMilli()},
			{ShardID: "shardId-1", Checkpoint: dynamo.ShardEnd, Owner: "relay-b", Counter: 3},
		},
		Relays: []dynamo.OwnerRow{
			{Owner: "relay-a", Process: dynamo.Process{Instance: "i1", Host: "host-a", PID: 4242, ExpiresAtMilli: now.Add(25 * time.Second).UnixMilli()}},
			{Owner: "relay-b", Process: dynamo.Process{Instance: "i2", Host: "host-b", PID: 77}},
		},
	}
	var buf bytes.Buffer
	if err := st.write(&buf, formatTable); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"PENDING  DELIVERED  FAILED  OLDEST PENDING AGE\n2        10         1       1m30s\n",
		"stream: arn:stream\n",
		"shardId-1  SHARD_END      relay-b  3        expired                            -        -",
		"shardId-2  495903…588898  relay-a  7        2025-05-01T10:00:20.000Z (in 20s)  4s ago   shardId-1",
		"OWNER    HOST    PID   HOLD EXPIRES\nrelay-a  host-a  4242  2025-05-01T10:00:25.000Z (in 25s)\nrelay-b  host-b  77    expired\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}

	buf.Reset()
	if err := st.write(&buf, formatJSON); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Pending, Delivered, Failed int
		OldestPendingAgeSeconds    float64 `json:"oldest_pending_age_seconds"`
		Shards                     []shardJSON
		Relays                     []relayJSON
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Relays) != 2 || got.Relays[0] != (relayJSON{Owner: "relay-a", Instance: "i1", Host: "host-a", PID: 4242,
		HoldExpiresAt: now.Add(25 * time.Second), HoldLive: true}) || got.Relays[1].HoldLive || got.Relays[1].Owner != "relay-b" {
		t.Fatalf("relays %+v", got.Relays)
	}
	if got.Pending != 2 || got.OldestPendingAgeSeconds != 90 || len(got.Shards) != 2 ||
		got.Shards[0].ShardID != "shardId-1" || !got.Shards[0].Finished || got.Shards[0].LeaseLive ||
		got.Shards[1].Checkpoint != st.Leases[0].Checkpoint || !got.Shards[1].LeaseLive || got.Shards[1].LeaseCounter != 7 ||
		got.Shards[0].SettledBefore != nil || got.Shards[1].SettledBefore == nil || !got.Shards[1].SettledBefore.Equal(now.Add(-4*time.Second)) {
		t.Fatalf("got %+v", got)
	}
}

// init reports the tables it made ready: one line, or one JSON object
// naming each table by its role.
func TestWriteTables(t *testing.T) {
	tables := dynamo.Tables{Outbox: "O", Bookings: "B", State: "S"}
	tests := []struct {
		name string
		f    format
		want string
	}{
		{"table", formatTable, "tables ready: O (stream, pending index, TTL), B, S\n"},
		{"json", formatJSON, "{\n  \"bookings\": \"B\",\n  \"outbox\": \"O\",\n  \"state\": \"S\"\n}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writeTables(&buf, tt.f, tables); err != nil || buf.String() != tt.want {
				t.Fatalf("got %q, %v; want %q", buf.String(), err, tt.want)
			}
		})
	}
}

// The stream line of status says whether the outbox table has a stream
// the relay can tail, in both formats; a disabled stream still lists the
// leases a relay holds on it while reading it to its end.
func TestWriteStatusStream(t *testing.T) {
	now := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	lease := dynamo.Lease{ShardID: "shardId-1", Owner: "relay-a", Counter: 1}
	tests := []struct {
		name        string
		stream      dynamo.Stream
		leases      []dynamo.Lease
		wantTable   []string
		wantARN     string
		wantEnabled bool
	}{
		{"no stream", dynamo.Stream{}, nil,
			[]string{"stream: none (the outbox table has no stream; run outboxctl init)\n"}, "", false},
		{"enabled, no leases", dynamo.Stream{ARN: "arn:s", Enabled: true}, nil,
			[]string{"stream: arn:s\nno shard leases yet"}, "arn:s", true},
		{"disabled, no leases", dynamo.Stream{ARN: "arn:s"}, nil,
			[]string{"stream: arn:s (disabled: new events reach the relay only through its sweeper; run outboxctl init)\nno shard leases yet"}, "arn:s", false},
		{"disabled, leases of the old stream", dynamo.Stream{ARN: "arn:s"}, []dynamo.Lease{lease},
			[]string{"stream: arn:s (disabled: ", "shardId-1", "relay-a"}, "arn:s", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := status{Now: now, Stream: tt.stream, Leases: tt.leases}
			var buf bytes.Buffer
			if err := st.write(&buf, formatTable); err != nil {
				t.Fatal(err)
			}
			for _, want := range tt.wantTable {
				if !strings.Contains(buf.String(), want) {
					t.Errorf("no %q in:\n%s", want, buf.String())
				}
			}

			buf.Reset()
			if err := st.write(&buf, formatJSON); err != nil {
				t.Fatal(err)
			}
			var got struct {
				StreamARN     string `json:"stream_arn"`
				StreamEnabled *bool  `json:"stream_enabled"`
				Shards        []shardJSON
			}
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.StreamARN != tt.wantARN || got.StreamEnabled == nil || *got.StreamEnabled != tt.wantEnabled || len(got.Shards) != len(tt.leases) {
				t.Fatalf("json %s", buf.String())
			}
		})
	}
}

func delivered(id string, at time.Time) outbox.Record {
	return outbox.Record{Event: outbox.Event{ID: id}, Status: outbox.StatusDelivered, DeliveredAt: at}
}

func TestFollower(t *testing.T) {
	start := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	f := newFollower(start, 10*time.Second)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	names := func(recs []outbox.Record) string {
		var s []string
		for _, r := range recs {
			s = append(s, r.ID)
		}
		return strings.Join(s, ",")
	}

	// Before start: not shown. One batch shares a stamp: ordered by id.
	got := f.next([]outbox.Record{delivered("c", at(2*time.Second)), delivered("b", at(time.Second)), delivered("a", at(2*time.Second)), delivered("old", at(-time.Second))})
	if names(got) != "b,a,c" || f.window() != at(-8*time.Second) {
		t.Fatalf("first poll %s, window %v", names(got), f.window())
	}
	// The rest of a half-marked batch and a late marking are shown; what
	// was printed is not shown again.
	got = f.next([]outbox.Record{delivered("a", at(2*time.Second)), delivered("d", at(2*time.Second)), delivered("late", at(1500*time.Millisecond))})
	if names(got) != "late,d" {
		t.Fatalf("second poll %s", names(got))
	}
	// A replayed event is delivered again with a new stamp: shown again.
	got = f.next([]outbox.Record{delivered("a", at(30*time.Second))})
	if names(got) != "a" {
		t.Fatalf("third poll %s", names(got))
	}
	// Memory: what fell out of the window is forgotten.
	if len(f.seen) != 1 {
		t.Fatalf("seen %v, want only the replayed event", f.seen)
	}
}

func TestTailTable(t *testing.T) {
	var buf bytes.Buffer
	p := newTailPrinter(&buf, formatTable)
	at := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	r := testRecords()[0]
	r.DeliveredAt = at
	if err := p.header(); err != nil {
		t.Fatal(err)
	}
	if err := p.print([]outbox.Record{r}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	if col := strings.Index(lines[0], "EVENT ID"); col < 0 || !strings.HasPrefix(lines[1][col:], r.ID) {
		t.Fatalf("misaligned:\n%s", buf.String())
	}

	buf.Reset()
	p = newTailPrinter(&buf, formatJSON)
	if err := p.header(); err != nil || buf.Len() != 0 {
		t.Fatalf("json header %q", buf.String())
	}
	if err := p.print([]outbox.Record{r, r}); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["delivered_at"] != "2025-05-01T10:00:00Z" {
			t.Fatalf("line %q: %v", l, err)
		}
	}
}
