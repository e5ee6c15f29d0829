package main

import (
	"bytes"
	"context"
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

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ddboutbox/ddboutbox/dynamo"
)

// buildCmd builds ./cmd/<name> into dir and returns the binary's path.
func buildCmd(ctx context.Context, dir, name string) (string, error) {
	bin := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/ddboutbox/ddboutbox/cmd/"+name)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build %s (run from the module, or pass -relay-bin): %w", name, err)
	}
	return bin, nil
}

// proc is one of our binaries running as a separate process, serving
// /readyz and /metrics on addr.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr string
	done chan struct{}
	err  error
}

// relayProc is the relay process.
type relayProc = proc

// relaySettings is what the bench passes to the relay.
type relaySettings struct {
	bin, ddbEndpoint, sinkURL, owner string
	tables                           dynamo.Tables
	batchSize, inFlight, markBatch   int
	batchWindow                      time.Duration
}

// startRelay execs the relay and waits until it is ready.
func startRelay(ctx context.Context, s relaySettings) (*relayProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	return startProc(ctx, "relay", s.bin, addr,
		"-dynamodb-endpoint", s.ddbEndpoint,
		"-outbox-table", s.tables.Outbox,
		"-bookings-table", s.tables.Bookings,
		"-state-table", s.tables.State,
		"-sink-url", s.sinkURL,
		"-sink-profile", "generic",
		"-batch-size", strconv.Itoa(s.batchSize),
		"-batch-window", s.batchWindow.String(),
		"-batches-in-flight", strconv.Itoa(s.inFlight),
		"-mark-batch-size", strconv.Itoa(s.markBatch),
		"-metrics-addr", addr,
		"-owner", s.owner,
		"-start-position", "trim_horizon",
		"-log-level", "warn",
	)
}

// bookingProc is cmd/booking; url is its base URL.
type bookingProc struct {
	*proc
	url string
}

// startBooking execs cmd/booking on st's tables, talking to DynamoDB at
// dynamoEndpoint, and waits until it is ready.
func startBooking(ctx context.Context, bin string, st *stack, dynamoEndpoint string) (*bookingProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p, err := startProc(ctx, "booking", bin, addr,
		"-addr", addr,
		"-dynamodb-endpoint", dynamoEndpoint,
		"-outbox-table", st.tables.Outbox,
		"-bookings-table", st.tables.Bookings,
		"-log-level", "warn",
	)
	if err != nil {
		return nil, err
	}
	return &bookingProc{proc: p, url: "http://" + addr}, nil
}

// startProc execs bin and waits until http://addr/readyz answers 200, at
// most 30 s.
func startProc(ctx context.Context, name, bin, addr string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	out := &prefixWriter{prefix: name + ": "}
	cmd.Stdout, cmd.Stderr = out, out
	// Give the child its own process group, so that a Ctrl-C on the bench
	// does not reach it before the bench stops it with SIGTERM.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %s: %w", name, bin, err)
	}
	p := &proc{name: name, cmd: cmd, addr: addr, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited before it was ready: %v", name, p.err)
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
			return nil, fmt.Errorf("%s not ready within 30s", name)
		}
	}
}

// stop sends SIGTERM and waits up to grace for a clean exit (the relay
// flushes, marks and checkpoints what it holds), then kills it.
func (p *proc) stop(grace time.Duration) error {
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
		return fmt.Errorf("%s did not stop within %s after SIGTERM; killed", p.name, grace)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// metrics scrapes the relay's counters (names without the
// ddboutbox_relay_ prefix, labels folded into the name).
func (p *proc) metrics(ctx context.Context) (map[string]float64, error) {
	code, body := httpGet(ctx, "http://"+p.addr+"/metrics")
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s /metrics answered %d", p.name, code)
	}
	return parseCounters(body, "ddboutbox_relay_")
}

// parseCounters reads the counters and gauges of a Prometheus text
// exposition whose names start with prefix: the prefix dropped, labels
// folded into the name as the exposition writes them (histograms and
// summaries skipped).
func parseCounters(body, prefix string) (map[string]float64, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		short, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		for _, m := range f.GetMetric() {
			var v float64
			switch {
			case m.Counter != nil:
				v = m.GetCounter().GetValue()
			case m.Gauge != nil:
				v = m.GetGauge().GetValue()
			default:
				continue
			}
			key := short
			if labels := m.GetLabel(); len(labels) > 0 {
				pairs := make([]string, len(labels))
				for i, l := range labels {
					pairs[i] = fmt.Sprintf("%s=%q", l.GetName(), l.GetValue())
				}
				key += "{" + strings.Join(pairs, ",") + "}"
			}
			out[key] = v
		}
	}
	return out, nil
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

// procUsage is what the kernel says of a process: CPU time used so far
// and peak resident set (VmHWM).
type procUsage struct {
	CPUSeconds float64 `json:"cpu_s"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
}

// usage reads the process's CPU time and peak RSS from /proc (Linux
// only).
func (p *proc) usage() (procUsage, error) {
	return readProcUsage(p.cmd.Process.Pid)
}

func readProcUsage(pid int) (procUsage, error) {
	var u procUsage
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: utime and stime are the 12th and 13th of them, in clock ticks.
	rest := string(stat)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return u, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	const ticks = 100 // USER_HZ, 100 on every Linux the bench runs on
	u.CPUSeconds = (utime + stime) / ticks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			u.PeakRSSMiB = kb / 1024
		}
	}
	return u, nil
}
