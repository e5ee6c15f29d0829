package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// ScanAPI is the part of the DynamoDB client Summarize needs.
type ScanAPI interface {
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// Summary counts the outbox table's items by status.
type Summary struct {
	Pending   int `json:"pending"`
	Delivered int `json:"delivered"`
	Failed    int `json:"failed"`
	// OldestPending is when the oldest PENDING event occurred; zero when
	// nothing is pending.
	OldestPending time.Time `json:"oldest_pending,omitzero"`
}

// OldestPendingAge is how long the oldest PENDING event has waited.
func (s Summary) OldestPendingAge(now time.Time) time.Duration {
	if s.OldestPending.IsZero() {
		return 0
	}
	return now.Sub(s.OldestPending)
}

// Summarize scans the outbox table, reading only status and occurred_at.
// A scan reads the whole table: it is for operators and tests, not for a
// hot path. Delivered items leave through TTL, which keeps the table small.
func Summarize(ctx context.Context, db ScanAPI, table string) (Summary, error) {
	var s Summary
	p := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{
		TableName:                aws.String(table),
		ProjectionExpression:     aws.String("#s, #o"),
		ExpressionAttributeNames: map[string]string{"#s": AttrStatus, "#o": AttrOccurredAt},
		ConsistentRead:           aws.Bool(true),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return Summary{}, fmt.Errorf("scan %s: %w", table, err)
		}
		var items []struct {
			Status     Status    `dynamodbav:"status"`
			OccurredAt time.Time `dynamodbav:"occurred_at"`
		}
		if err := attributevalue.UnmarshalListOfMaps(page.Items, &items); err != nil {
			return Summary{}, fmt.Errorf("decode %s: %w", table, err)
		}
		for _, it := range items {
			switch it.Status {
			case StatusPending:
				s.Pending++
				if s.OldestPending.IsZero() || it.OccurredAt.Before(s.OldestPending) {
					s.OldestPending = it.OccurredAt
				}
			case StatusDelivered:
				s.Delivered++
			case StatusFailed:
				s.Failed++
			}
		}
	}
	return s, nil
}
