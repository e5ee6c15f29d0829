package dynamo

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// fakeTables is DynamoDB's table API as function fields; a nil field fails
// the test that reaches it.
type fakeTables struct {
	describe func(*dynamodb.DescribeTableInput) (*dynamodb.DescribeTableOutput, error)
	update   func(*dynamodb.UpdateTableInput) (*dynamodb.UpdateTableOutput, error)
}

var _ TableAPI = (*fakeTables)(nil)

func (f *fakeTables) CreateTable(context.Context, *dynamodb.CreateTableInput, ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	return nil, errors.New("unexpected CreateTable")
}

func (f *fakeTables) DescribeTable(_ context.Context, in *dynamodb.DescribeTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	if f.describe == nil {
		return nil, errors.New("unexpected DescribeTable")
	}
	return f.describe(in)
}

func (f *fakeTables) UpdateTable(_ context.Context, in *dynamodb.UpdateTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateTableOutput, error) {
	if f.update == nil {
		return nil, errors.New("unexpected UpdateTable")
	}
	return f.update(in)
}

func (f *fakeTables) DescribeTimeToLive(context.Context, *dynamodb.DescribeTimeToLiveInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error) {
	return nil, errors.New("unexpected DescribeTimeToLive")
}

func (f *fakeTables) UpdateTimeToLive(context.Context, *dynamodb.UpdateTimeToLiveInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error) {
	return nil, errors.New("unexpected UpdateTimeToLive")
}

// describing answers DescribeTable with an ACTIVE table holding arn (none
// if empty) and spec.
func describing(arn string, spec *types.StreamSpecification) func(*dynamodb.DescribeTableInput) (*dynamodb.DescribeTableOutput, error) {
	return func(in *dynamodb.DescribeTableInput) (*dynamodb.DescribeTableOutput, error) {
		td := &types.TableDescription{TableName: in.TableName, TableStatus: types.TableStatusActive, StreamSpecification: spec}
		if arn != "" {
			td.LatestStreamArn = aws.String(arn)
		}
		return &dynamodb.DescribeTableOutput{Table: td}, nil
	}
}

func streamSpec(enabled bool, view types.StreamViewType) *types.StreamSpecification {
	return &types.StreamSpecification{StreamEnabled: aws.Bool(enabled), StreamViewType: view}
}

func TestStreamARN(t *testing.T) {
	const arn = "arn:aws:dynamodb:us-east-1:1:table/Outbox/stream/2025-05-01T00:00:00.000"
	unavailable := errors.New("connection refused")
	tests := []struct {
		name     string
		describe func(*dynamodb.DescribeTableInput) (*dynamodb.DescribeTableOutput, error)
		want     string
		noStream bool
		// inErr is what the error must say besides the table name.
		inErr string
	}{
		{"enabled stream is found", describing(arn, streamSpec(true, types.StreamViewTypeNewImage)), arn, false, ""},
		{"table that never had a stream", describing("", nil), "", true, "no stream"},
		// DynamoDB drops the specification of a disabled stream but keeps
		// reporting its ARN.
		{"disabled stream without a specification", describing(arn, nil), "", true, "stream disabled"},
		{"disabled stream with its specification", describing(arn, streamSpec(false, types.StreamViewTypeNewImage)), "", true, "stream disabled"},
		{"describe fails", func(*dynamodb.DescribeTableInput) (*dynamodb.DescribeTableOutput, error) { return nil, unavailable }, "", false, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := StreamARN(context.Background(), &fakeTables{describe: tt.describe}, "Outbox")
			if got != tt.want || errors.Is(err, ErrNoStream) != tt.noStream {
				t.Fatalf("StreamARN = %q, %v; want %q, ErrNoStream %v", got, err, tt.want, tt.noStream)
			}
			if tt.inErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "Outbox") || !strings.Contains(err.Error(), tt.inErr) {
				t.Fatalf("error %v should name the table and say %q", err, tt.inErr)
			}
		})
	}
}

func TestEnsureStream(t *testing.T) {
	const arn = "arn:aws:dynamodb:us-east-1:1:table/Outbox/stream/2025-05-01T00:00:00.000"
	tests := []struct {
		name    string
		spec    *types.StreamSpecification
		arn     string
		enables bool
		wantErr string
	}{
		{"NEW_IMAGE stream is kept", streamSpec(true, types.StreamViewTypeNewImage), arn, false, ""},
		{"NEW_AND_OLD_IMAGES stream is kept", streamSpec(true, types.StreamViewTypeNewAndOldImages), arn, false, ""},
		{"KEYS_ONLY stream is refused", streamSpec(true, types.StreamViewTypeKeysOnly), arn, false, "lacks the new image"},
		{"table without a stream gets one", nil, "", true, ""},
		{"disabled stream is enabled again", nil, arn, true, ""},
		{"disabled KEYS_ONLY stream comes back as NEW_IMAGE", streamSpec(false, types.StreamViewTypeKeysOnly), arn, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var updates []*dynamodb.UpdateTableInput
			describedAfterUpdate := 0
			describe := describing(tt.arn, tt.spec)
			db := &fakeTables{
				describe: func(in *dynamodb.DescribeTableInput) (*dynamodb.DescribeTableOutput, error) {
					if len(updates) > 0 {
						describedAfterUpdate++
					}
					return describe(in)
				},
				update: func(in *dynamodb.UpdateTableInput) (*dynamodb.UpdateTableOutput, error) {
					updates = append(updates, in)
					return &dynamodb.UpdateTableOutput{}, nil
				},
			}
			err := ensureStream(context.Background(), db, "Outbox")
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("ensureStream = %v, want error %q", err, tt.wantErr)
			}
			if !tt.enables {
				if len(updates) != 0 {
					t.Fatalf("UpdateTable called %d times, want none", len(updates))
				}
				return
			}
			if len(updates) != 1 {
				t.Fatalf("UpdateTable called %d times, want once", len(updates))
			}
			if s := updates[0].StreamSpecification; s == nil || !aws.ToBool(s.StreamEnabled) || s.StreamViewType != types.StreamViewTypeNewImage {
				t.Fatalf("UpdateTable stream specification %+v, want enabled NEW_IMAGE", s)
			}
			// The next UpdateTable (the pending index) must wait for ACTIVE.
			if describedAfterUpdate == 0 {
				t.Fatal("did not wait for the table to be ACTIVE after enabling the stream")
			}
		})
	}
}
