package dynamo

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
)

// Shard is one shard of a DynamoDB stream.
type Shard struct {
	ID       string
	ParentID string // empty for a root shard
	// EndingSequence is set once the shard is closed: no record will be
	// added to it, and its children carry on from there.
	EndingSequence string
}

// Closed reports whether the shard receives no more records.
func (s Shard) Closed() bool { return s.EndingSequence != "" }

// DescribeStreamAPI is the part of the Streams client shard discovery needs.
type DescribeStreamAPI interface {
	DescribeStream(ctx context.Context, in *dynamodbstreams.DescribeStreamInput, optFns ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error)
}

// ListShards returns every shard of the stream, following
// LastEvaluatedShardId: DescribeStream returns at most 100 shards a call and
// a busy stream has many more.
func ListShards(ctx context.Context, api DescribeStreamAPI, streamARN string) ([]Shard, error) {
	var shards []Shard
	in := &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(streamARN)}
	for {
		out, err := api.DescribeStream(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("describe stream: %w", err)
		}
		for _, s := range out.StreamDescription.Shards {
			sh := Shard{ID: aws.ToString(s.ShardId), ParentID: aws.ToString(s.ParentShardId)}
			if s.SequenceNumberRange != nil {
				sh.EndingSequence = aws.ToString(s.SequenceNumberRange.EndingSequenceNumber)
			}
			shards = append(shards, sh)
		}
		// The API reference gives an empty value as the end, too.
		last := out.StreamDescription.LastEvaluatedShardId
		if aws.ToString(last) == "" {
			return shards, nil
		}
		in.ExclusiveStartShardId = last
	}
}
