package relay

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ddboutbox/ddboutbox/outbox"
)

// pendingDB answers a query of the pending index with one event that
// occurred at oldest, and fails the sweeper's claims.
type pendingDB struct {
	cutoffDB
	oldest time.Time
}

func (db *pendingDB) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if aws.ToString(in.IndexName) != outbox.PendingIndex {
		return &dynamodb.QueryOutput{}, nil
	}
	return &dynamodb.QueryOutput{Items: []map[string]types.AttributeValue{{
		outbox.AttrEventID:    &types.AttributeValueMemberS{Value: "e-1"},
		outbox.AttrOccurredAt: &types.AttributeValueMemberS{Value: db.oldest.UTC().Format(time.RFC3339Nano)},
	}}}, nil
}

// The oldest-pending gauge is how an operator sees delivery stall, so it
// is kept with the sweeper on or off, and measured as soon as the relay
// starts.
func TestOldestPendingGaugeWithAndWithoutSweeper(t *testing.T) {
	for _, interval := range []time.Duration{-1, time.Hour} {
		t.Run("sweep-interval "+interval.String(), func(t *testing.T) {
			db := &pendingDB{oldest: time.Now().Add(-90 * time.Second)}
			reg := prometheus.NewRegistry()
			r, err := New(Config{
				SinkURL: "http://127.0.0.1:1/rows", SweepInterval: interval, Logger: quietLogger(), Registerer: reg,
			}, db, nil, acceptSink{})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() {
				defer close(done)
				r.sweepLoop(ctx, "arn", make(chan record))
			}()
			gauge := func() float64 {
				mfs, err := reg.Gather()
				if err != nil {
					t.Fatal(err)
				}
				for _, mf := range mfs {
					if mf.GetName() == "ddboutbox_relay_oldest_pending_age_seconds" {
						return mf.GetMetric()[0].GetGauge().GetValue()
					}
				}
				t.Fatal("no oldest pending gauge registered")
				return 0
			}
			deadline := time.Now().Add(5 * time.Second)
			for gauge() == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			<-done
			if got := gauge(); got < 89 || got > 120 {
				t.Fatalf("oldest pending age gauge %.1fs, want about 90s", got)
			}
		})
	}
}
