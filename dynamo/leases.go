package dynamo

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ShardEnd is the checkpoint of a shard whose every record is done; its
// children may then be processed (the KCL uses the same marker).
const ShardEnd = "SHARD_END"

// ErrLeaseHeld means another relay holds a live lease on the shard.
var ErrLeaseHeld = errors.New("lease held by another owner")

// ErrLeaseLost means the lease was taken over (it expired and another relay
// acquired it); the caller must stop processing the shard.
var ErrLeaseLost = errors.New("lease lost")

// Lease is one row of the state table: who processes a shard and how far
// it got. The shape follows the KCL lease table so that several relays can
// share a stream's shards without a migration.
type Lease struct {
	StreamARN string `dynamodbav:"stream_arn"`
	ShardID   string `dynamodbav:"shard_id"`
	// Checkpoint is the sequence number of the last record whose event, and
	// every event before it in the shard, is DELIVERED or FAILED; ShardEnd
	// when the shard is finished; empty before the first checkpoint.
	Checkpoint     string   `dynamodbav:"checkpoint,omitempty"`
	Owner          string   `dynamodbav:"owner,omitempty"`
	Counter        int64    `dynamodbav:"lease_counter"`
	ExpiresAtMilli int64    `dynamodbav:"lease_expires_at"`
	ParentShardIDs []string `dynamodbav:"parent_shard_ids,omitempty"`
	UpdatedAt      string   `dynamodbav:"updated_at,omitempty"`
	// SettledBeforeMilli is a time (Unix milliseconds) before which the
	// owner has settled every record of the shard it read: other relays'
	// sweepers leave newer events to it. 0 when the owner has not said
	// yet (it just took the lease, or is still on its first batch).
	SettledBeforeMilli int64 `dynamodbav:"settled_before,omitempty"`
}

// Finished reports whether the shard was processed to its end.
func (l Lease) Finished() bool { return l.Checkpoint == ShardEnd }

// LeaseAPI is the part of the DynamoDB client the lease table needs.
type LeaseAPI interface {
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Leases reads and writes the state table for one owner.
type Leases struct {
	DB    LeaseAPI
	Table string
	// Owner identifies this relay process in the lease table.
	Owner string
	// Duration is how long a lease lives without renewal. A crashed
	// relay's shards are taken over by others after this long.
	Duration time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (l *Leases) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// List returns every lease of the stream.
func (l *Leases) List(ctx context.Context, streamARN string) ([]Lease, error) {
	var leases []Lease
	return leases, l.query(ctx, streamARN, &leases)
}

// query decodes every row of one state table partition into out, a
// pointer to a slice.
func (l *Leases) query(ctx context.Context, partition string, out any) error {
	var items []map[string]types.AttributeValue
	p := dynamodb.NewQueryPaginator(l.DB, &dynamodb.QueryInput{
		TableName:                 aws.String(l.Table),
		KeyConditionExpression:    aws.String("#s = :s"),
		ExpressionAttributeNames:  map[string]string{"#s": StateHashKey},
		ExpressionAttributeValues: map[string]types.AttributeValue{":s": &types.AttributeValueMemberS{Value: partition}},
		ConsistentRead:            aws.Bool(true),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("query state %s: %w", partition, err)
		}
		items = append(items, page.Items...)
	}
	if err := attributevalue.UnmarshalListOfMaps(items, out); err != nil {
		return fmt.Errorf("decode state %s: %w", partition, err)
	}
	return nil
}

// Acquire takes the shard's lease for l.Owner, creating it if missing. It
// succeeds when the lease is new, already ours, or expired, and returns the
// lease with its checkpoint; otherwise ErrLeaseHeld.
func (l *Leases) Acquire(ctx context.Context, streamARN string, shard Shard) (Lease, error) {
	now := l.now()
	var parents []string
	if shard.ParentID != "" {
		parents = []string{shard.ParentID}
	}
	parentsAV, err := attributevalue.Marshal(parents)
	if err != nil {
		return Lease{}, fmt.Errorf("encode parents: %w", err)
	}
	out, err := l.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(l.Table),
		Key:       leaseKey(streamARN, shard.ID),
		// The previous owner's settled_before goes: this one starts again
		// from the checkpoint.
		UpdateExpression: aws.String("SET #owner = :me, #exp = :exp, #upd = :upd, #parents = :parents " +
			"ADD #counter :one REMOVE #settled"),
		ConditionExpression: aws.String("attribute_not_exists(#shard) OR #owner = :me OR #exp < :now"),
		ExpressionAttributeNames: map[string]string{
			"#owner": "owner", "#exp": "lease_expires_at", "#upd": "updated_at",
			"#parents": "parent_shard_ids", "#counter": "lease_counter", "#shard": StateRangeKey,
			"#settled": "settled_before",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":me":      &types.AttributeValueMemberS{Value: l.Owner},
			":exp":     millis(now.Add(l.Duration)),
			":now":     millis(now),
			":upd":     timestamp(now),
			":parents": parentsAV,
			":one":     &types.AttributeValueMemberN{Value: "1"},
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			return Lease{}, fmt.Errorf("acquire %s: %w", shard.ID, ErrLeaseHeld)
		}
		return Lease{}, fmt.Errorf("acquire %s: %w", shard.ID, err)
	}
	var lease Lease
	if err := attributevalue.UnmarshalMap(out.Attributes, &lease); err != nil {
		return Lease{}, fmt.Errorf("decode lease %s: %w", shard.ID, err)
	}
	return lease, nil
}

// Checkpoint records seq (or ShardEnd) as the shard's checkpoint and renews
// the lease, and records settledBefore unless it is zero (see
// Lease.SettledBeforeMilli). It fails with ErrLeaseLost if another owner
// took the lease.
func (l *Leases) Checkpoint(ctx context.Context, streamARN, shardID, seq string, settledBefore time.Time) error {
	return l.update(ctx, streamARN, shardID, "SET #cp = :cp, #exp = :exp, #upd = :upd", settledBefore,
		map[string]types.AttributeValue{
			":cp":  &types.AttributeValueMemberS{Value: seq},
			":exp": millis(l.now().Add(l.Duration)),
		})
}

// Renew extends the lease without moving the checkpoint, and records
// settledBefore unless it is zero.
func (l *Leases) Renew(ctx context.Context, streamARN, shardID string, settledBefore time.Time) error {
	return l.update(ctx, streamARN, shardID, "SET #exp = :exp, #upd = :upd", settledBefore,
		map[string]types.AttributeValue{":exp": millis(l.now().Add(l.Duration))})
}

// Release expires the lease now so another relay can take the shard at
// once rather than after Duration.
func (l *Leases) Release(ctx context.Context, streamARN, shardID string) error {
	return l.update(ctx, streamARN, shardID, "SET #exp = :exp, #upd = :upd", time.Time{},
		map[string]types.AttributeValue{":exp": millis(time.Unix(0, 0))})
}

// update applies the SET clause expr to the lease if l.Owner holds it,
// adding settledBefore unless it is zero.
func (l *Leases) update(ctx context.Context, streamARN, shardID, expr string, settledBefore time.Time, values map[string]types.AttributeValue) error {
	values[":me"] = &types.AttributeValueMemberS{Value: l.Owner}
	values[":upd"] = timestamp(l.now())
	names := map[string]string{"#owner": "owner", "#exp": "lease_expires_at", "#upd": "updated_at"}
	if _, ok := values[":cp"]; ok {
		names["#cp"] = "checkpoint"
	}
	if !settledBefore.IsZero() {
		expr += ", #settled = :settled"
		names["#settled"] = "settled_before"
		values[":settled"] = millis(settledBefore)
	}
	_, err := l.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.Table),
		Key:                       leaseKey(streamARN, shardID),
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String("#owner = :me"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			return fmt.Errorf("lease %s: %w", shardID, ErrLeaseLost)
		}
		return fmt.Errorf("lease %s: %w", shardID, err)
	}
	return nil
}

func leaseKey(streamARN, shardID string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		StateHashKey:  &types.AttributeValueMemberS{Value: streamARN},
		StateRangeKey: &types.AttributeValueMemberS{Value: shardID},
	}
}

// timestamp is t as updated_at holds it.
func timestamp(t time.Time) types.AttributeValue {
	return &types.AttributeValueMemberS{Value: t.UTC().Format(time.RFC3339Nano)}
}

func millis(t time.Time) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(t.UnixMilli(), 10)}
}
