package dynamo

import (
	"context"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// pagedStream answers DescribeStream a page of shard ids at a time; the
// last page ends with end (nil, or an empty id).
type pagedStream struct {
	pages  [][]string
	end    *string
	starts []string
}

func (p *pagedStream) DescribeStream(_ context.Context, in *dynamodbstreams.DescribeStreamInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error) {
	p.starts = append(p.starts, aws.ToString(in.ExclusiveStartShardId))
	page := p.pages[len(p.starts)-1]
	d := &types.StreamDescription{LastEvaluatedShardId: p.end}
	if len(p.starts) < len(p.pages) {
		d.LastEvaluatedShardId = aws.String(page[len(page)-1])
	}
	for _, id := range page {
		d.Shards = append(d.Shards, types.Shard{ShardId: aws.String(id)})
	}
	return &dynamodbstreams.DescribeStreamOutput{StreamDescription: d}, nil
}

func TestListShardsFollowsPagesToTheEnd(t *testing.T) {
	for _, tt := range []struct {
		name string
		end  *string
	}{{"no last id", nil}, {"an empty last id", aws.String("")}} {
		t.Run(tt.name, func(t *testing.T) {
			api := &pagedStream{pages: [][]string{{"s1", "s2"}, {"s3"}}, end: tt.end}
			shards, err := ListShards(t.Context(), api, "arn")
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, s := range shards {
				ids = append(ids, s.ID)
			}
			if !slices.Equal(ids, []string{"s1", "s2", "s3"}) || !slices.Equal(api.starts, []string{"", "s2"}) {
				t.Fatalf("shards %v after calls starting at %q; want s1-s3 in two calls", ids, api.starts)
			}
		})
	}
}
