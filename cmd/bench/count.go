package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// countingDB wraps the in-process DynamoDB client and counts write calls
// (each call once, whatever the SDK's own retries did) and the items they
// write.
type countingDB struct {
	db              *dynamodb.Client
	requests, items atomic.Int64
}

func (c *countingDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.requests.Add(1)
	c.items.Add(1)
	return c.db.PutItem(ctx, in, optFns...)
}

func (c *countingDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.requests.Add(1)
	c.items.Add(int64(len(in.TransactItems)))
	return c.db.TransactWriteItems(ctx, in, optFns...)
}

func (c *countingDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.requests.Add(1)
	c.items.Add(1)
	return c.db.UpdateItem(ctx, in, optFns...)
}

func (c *countingDB) reset() {
	c.requests.Store(0)
	c.items.Store(0)
}

// writeOps are the DynamoDB operations that write.
var writeOps = map[string]bool{
	"PutItem": true, "UpdateItem": true, "DeleteItem": true,
	"BatchWriteItem": true, "TransactWriteItems": true,
}

// ddbProxy is a reverse proxy in front of DynamoDB Local for the relay
// process: it counts every HTTP request by operation (X-Amz-Target) and,
// for writes, by table. It sees the SDK's retries too, since each attempt
// is one request.
type ddbProxy struct {
	http *http.Server
	url  string

	mu     sync.Mutex
	byOp   map[string]int
	writes map[string]int // "UpdateItem <table>"
	// items counts the items written: one per write request, or the
	// actions of a TransactWriteItems.
	items int
}

func startProxy(target string) (*ddbProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("proxy target %q: %w", target, err)
	}
	p := &ddbProxy{byOp: map[string]int{}, writes: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	// The relay cancels its in-flight calls when it stops; that is not
	// worth a log line. Anything else is.
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		if !errors.Is(err, context.Canceled) {
			fmt.Fprintf(os.Stderr, "bench: DynamoDB proxy: %s: %v\n", r.Header.Get("X-Amz-Target"), err)
		}
		w.WriteHeader(http.StatusBadGateway)
	}
	p.http, p.url, err = serveLoopback(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := r.Header.Get("X-Amz-Target")
		if i := strings.LastIndexByte(op, '.'); i >= 0 {
			op = op[i+1:]
		}
		table := ""
		if writeOps[op] && r.Body != nil {
			body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
			if err != nil {
				http.Error(w, "read body", http.StatusBadGateway)
				return
			}
			var in struct {
				TableName     string
				TransactItems []json.RawMessage
			}
			_ = json.Unmarshal(body, &in)
			table = in.TableName
			p.mu.Lock()
			p.items += max(len(in.TransactItems), 1)
			p.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		p.mu.Lock()
		p.byOp[op]++
		if writeOps[op] {
			p.writes[op+" "+table]++
		}
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	return p, nil
}

// snapshot returns the counts so far and resets them.
func (p *ddbProxy) snapshot() (byOp, writes map[string]int, items int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	byOp, writes, items = p.byOp, p.writes, p.items
	p.byOp, p.writes, p.items = map[string]int{}, map[string]int{}, 0
	return byOp, writes, items
}

func (p *ddbProxy) close() { shutdown(p.http) }
