package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddboutbox/ddboutbox/outbox"
)

// Default table names; every binary lets them be overridden by flag.
const (
	DefaultOutboxTable   = "Outbox"
	DefaultBookingsTable = "Bookings"
	DefaultStateTable    = "OutboxRelayState"
)

// Key attribute names of the bookings and state tables. The outbox item's
// attributes are owned by package outbox.
const (
	BookingsKey   = "booking_id"
	StateHashKey  = "stream_arn"
	StateRangeKey = "shard_id"
)

// Tables names the three tables of a deployment.
type Tables struct {
	// Outbox holds outbox events; it has a stream (NEW_IMAGE) the relay tails.
	// Default "Outbox".
	Outbox string
	// Bookings is the example booking service's business table.
	// Default "Bookings".
	Bookings string
	// State is the relay's lease and checkpoint table.
	// Default "OutboxRelayState".
	State string
}

// WithDefaults returns t with empty names replaced by the defaults.
func (t Tables) WithDefaults() Tables {
	if t.Outbox == "" {
		t.Outbox = DefaultOutboxTable
	}
	if t.Bookings == "" {
		t.Bookings = DefaultBookingsTable
	}
	if t.State == "" {
		t.State = DefaultStateTable
	}
	return t
}

// TableAPI is the part of the DynamoDB client table management needs.
type TableAPI interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	UpdateTable(ctx context.Context, in *dynamodb.UpdateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateTableOutput, error)
	DescribeTimeToLive(ctx context.Context, in *dynamodb.DescribeTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
	UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
}

// DescribeTableAPI is the part of the DynamoDB client StreamARN needs.
type DescribeTableAPI interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

// tableWait bounds how long EnsureTables waits for a new table to become
// ACTIVE; real DynamoDB takes seconds, DynamoDB Local is immediate.
const tableWait = 2 * time.Minute

// EnsureTables creates the outbox (with a NEW_IMAGE stream and TTL on
// expires_at), bookings and state tables if they do not exist. It is
// idempotent: existing tables are left as they are, except that what the
// outbox table lacks is added: a missing or disabled stream is enabled (a
// new stream, with a new ARN), and the pending index (on a provisioned
// table, with the table's capacity) and TTL. An outbox table whose TTL is
// on another attribute is an error: a table has only one.
func EnsureTables(ctx context.Context, db TableAPI, t Tables) error {
	t = t.WithDefaults()
	specs := []*dynamodb.CreateTableInput{
		{
			TableName:              aws.String(t.Outbox),
			AttributeDefinitions:   append(pendingIndexAttrs(), types.AttributeDefinition{AttributeName: aws.String(outbox.AttrEventID), AttributeType: types.ScalarAttributeTypeS}),
			KeySchema:              []types.KeySchemaElement{{AttributeName: aws.String(outbox.AttrEventID), KeyType: types.KeyTypeHash}},
			BillingMode:            types.BillingModePayPerRequest,
			StreamSpecification:    &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewImage},
			GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{pendingIndex()},
		},
		{
			TableName:            aws.String(t.Bookings),
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(BookingsKey), AttributeType: types.ScalarAttributeTypeS}},
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(BookingsKey), KeyType: types.KeyTypeHash}},
			BillingMode:          types.BillingModePayPerRequest,
		},
		{
			TableName: aws.String(t.State),
			AttributeDefinitions: []types.AttributeDefinition{
				{AttributeName: aws.String(StateHashKey), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: aws.String(StateRangeKey), AttributeType: types.ScalarAttributeTypeS},
			},
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(StateHashKey), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(StateRangeKey), KeyType: types.KeyTypeRange},
			},
			BillingMode: types.BillingModePayPerRequest,
		},
	}
	for _, in := range specs {
		if err := createTable(ctx, db, in); err != nil {
			return err
		}
	}
	if err := ensureStream(ctx, db, t.Outbox); err != nil {
		return err
	}
	if err := ensurePendingIndex(ctx, db, t.Outbox); err != nil {
		return err
	}
	return ensureTTL(ctx, db, t.Outbox, outbox.AttrExpiresAt)
}

func pendingIndexAttrs() []types.AttributeDefinition {
	return []types.AttributeDefinition{
		{AttributeName: aws.String(outbox.AttrPendingBucket), AttributeType: types.ScalarAttributeTypeS},
		{AttributeName: aws.String(outbox.AttrOccurredAt), AttributeType: types.ScalarAttributeTypeS},
	}
}

// pendingIndex projects only the keys: the sweeper reads each event back
// whole from its claim (an UpdateItem returning ALL_NEW) anyway, and a
// keys-only index costs the least.
func pendingIndex() types.GlobalSecondaryIndex {
	return types.GlobalSecondaryIndex{
		IndexName: aws.String(outbox.PendingIndex),
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(outbox.AttrPendingBucket), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(outbox.AttrOccurredAt), KeyType: types.KeyTypeRange},
		},
		Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
	}
}

// ensurePendingIndex adds the sweeper's index to an outbox table created
// before it existed. It does not wait for the backfill: on a big table that
// takes long, and the sweeper simply retries until the index is ACTIVE.
func ensurePendingIndex(ctx context.Context, db TableAPI, table string) error {
	out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		return fmt.Errorf("describe table %s: %w", table, err)
	}
	for _, gsi := range out.Table.GlobalSecondaryIndexes {
		if aws.ToString(gsi.IndexName) == outbox.PendingIndex {
			return nil
		}
	}
	gsi := pendingIndex()
	_, err = db.UpdateTable(ctx, &dynamodb.UpdateTableInput{
		TableName:            aws.String(table),
		AttributeDefinitions: pendingIndexAttrs(),
		GlobalSecondaryIndexUpdates: []types.GlobalSecondaryIndexUpdate{{Create: &types.CreateGlobalSecondaryIndexAction{
			IndexName: gsi.IndexName, KeySchema: gsi.KeySchema, Projection: gsi.Projection,
			ProvisionedThroughput: indexThroughput(out.Table),
		}}},
	})
	if err != nil {
		return fmt.Errorf("add index %s to %s: %w", outbox.PendingIndex, table, err)
	}
	return nil
}

// indexThroughput is what a new index of t must be given: nothing on an
// on-demand table, and on a provisioned one, where DynamoDB requires it,
// the table's own capacity: the index takes a write for each event written
// and each one leaving PENDING, as the table does.
func indexThroughput(t *types.TableDescription) *types.ProvisionedThroughput {
	if t.BillingModeSummary != nil && t.BillingModeSummary.BillingMode == types.BillingModePayPerRequest {
		return nil
	}
	pt := t.ProvisionedThroughput
	if pt == nil || aws.ToInt64(pt.ReadCapacityUnits) == 0 || aws.ToInt64(pt.WriteCapacityUnits) == 0 {
		return nil // on demand, as described by a table without a summary
	}
	return &types.ProvisionedThroughput{ReadCapacityUnits: pt.ReadCapacityUnits, WriteCapacityUnits: pt.WriteCapacityUnits}
}

func createTable(ctx context.Context, db TableAPI, in *dynamodb.CreateTableInput) error {
	name := aws.ToString(in.TableName)
	_, err := db.CreateTable(ctx, in)
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	return waitActive(ctx, db, name)
}

// waitActive waits until the table is ACTIVE: after its creation, or after
// an UpdateTable, during which DynamoDB refuses the next UpdateTable.
func waitActive(ctx context.Context, db TableAPI, table string) error {
	w := dynamodb.NewTableExistsWaiter(db, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 200 * time.Millisecond
		o.MaxDelay = 5 * time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, tableWait); err != nil {
		return fmt.Errorf("wait for table %s: %w", table, err)
	}
	return nil
}

func ensureStream(ctx context.Context, db TableAPI, table string) error {
	out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		return fmt.Errorf("describe table %s: %w", table, err)
	}
	spec := out.Table.StreamSpecification
	if streamEnabled(spec) {
		// NEW_AND_OLD_IMAGES carries the new image too; only KEYS_ONLY and
		// OLD_IMAGE lack what the relay reads.
		if spec.StreamViewType == types.StreamViewTypeNewImage || spec.StreamViewType == types.StreamViewTypeNewAndOldImages {
			return nil
		}
		return fmt.Errorf("table %s: stream view type %s lacks the new image; the relay needs NEW_IMAGE", table, spec.StreamViewType)
	}
	_, err = db.UpdateTable(ctx, &dynamodb.UpdateTableInput{
		TableName:           aws.String(table),
		StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewImage},
	})
	if err != nil {
		return fmt.Errorf("enable stream on %s: %w", table, err)
	}
	// The index added next is another UpdateTable, which real DynamoDB
	// refuses while this one is in progress.
	return waitActive(ctx, db, table)
}

func ensureTTL(ctx context.Context, db TableAPI, table, attr string) error {
	out, err := db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil {
		return fmt.Errorf("describe ttl %s: %w", table, err)
	}
	if d := out.TimeToLiveDescription; d != nil {
		switch d.TimeToLiveStatus {
		case types.TimeToLiveStatusEnabled, types.TimeToLiveStatusEnabling:
			if got := aws.ToString(d.AttributeName); got != attr {
				// A table has one TTL attribute: taking it over would
				// stop whatever the owner set it up for.
				return fmt.Errorf("table %s has TTL on %q, but delivered events expire by %q: "+
					"move the table's TTL to %q or DELIVERED events are never deleted", table, got, attr, attr)
			}
			return nil
		}
	}
	_, err = db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String(table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(attr), Enabled: aws.Bool(true)},
	})
	if err != nil {
		return fmt.Errorf("enable ttl on %s: %w", table, err)
	}
	return nil
}

// Stream is a table's latest stream as DescribeTable reports it.
type Stream struct {
	// ARN is the latest stream's ARN; empty if the table never had one.
	ARN string
	// Enabled is false for a stream that was disabled: DynamoDB keeps
	// reporting its ARN (LatestStreamArn), and its records stay readable
	// for 24 hours, but no new change reaches it.
	Enabled bool
}

// LatestStream describes the table's latest stream, enabled or not.
func LatestStream(ctx context.Context, db DescribeTableAPI, table string) (Stream, error) {
	out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		return Stream{}, fmt.Errorf("describe table %s: %w", table, err)
	}
	return Stream{ARN: aws.ToString(out.Table.LatestStreamArn), Enabled: streamEnabled(out.Table.StreamSpecification)}, nil
}

// streamEnabled reports whether a table's stream specification has the
// stream on; a disabled stream may have no specification at all.
func streamEnabled(spec *types.StreamSpecification) bool {
	return spec != nil && aws.ToBool(spec.StreamEnabled)
}

// StreamARN returns the ARN of the table's current stream, or an error
// wrapping ErrNoStream if it has none or its stream is disabled. A table
// whose stream was disabled and re-enabled has a new ARN; this always
// returns the latest one.
func StreamARN(ctx context.Context, db DescribeTableAPI, table string) (string, error) {
	s, err := LatestStream(ctx, db, table)
	switch {
	case err != nil:
		return "", err
	case s.ARN == "":
		return "", fmt.Errorf("table %s: %w", table, ErrNoStream)
	case !s.Enabled:
		return "", fmt.Errorf("table %s: stream disabled: %w", table, ErrNoStream)
	}
	return s.ARN, nil
}

// ErrNoStream means the outbox table has no stream to tail.
var ErrNoStream = errors.New("table has no stream enabled")
