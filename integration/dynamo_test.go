package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddboutbox/ddboutbox/cmd/analytics-sink/endpoint"
	"github.com/ddboutbox/ddboutbox/dynamo"
	"github.com/ddboutbox/ddboutbox/outbox"
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

// EnsureTables (outboxctl init) completes an outbox table made by hand: a
// provisioned one gets the pending index with the table's capacity, which
// DynamoDB requires there, and TTL on expires_at. One whose TTL is on
// another attribute is refused, naming both: a table has one TTL
// attribute, and DELIVERED events would never expire.
func TestEnsureTablesCompletesAnOutboxTableMadeByHand(t *testing.T) {
	// DynamoDB Local never finishes an index added to a table (it stays
	// CREATING) and takes five such at a time: each case deletes its
	// tables when it ends.
	tests := []struct {
		name        string
		provisioned bool
		ttlOn       string // "" = none
		wantErr     string // "" = completed
	}{
		{name: "provisioned", provisioned: true},
		{name: "TTL on another attribute", ttlOn: "ttl", wantErr: `has TTL on "ttl", but delivered events expire by "expires_at"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			tables := testTables(t)
			in := &dynamodb.CreateTableInput{
				TableName:            aws.String(tables.Outbox),
				AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(outbox.AttrEventID), AttributeType: types.ScalarAttributeTypeS}},
				KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(outbox.AttrEventID), KeyType: types.KeyTypeHash}},
				BillingMode:          types.BillingModePayPerRequest,
				StreamSpecification:  &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewImage},
			}
			if tt.provisioned {
				in.BillingMode = types.BillingModeProvisioned
				in.ProvisionedThroughput = &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(7), WriteCapacityUnits: aws.Int64(9)}
			}
			if _, err := clients.DB.CreateTable(ctx, in); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				for _, name := range []string{tables.Outbox, tables.Bookings, tables.State} {
					_, _ = clients.DB.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
				}
			})
			if tt.ttlOn != "" {
				if _, err := clients.DB.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
					TableName:               aws.String(tables.Outbox),
					TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(tt.ttlOn), Enabled: aws.Bool(true)},
				}); err != nil {
					t.Fatal(err)
				}
			}

			err := dynamo.EnsureTables(ctx, clients.DB, tables)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("EnsureTables: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("EnsureTables: %v", err)
			}
			out, err := clients.DB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tables.Outbox)})
			if err != nil {
				t.Fatal(err)
			}
			var index *types.GlobalSecondaryIndexDescription
			for i, gsi := range out.Table.GlobalSecondaryIndexes {
				if aws.ToString(gsi.IndexName) == outbox.PendingIndex {
					index = &out.Table.GlobalSecondaryIndexes[i]
				}
			}
			if index == nil {
				t.Fatalf("indexes %+v, want %s", out.Table.GlobalSecondaryIndexes, outbox.PendingIndex)
			}
			if pt := index.ProvisionedThroughput; tt.provisioned && (pt == nil || aws.ToInt64(pt.ReadCapacityUnits) != 7 || aws.ToInt64(pt.WriteCapacityUnits) != 9) {
				t.Fatalf("index throughput %+v, want the table's 7 read / 9 write units", pt)
			}
			ttl, err := clients.DB.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(tables.Outbox)})
			if err != nil {
				t.Fatal(err)
			}
			if d := ttl.TimeToLiveDescription; d == nil || aws.ToString(d.AttributeName) != outbox.AttrExpiresAt {
				t.Fatalf("TTL %+v, want it on %s", d, outbox.AttrExpiresAt)
			}
		})
	}
}

// A disabled stream is not found, though DynamoDB still reports its ARN as
// LatestStreamArn: nothing new flows through it. EnsureTables (outboxctl
// init) enables a new stream, and leaves an enabled one as it is.
func TestDisabledStreamIsNotFoundUntilEnsureTables(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	ctx := t.Context()
	oldARN, err := dynamo.StreamARN(ctx, clients.DB, e.tables.Outbox)
	if err != nil {
		t.Fatal(err)
	}
	e.setStream(false)
	if arn, err := dynamo.StreamARN(ctx, clients.DB, e.tables.Outbox); !errors.Is(err, dynamo.ErrNoStream) || !strings.Contains(err.Error(), "stream disabled") {
		t.Fatalf("disabled stream: got %q, %v; want ErrNoStream saying the stream is disabled", arn, err)
	}

	if err := dynamo.EnsureTables(ctx, clients.DB, e.tables); err != nil {
		t.Fatalf("EnsureTables on a disabled stream: %v", err)
	}
	newARN, err := dynamo.StreamARN(ctx, clients.DB, e.tables.Outbox)
	if err != nil || newARN == oldARN {
		t.Fatalf("stream after EnsureTables: %q, %v; want a new one (old %q)", newARN, err, oldARN)
	}
	out, err := clients.DB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(e.tables.Outbox)})
	if err != nil {
		t.Fatal(err)
	}
	if spec := out.Table.StreamSpecification; spec == nil || spec.StreamViewType != types.StreamViewTypeNewImage {
		t.Fatalf("stream specification %+v, want NEW_IMAGE", spec)
	}
	if shards, err := dynamo.ListShards(ctx, clients.Streams, newARN); err != nil || len(shards) == 0 {
		t.Fatalf("shards of the new stream %v: %v", shards, err)
	}

	if err := dynamo.EnsureTables(ctx, clients.DB, e.tables); err != nil {
		t.Fatalf("EnsureTables on an enabled stream: %v", err)
	}
	if arn, err := dynamo.StreamARN(ctx, clients.DB, e.tables.Outbox); err != nil || arn != newARN {
		t.Fatalf("stream after a second EnsureTables: %q, %v; want it unchanged (%q)", arn, err, newARN)
	}
}

// Leases are exclusive while alive, can be taken over once expired, and a
// relay that lost its lease cannot checkpoint. settled_before goes with
// the owner: a new owner starts without one.
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
	settled := now.Add(-time.Minute).Truncate(time.Millisecond)
	if err := a.Checkpoint(ctx, arn, shard.ID, "100", settled); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if err := a.Renew(ctx, arn, shard.ID, time.Time{}); err != nil { // says nothing new
		t.Fatalf("renew: %v", err)
	}
	if leases, err := a.List(ctx, arn); err != nil || len(leases) != 1 || leases[0].SettledBeforeMilli != settled.UnixMilli() {
		t.Fatalf("after a checkpoint with settled_before %d: %+v, %v", settled.UnixMilli(), leases, err)
	}
	if _, err := b.Acquire(ctx, arn, shard); !errors.Is(err, dynamo.ErrLeaseHeld) {
		t.Fatalf("acquire of a live lease: got %v, want ErrLeaseHeld", err)
	}
	if la, err = a.Acquire(ctx, arn, shard); err != nil || la.Counter != 2 || la.Checkpoint != "100" {
		t.Fatalf("re-acquire by the owner: %+v, %v", la, err)
	}

	now = now.Add(11 * time.Second) // a's lease expires
	lb, err := b.Acquire(ctx, arn, shard)
	if err != nil || lb.Owner != "b" || lb.Checkpoint != "100" || lb.SettledBeforeMilli != 0 {
		t.Fatalf("takeover of an expired lease: %+v, %v", lb, err)
	}
	if err := a.Checkpoint(ctx, arn, shard.ID, "200", now); !errors.Is(err, dynamo.ErrLeaseLost) {
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

// One process at a time holds an owner: another waits until the holder
// releases it, its hold expires, or it is known to have ended; the holder
// it replaced can no longer renew.
func TestOwnerIsHeldByOneProcessAtATime(t *testing.T) {
	e := newEnv(t, endpoint.Options{})
	ctx := t.Context()
	now := time.Now()
	l := &dynamo.Leases{DB: clients.DB, Table: e.tables.State, Owner: "host-1", Duration: 10 * time.Second,
		Now: func() time.Time { return now }}
	a := dynamo.Process{Instance: "a", Host: "host-1", PIDNamespace: "pid:[1]", PID: 10}
	b := dynamo.Process{Instance: "b", Host: "host-1", PIDNamespace: "pid:[1]", PID: 11}
	aGone := func(p dynamo.Process) bool { return p.Instance == "a" }

	if err := l.HoldOwner(ctx, a, nil); err != nil {
		t.Fatalf("first hold: %v", err)
	}
	if err := l.HoldOwner(ctx, a, nil); err != nil {
		t.Fatalf("hold again by the holder (a lost answer retried): %v", err)
	}
	var inUse *dynamo.OwnerInUseError
	if err := l.HoldOwner(ctx, b, nil); !errors.As(err, &inUse) || inUse.Holder.Instance != "a" || inUse.Holder.PID != 10 || inUse.Holder.Host != "host-1" {
		t.Fatalf("hold of a live owner: got %v (%+v), want OwnerInUseError naming a", err, inUse)
	}
	now = now.Add(5 * time.Second)
	if err := l.RenewOwner(ctx, a); err != nil {
		t.Fatalf("renew: %v", err)
	}
	now = now.Add(7 * time.Second) // 12 s after the hold, 7 s after the renewal
	if err := l.HoldOwner(ctx, b, nil); !errors.As(err, &inUse) {
		t.Fatalf("hold of a renewed owner: got %v, want OwnerInUseError", err)
	}

	if err := l.HoldOwner(ctx, b, aGone); err != nil {
		t.Fatalf("hold of an owner whose holder ended: %v", err)
	}
	if err := l.RenewOwner(ctx, a); !errors.Is(err, dynamo.ErrOwnerTaken) {
		t.Fatalf("renew by the replaced holder: got %v, want ErrOwnerTaken", err)
	}
	if err := l.ReleaseOwner(ctx, a); !errors.Is(err, dynamo.ErrOwnerTaken) {
		t.Fatalf("release by the replaced holder: got %v, want ErrOwnerTaken", err)
	}
	if err := l.HoldOwner(ctx, a, aGone); !errors.As(err, &inUse) || inUse.Holder.Instance != "b" {
		t.Fatalf("hold while b holds: got %v, want OwnerInUseError naming b", err)
	}

	if err := l.ReleaseOwner(ctx, b); err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := l.HoldOwner(ctx, a, nil); err != nil {
		t.Fatalf("hold of a released owner: %v", err)
	}
	now = now.Add(11 * time.Second)
	if err := l.HoldOwner(ctx, b, nil); err != nil {
		t.Fatalf("hold of an expired owner: %v", err)
	}

	rows, err := l.Owners(ctx)
	if err != nil || len(rows) != 1 || rows[0].Owner != "host-1" || rows[0].Instance != "b" || rows[0].PID != 11 ||
		rows[0].ExpiresAtMilli != now.Add(10*time.Second).UnixMilli() {
		t.Fatalf("owners: %+v, %v", rows, err)
	}
}
