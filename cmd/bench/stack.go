package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/uuid"
	"github.com/testcontainers/testcontainers-go"
	tcdynamodb "github.com/testcontainers/testcontainers-go/modules/dynamodb"

	"github.com/ddboutbox/ddboutbox/dynamo"
)

// stack is one measured run's DynamoDB: a fresh DynamoDB Local container
// (or the shared -dynamodb-endpoint), warmed up, with its own tables and,
// for runs with a relay, the counting proxy the relay talks through.
//
// Every run gets a fresh container because DynamoDB Local slows down as
// stream records pile up: after one table's stream holds ~100,000 records,
// writes to another stream-enabled table drop from thousands to ~40 items/s
// (measured with 3.3.x, in memory and on disk alike; tables without a
// stream are unaffected, and deleting the old tables does not help). A
// shared instance would make each figure depend on what ran before it.
// The cause (JFR profile of 3.3.1): every write to a stream-enabled table
// runs SELECT MIN(SequenceNumber) FROM us WHERE StreamID = ?, and us holds
// every stream's records, indexed by sequence number only; a stream
// created after others' records scans past all of them on each write.
type stack struct {
	endpoint string
	clients  *dynamo.Clients
	db       *countingDB
	tables   dynamo.Tables
	proxy    *ddbProxy
	shared   bool
	stop     func()
	// emulatorPID is DynamoDB Local's process as this host sees it (0 when
	// unknown: a shared endpoint, or an engine whose processes the host
	// cannot see), for its CPU time.
	emulatorPID int
}

// newStack starts a run's DynamoDB Local and creates its tables. With
// proxy, the relay's requests are counted.
func (e *env) newStack(ctx context.Context, proxy bool) (*stack, error) {
	s := &stack{endpoint: e.cfg.Endpoint, shared: e.cfg.Endpoint != "", stop: func() {}}
	if !s.shared {
		c, err := tcdynamodb.Run(ctx, e.image, testcontainers.WithCmdArgs("-inMemory", "-sharedDb"))
		if c != nil {
			s.stop = func() { _ = testcontainers.TerminateContainer(c) }
		}
		if err != nil {
			s.stop()
			return nil, fmt.Errorf("start DynamoDB Local container %s: %w", e.image, err)
		}
		hostPort, err := c.ConnectionString(ctx)
		if err != nil {
			s.stop()
			return nil, fmt.Errorf("container endpoint: %w", err)
		}
		s.endpoint = "http://" + hostPort
		if state, err := c.State(ctx); err == nil {
			if _, err := readProcUsage(state.Pid); err == nil {
				s.emulatorPID = state.Pid
			}
		}
	}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	var err error
	if s.clients, err = dynamo.NewClients(ctx, dynamo.Config{Endpoint: s.endpoint}); err != nil {
		return nil, err
	}
	s.db = &countingDB{db: s.clients.DB}
	prefix := "bench-" + uuid.NewString()[:8] + "-"
	s.tables = dynamo.Tables{Outbox: prefix + "Outbox", Bookings: prefix + "Bookings", State: prefix + "State"}
	if !s.shared {
		if err := warmUp(ctx, s.clients.DB, prefix+"Warmup", e.cfg.WarmUp); err != nil {
			return nil, fmt.Errorf("warm up DynamoDB Local: %w", err)
		}
	}
	if err := dynamo.EnsureTables(ctx, s.clients.DB, s.tables); err != nil {
		return nil, err
	}
	if proxy {
		if s.proxy, err = startProxy(s.endpoint); err != nil {
			return nil, err
		}
	}
	ok = true
	return s, nil
}

// close stops the proxy and the container; on a shared endpoint it deletes
// the run's tables instead.
func (s *stack) close() {
	if s.proxy != nil {
		s.proxy.close()
	}
	if s.shared && s.clients != nil && s.tables.Outbox != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, t := range []string{s.tables.Outbox, s.tables.Bookings, s.tables.State} {
			_, _ = s.clients.DB.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(t)})
		}
	}
	s.stop()
}

// emulatorCPU is the CPU time DynamoDB Local has used so far, in seconds;
// ok is false when it cannot be read.
func (s *stack) emulatorCPU() (seconds float64, ok bool) {
	if s.emulatorPID == 0 {
		return 0, false
	}
	u, err := readProcUsage(s.emulatorPID)
	return u.CPUSeconds, err == nil
}

// relayEndpoint is where the relay process reaches DynamoDB: through the
// counting proxy when there is one.
func (s *stack) relayEndpoint() string {
	if s.proxy != nil {
		return s.proxy.url
	}
	return s.endpoint
}

// warmUp runs n two-item transactions against a table without a stream
// (so that it leaves no stream records behind), then deletes it: a fresh
// DynamoDB Local's JVM runs its first seconds at about half speed.
func warmUp(ctx context.Context, db *dynamodb.Client, table string, n int) error {
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("k"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("k"), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		return err
	}
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		first error
		once  sync.Once
	)
	for range 8 {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n) && ctx.Err() == nil; i = next.Add(1) {
				item := func(suffix string) *types.Put {
					return &types.Put{TableName: aws.String(table), Item: map[string]types.AttributeValue{
						"k": &types.AttributeValueMemberS{Value: strconv.FormatInt(i, 10) + suffix},
						"v": &types.AttributeValueMemberS{Value: "warm-up"},
					}}
				}
				_, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
					{Put: item("a")}, {Put: item("b")},
				}})
				if err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	_, derr := db.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	if first != nil {
		return first
	}
	return derr
}

// imageName is the DynamoDB Local image the bench starts.
func imageName() string {
	if v := os.Getenv("DYNAMODB_LOCAL_IMAGE"); v != "" {
		return v
	}
	return defaultImage
}

// proxySnapshot returns the relay's requests counted since the last call,
// its write requests by operation and table, and the items they wrote
// (nil, nil, 0 without a proxy).
func (s *stack) proxySnapshot() (byOp, writes map[string]int, items int) {
	if s.proxy == nil {
		return nil, nil, 0
	}
	return s.proxy.snapshot()
}
