package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// shardLog is a StreamsAPI over one open shard whose records are seqs.
// An iterator is "it-<index of the next record>"; LATEST is the end of
// the log when the iterator is taken.
type shardLog struct {
	mu         sync.Mutex
	seqs       []string
	iterTypes  []streamtypes.ShardIteratorType
	reads      int
	failIter   func(call int) error
	failRecord func(l *shardLog, call int) error // may append to seqs: records written meanwhile
}

func (*shardLog) DescribeStream(context.Context, *dynamodbstreams.DescribeStreamInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error) {
	return nil, errors.New("not faked")
}

func (l *shardLog) GetShardIterator(_ context.Context, in *dynamodbstreams.GetShardIteratorInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.iterTypes = append(l.iterTypes, in.ShardIteratorType)
	if l.failIter != nil {
		if err := l.failIter(len(l.iterTypes)); err != nil {
			return nil, err
		}
	}
	pos := 0
	switch in.ShardIteratorType {
	case streamtypes.ShardIteratorTypeLatest:
		pos = len(l.seqs)
	case streamtypes.ShardIteratorTypeAfterSequenceNumber:
		pos = slices.Index(l.seqs, aws.ToString(in.SequenceNumber)) + 1
	}
	return &dynamodbstreams.GetShardIteratorOutput{ShardIterator: aws.String(fmt.Sprintf("it-%d", pos))}, nil
}

func (l *shardLog) GetRecords(_ context.Context, in *dynamodbstreams.GetRecordsInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	if l.failRecord != nil {
		if err := l.failRecord(l, l.reads); err != nil {
			return nil, err
		}
	}
	pos, err := strconv.Atoi(strings.TrimPrefix(aws.ToString(in.ShardIterator), "it-"))
	if err != nil {
		return nil, fmt.Errorf("bad iterator %q", aws.ToString(in.ShardIterator))
	}
	var recs []streamtypes.Record
	for _, s := range l.seqs[pos:] {
		recs = append(recs, streamtypes.Record{EventName: streamtypes.OperationTypeModify, Dynamodb: &streamtypes.StreamRecord{SequenceNumber: aws.String(s)}})
	}
	return &dynamodbstreams.GetRecordsOutput{Records: recs, NextShardIterator: aws.String(fmt.Sprintf("it-%d", len(l.seqs)))}, nil
}

// apiError is an AWS API error as the SDK's smithy.APIError shows it.
type apiError struct{ code string }

func (e apiError) Error() string     { return e.code }
func (e apiError) ErrorCode() string { return e.code }

func readerRelay(t *testing.T, streams StreamsAPI, retryBase, retryMax time.Duration) *Relay {
	t.Helper()
	r, err := New(Config{
		SinkURL: "http://127.0.0.1:1/rows", PollInterval: time.Millisecond,
		RetryBase: retryBase, RetryMax: retryMax, Logger: quietLogger(),
	}, newStateDB(), streams, acceptSink{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A failed GetRecords is retried with the same iterator, so a reader keeps
// its place; only an expired or refused iterator, or a failed
// GetShardIterator, makes it take a new one.
func TestReadShardKeepsItsPosition(t *testing.T) {
	transient := errors.New("connection reset by peer")
	const (
		latest = streamtypes.ShardIteratorTypeLatest
		trim   = streamtypes.ShardIteratorTypeTrimHorizon
		after  = streamtypes.ShardIteratorTypeAfterSequenceNumber
	)
	tests := []struct {
		name       string
		checkpoint string
		latest     bool
		seqs       []string
		failIter   func(call int) error
		failRecord func(l *shardLog, call int) error
		want       []string
		wantIters  []streamtypes.ShardIteratorType
	}{
		{
			name: "LATEST start, transient error while records are written", latest: true,
			failRecord: func(l *shardLog, call int) error {
				if call == 1 {
					l.seqs = append(l.seqs, "1", "2")
					return transient
				}
				return nil
			},
			want: []string{"1", "2"}, wantIters: []streamtypes.ShardIteratorType{latest},
		},
		{
			name: "throttled twice after a checkpoint", checkpoint: "1", seqs: []string{"1", "2", "3"},
			failRecord: func(_ *shardLog, call int) error {
				if call <= 2 {
					return apiError{"LimitExceededException"}
				}
				return nil
			},
			want: []string{"2", "3"}, wantIters: []streamtypes.ShardIteratorType{after},
		},
		{
			name: "GetShardIterator fails once", seqs: []string{"1", "2"},
			failIter: func(call int) error {
				if call == 1 {
					return transient
				}
				return nil
			},
			want: []string{"1", "2"}, wantIters: []streamtypes.ShardIteratorType{trim, trim},
		},
		{
			name: "expired iterator re-positions after the last record", seqs: []string{"1", "2"},
			failRecord: func(l *shardLog, call int) error {
				if call == 2 {
					l.seqs = append(l.seqs, "3")
					return &streamtypes.ExpiredIteratorException{Message: aws.String("expired")}
				}
				return nil
			},
			want: []string{"1", "2", "3"}, wantIters: []streamtypes.ShardIteratorType{trim, after},
		},
		{
			name: "refused iterator re-positions", checkpoint: "1", seqs: []string{"1", "2"},
			failRecord: func(_ *shardLog, call int) error {
				if call == 1 {
					return apiError{"ValidationException"}
				}
				return nil
			},
			want: []string{"2"}, wantIters: []streamtypes.ShardIteratorType{after, after},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &shardLog{seqs: tt.seqs, failIter: tt.failIter, failRecord: tt.failRecord}
			r := readerRelay(t, l, time.Millisecond, 2*time.Millisecond)
			ctx, cancel := context.WithCancel(t.Context())
			out := make(chan record, 16)
			done := make(chan struct{})
			go func() {
				defer close(done)
				r.readShard(ctx, "arn", &shardWork{id: "s"}, tt.checkpoint, tt.latest, out)
			}()
			var got []string
			timeout := time.After(2 * time.Second)
			for len(got) < len(tt.want) {
				select {
				case rec := <-out:
					got = append(got, rec.seq)
				case <-timeout:
					t.Fatalf("read %v, want %v", got, tt.want)
				}
			}
			// Polls past the end must not add records or iterators.
			time.Sleep(20 * time.Millisecond)
			cancel()
			<-done
			for len(out) > 0 {
				got = append(got, (<-out).seq)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("read %v, want %v", got, tt.want)
			}
			if l.mu.Lock(); !slices.Equal(l.iterTypes, tt.wantIters) {
				t.Errorf("iterators taken %v, want %v", l.iterTypes, tt.wantIters)
			}
			l.mu.Unlock()
		})
	}
}

// A service that keeps answering "expired" must not make the reader spin:
// re-positioning backs off after the first repeat.
func TestReadShardBacksOffWhileIteratorsExpire(t *testing.T) {
	l := &shardLog{failRecord: func(*shardLog, int) error {
		return &streamtypes.ExpiredIteratorException{Message: aws.String("expired")}
	}}
	r := readerRelay(t, l, 10*time.Millisecond, 40*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	r.readShard(ctx, "arn", &shardWork{id: "s"}, "", false, make(chan record))
	l.mu.Lock()
	defer l.mu.Unlock()
	// Backing off 0-40ms each time allows some 15 in 300ms; a hot loop
	// takes thousands.
	if n := len(l.iterTypes); n < 2 || n > 60 {
		t.Fatalf("%d iterators taken in 300ms of expiries, want 2-60", n)
	}
}

// iterator_age_seconds has a series per shard while it is read, and none
// once its reader has ended.
func TestIteratorAgeSeriesEndsWithTheReader(t *testing.T) {
	var whileReading int
	var r *Relay
	log := &shardLog{seqs: []string{"1", "2"}, failRecord: func(_ *shardLog, call int) error {
		if call < 2 {
			return nil
		}
		whileReading = testutil.CollectAndCount(r.m.iteratorAge)
		return &streamtypes.ResourceNotFoundException{Message: aws.String("shard gone")}
	}}
	r = readerRelay(t, log, time.Millisecond, 2*time.Millisecond)
	out := make(chan record, 4)
	r.readShard(t.Context(), "arn", &shardWork{id: "shard-1"}, "", false, out)
	if whileReading != 1 {
		t.Fatalf("%d iterator_age series while the shard was read, want 1", whileReading)
	}
	if n := testutil.CollectAndCount(r.m.iteratorAge); n != 0 {
		t.Fatalf("%d iterator_age series after the reader ended, want 0", n)
	}
}
