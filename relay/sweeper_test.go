package relay

import (
	"context"
	"strings"
	"sync"
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

// claimDB records the claim renewals it is asked for and refuses those
// of the events in lapsed (another relay claimed them since).
type claimDB struct {
	cutoffDB
	lapsed map[string]bool
	// marking are in a transaction that marks them right now
	marking map[string]bool
	mu      sync.Mutex
	renewed map[string]string // id -> condition
}

func (db *claimDB) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	id := in.Key[outbox.AttrEventID].(*types.AttributeValueMemberS).Value
	if db.lapsed[id] {
		return nil, &types.ConditionalCheckFailedException{Message: aws.String("claimed by another relay")}
	}
	if db.marking[id] {
		return nil, &types.TransactionConflictException{Message: aws.String("Transaction is ongoing for the item")}
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	db.renewed[id] = aws.ToString(in.ConditionExpression) + " " + in.ExpressionAttributeValues[":me"].(*types.AttributeValueMemberS).Value
	return &dynamodb.UpdateItemOutput{}, nil
}

// The claims on swept events still in the pipeline are renewed, only
// those and only while this relay holds them: an outage longer than the
// claim must not let another relay's sweeper send them again. An event
// being marked in a transaction right now is settled: nothing to renew,
// and not a reason to fail the round.
func TestRenewClaimsKeepsSweptEventsClaimed(t *testing.T) {
	db := &claimDB{lapsed: map[string]bool{"swept-lapsed": true}, marking: map[string]bool{"swept-being-marked": true}, renewed: map[string]string{}}
	r, err := New(Config{SinkURL: "http://127.0.0.1:1/rows", Owner: "me", Logger: quietLogger()}, db, nil, acceptSink{})
	if err != nil {
		t.Fatal(err)
	}
	r.inPipeline.Store("from-stream", struct{}{})
	r.inPipeline.Store("swept-1", swept{})
	r.inPipeline.Store("swept-2", swept{})
	r.inPipeline.Store("swept-lapsed", swept{})
	r.inPipeline.Store("swept-being-marked", swept{})
	n, err := r.renewClaims(t.Context())
	if err != nil || n != 2 {
		t.Fatalf("renewed %d, err %v; want 2, nil", n, err)
	}
	want := "#status = :pending AND #by = :me me"
	if len(db.renewed) != 2 || db.renewed["swept-1"] != want || db.renewed["swept-2"] != want {
		t.Fatalf("renewed %v, want swept-1 and swept-2 on condition %q", db.renewed, want)
	}
	if item, err := r.claim(t.Context(), "swept-being-marked"); item != nil || err != nil {
		t.Fatalf("claim of an event being marked: %v, %v; want it skipped", item, err)
	}
}

// drainDB serves one pending event to the sweeper, grants its claim, and
// records the time of every claim renewal.
type drainDB struct {
	stateDB
	item     map[string]types.AttributeValue
	mu2      sync.Mutex
	renewals []time.Time
}

func (db *drainDB) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if aws.ToString(in.IndexName) == outbox.PendingIndex && in.ExpressionAttributeValues[":cutoff"] != nil {
		return &dynamodb.QueryOutput{Items: []map[string]types.AttributeValue{{
			outbox.AttrEventID: db.item[outbox.AttrEventID], outbox.AttrOccurredAt: db.item[outbox.AttrOccurredAt],
		}}}, nil
	}
	return &dynamodb.QueryOutput{}, nil
}

func (db *drainDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	cond := aws.ToString(in.ConditionExpression)
	if _, ok := in.Key[outbox.AttrEventID]; ok {
		switch {
		case strings.Contains(cond, "attribute_not_exists(#exp)"): // claim
			return &dynamodb.UpdateItemOutput{Attributes: db.item}, nil
		case strings.Contains(cond, "#by = :me"): // renewal
			db.mu2.Lock()
			db.renewals = append(db.renewals, time.Now())
			db.mu2.Unlock()
			return &dynamodb.UpdateItemOutput{}, nil
		}
	}
	return &dynamodb.UpdateItemOutput{}, nil
}

// downSink is an endpoint outage: it answers nothing until ctx ends.
type downSink struct{ called chan struct{} }

func (s downSink) Send(ctx context.Context, _ []byte, _ string) error {
	select {
	case s.called <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

// A swept event still in flight during the shutdown drain stays claimed
// (README: "renewed every third of it until they are settled"): here the
// endpoint is down, so the event is POSTed until -shutdown-timeout.
func TestSweptClaimsAreRenewedWhileDraining(t *testing.T) {
	e, err := outbox.NewEvent("t", "a", "1", map[string]any{"k": 1})
	if err != nil {
		t.Fatal(err)
	}
	e.OccurredAt = time.Now().Add(-time.Hour)
	item, err := outbox.Item(e)
	if err != nil {
		t.Fatal(err)
	}
	db := &drainDB{item: item}
	sink := downSink{called: make(chan struct{}, 1)}
	r, err := New(Config{
		SinkURL: "http://127.0.0.1:1/rows", Owner: "me", Logger: quietLogger(),
		SweepInterval: 100 * time.Millisecond, SweepAfter: time.Second,
		ClaimDuration: time.Second, ShutdownTimeout: 3 * time.Second,
		LeaseDuration: time.Second, BatchWindow: 10 * time.Millisecond,
	}, db, newPagedStreams(), sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.tail(ctx, "arn") }()
	<-sink.called               // swept, claimed, and being POSTed
	time.Sleep(1 * time.Second) // renewals happen while running
	stop := time.Now()
	cancel()
	err = <-done
	if err == nil {
		t.Fatal("tail returned nil, want the shutdown timeout's error: the event was never delivered")
	}
	db.mu2.Lock()
	defer db.mu2.Unlock()
	before, after := 0, 0
	for _, at := range db.renewals {
		if at.Before(stop) {
			before++
		} else {
			after++
		}
	}
	if before == 0 {
		t.Fatal("no renewals at all")
	}
	if after == 0 {
		t.Fatalf("the swept event's claim was not renewed during the %s drain: another relay's sweeper can claim and send it meanwhile", 3*time.Second)
	}
}
