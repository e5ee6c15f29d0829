package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ddboutbox/ddboutbox/dynamo"
)

// buildRelay builds ./cmd/relay into dir and returns the binary's path.
func buildRelay(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "relay")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/ddboutbox/ddboutbox/cmd/relay")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build relay (run from the module, or pass -relay-bin): %w", err)
	}
	return bin, nil
}

// relayProc is the relay binary running as a separate process.
type relayProc struct {
	cmd         *exec.Cmd
	metricsAddr string
	done        chan struct{}
	err         error
}

// relaySettings is what the bench passes to the relay.
type relaySettings struct {
	bin, ddbEndpoint, sinkURL, owner string
	tables                           dynamo.Tables
	batchSize                        int
	batchWindow                      time.Duration
}

// startRelay execs the relay and waits until its /readyz answers 200
// (stream found, DynamoDB answering), at most 30 s.
func startRelay(ctx context.Context, s relaySettings) (*relayProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{
		"-dynamodb-endpoint", s.ddbEndpoint,
		"-outbox-table", s.tables.Outbox,
		"-bookings-table", s.tables.Bookings,
		"-state-table", s.tables.State,
		"-sink-url", s.sinkURL,
		"-sink-profile", "generic",
		"-batch-size", strconv.Itoa(s.batchSize),
		"-batch-window", s.batchWindow.String(),
		"-metrics-addr", addr,
		"-owner", s.owner,
		"-start-position", "trim_horizon",
		"-log-level", "warn",
	}
	cmd := exec.Command(s.bin, args...)
	out := &prefixWriter{prefix: "relay: "}
	cmd.Stdout, cmd.Stderr = out, out
	// Give the relay its own process group, so that a Ctrl-C on the bench
	// does not reach it before the bench stops it with SIGTERM.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start relay %s: %w", s.bin, err)
	}
	p := &relayProc{cmd: cmd, metricsAddr: addr, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			return nil, fmt.Errorf("relay exited before it was ready: %v", p.err)
		case <-ctx.Done():
			p.stop(5 * time.Second)
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if code, _ := httpGet(ctx, "http://"+addr+"/readyz"); code == http.StatusOK {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop(5 * time.Second)
			return nil, errors.New("relay not ready within 30s")
		}
	}
}

// stop sends SIGTERM and waits up to grace for a clean exit (the relay
// flushes, marks and checkpoints what it holds), then kills it.
func (p *relayProc) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("relay did not stop within %s after SIGTERM; killed", grace)
	}
}

// metrics scrapes the relay's counters (names without the
// ddboutbox_relay_ prefix, labels folded into the name).
func (p *relayProc) metrics(ctx context.Context) (map[string]float64, error) {
	code, body := httpGet(ctx, "http://"+p.metricsAddr+"/metrics")
	if code != http.StatusOK {
		return nil, fmt.Errorf("relay /metrics answered %d", code)
	}
	return parseCounters(body, "ddboutbox_relay_"), nil
}

// parseCounters reads the Prometheus text format lines of metrics whose
// name starts with prefix, skipping histogram series.
func parseCounters(body, prefix string) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name := strings.TrimPrefix(line[:i], prefix)
		if strings.Contains(name, "_bucket") || strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_count") {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[name] = v
	}
	return out
}

func httpGet(ctx context.Context, url string) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, ""
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(b)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// prefixWriter copies a child's output to stderr, one prefixed line at a
// time.
type prefixWriter struct {
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(os.Stderr, "%s%s\n", w.prefix, w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 { // a runaway line: print what we have
		fmt.Fprintf(os.Stderr, "%s%s\n", w.prefix, w.buf)
		w.buf = w.buf[:0]
	}
	return len(p), nil
}
