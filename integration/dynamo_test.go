package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ddboutbox/ddboutbox/cmd/analytics-sink/endpoint"
	"github.com/ddboutbox/ddboutbox/dynamo"
)

// Creating the tables twice is harmless, and the outbox table gets its
// stream.
func TestEnsureTablesIsIdempotent(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	if err := dynamo.EnsureTables(context.Background(), clients.DB, e.tables); err != nil {
		t.Fatalf("second EnsureTables: %v", err)
	}
	arn, err := dynamo.StreamARN(context.Background(), clients.DB, e.tables.Outbox)
	if err != nil || arn == "" {
		t.Fatalf("stream arn %q: %v", arn, err)
	}
	if _, err := dynamo.StreamARN(context.Background(), clients.DB, e.tables.Bookings); !errors.Is(err, dynamo.ErrNoStream) {
		t.Fatalf("bookings table stream: got %v, want ErrNoStream", err)
	}
	shards, err := dynamo.ListShards(context.Background(), clients.Streams, arn)
	if err != nil || len(shards) == 0 {
		t.Fatalf("shards %v: %v", shards, err)
	}
}

// Leases are exclusive while alive, can be taken over once expired, and a
// relay that lost its lease cannot checkpoint.
func TestLeasesAreExclusiveUntilExpiry(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	a := &dynamo.Leases{DB: clients.DB, Table: e.tables.State, Owner: "a", Duration: 10 * time.Second, Now: clock}
	b := &dynamo.Leases{DB: clients.DB, Table: e.tables.State, Owner: "b", Duration: 10 * time.Second, Now: clock}
	const arn = "arn:test-stream"
	shard := dynamo.Shard{ID: "shardId-1", ParentID: "shardId-0"}

	la, err := a.Acquire(ctx, arn, shard)
	if err != nil || la.Owner != "a" || la.Counter != 1 || la.Checkpoint != "" || len(la.ParentShardIDs) != 1 {
		t.Fatalf("first acquire: %+v, %v", la, err)
	}
	if err := a.Checkpoint(ctx, arn, shard.ID, "100"); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if _, err := b.Acquire(ctx, arn, shard); !errors.Is(err, dynamo.ErrLeaseHeld) {
		t.Fatalf("acquire of a live lease: got %v, want ErrLeaseHeld", err)
	}
	if la, err = a.Acquire(ctx, arn, shard); err != nil || la.Counter != 2 || la.Checkpoint != "100" {
		t.Fatalf("re-acquire by the owner: %+v, %v", la, err)
	}

	now = now.Add(11 * time.Second) // a's lease expires
	lb, err := b.Acquire(ctx, arn, shard)
	if err != nil || lb.Owner != "b" || lb.Checkpoint != "100" {
		t.Fatalf("takeover of an expired lease: %+v, %v", lb, err)
	}
	if err := a.Checkpoint(ctx, arn, shard.ID, "200"); !errors.Is(err, dynamo.ErrLeaseLost) {
		t.Fatalf("checkpoint after losing the lease: got %v, want ErrLeaseLost", err)
	}
	if err := b.Release(ctx, arn, shard.ID); err != nil {
		t.Fatalf("release: %v", err)
	}
	if _, err := a.Acquire(ctx, arn, shard); err != nil {
		t.Fatalf("acquire of a released lease: %v", err)
	}
	leases, err := a.List(ctx, arn)
	if err != nil || len(leases) != 1 || leases[0].Owner != "a" || leases[0].Checkpoint != "100" {
		t.Fatalf("list: %+v, %v", leases, err)
	}
}
