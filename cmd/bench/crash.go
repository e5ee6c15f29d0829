package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ddboutbox/ddboutbox/dynamo"
	"github.com/ddboutbox/ddboutbox/outbox"
)

// crashChildCmd is the bench's hidden subcommand that makes bookings in a
// process of its own, so that the crash scenario can SIGKILL it.
const crashChildCmd = "crash-child"

// CrashResult is one mode killed with SIGKILL half way through its
// bookings.
type CrashResult struct {
	Mode string `json:"mode"`
	// Committed are the bookings whose commit the child acknowledged
	// before it was killed.
	Committed int `json:"committed"`
	Arrived   int `json:"arrived"`
	// Lost are committed events that never reached the endpoint: for
	// outbox after the relay was restarted and given -drain-timeout.
	Lost       int    `json:"lost"`
	Duplicates int    `json:"duplicates"`
	Killed     string `json:"killed"`
}

// crash kills memory-queue and outbox with SIGKILL half way through
// CrashBookings bookings and counts what the endpoint never got.
func (e *env) crash(ctx context.Context) ([]CrashResult, error) {
	var out []CrashResult
	for _, mode := range []string{ModeMemoryQueue, ModeOutbox} {
		res, err := e.crashOne(ctx, mode)
		if err != nil {
			return out, fmt.Errorf("%s: %w", mode, err)
		}
		out = append(out, res)
		fmt.Fprintf(e.cfg.Log, "bench: crash %s: %d committed before SIGKILL (%s), %d arrived, %d lost, %d duplicates\n",
			mode, res.Committed, res.Killed, res.Arrived, res.Lost, res.Duplicates)
	}
	return out, nil
}

func (e *env) crashOne(ctx context.Context, mode string) (CrashResult, error) {
	res := CrashResult{Mode: mode, Killed: "booking process"}
	r, err := e.newRelayRun(ctx, false)
	if err != nil {
		return res, err
	}
	defer r.close()
	st, sk := r.st, r.sk
	if mode == ModeOutbox {
		res.Killed = "booking process and relay"
		if r.rp, err = e.startRelay(ctx, st, sk.url); err != nil {
			return res, err
		}
	}
	rp := r.rp
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	child := exec.CommandContext(ctx, self, crashChildCmd,
		"-mode", mode, "-dynamodb-endpoint", st.endpoint,
		"-bookings-table", st.tables.Bookings, "-outbox-table", st.tables.Outbox,
		"-sink-url", sk.url, "-concurrency", strconv.Itoa(e.cfg.Concurrency),
		"-bookings", strconv.Itoa(e.cfg.CrashBookings))
	child.Stderr = &prefixWriter{prefix: "crash-child: "}
	stdout, err := child.StdoutPipe()
	if err != nil {
		return res, err
	}
	if err := child.Start(); err != nil {
		return res, fmt.Errorf("start %s: %w", crashChildCmd, err)
	}
	commits := map[string]time.Time{}
	sc := bufio.NewScanner(stdout)
	killAt := e.cfg.CrashBookings / 2
	for sc.Scan() {
		key, nanos, ok := strings.Cut(sc.Text(), " ")
		ns, err := strconv.ParseInt(nanos, 10, 64)
		if !ok || err != nil {
			continue
		}
		commits[key] = time.Unix(0, ns)
		if len(commits) == killAt {
			_ = child.Process.Signal(syscall.SIGKILL)
			if rp != nil {
				rp.kill()
			}
		}
	}
	_ = child.Wait()
	res.Committed = len(commits)
	if len(commits) < killAt {
		return res, fmt.Errorf("the child committed %d bookings, fewer than the %d it was to be killed at", len(commits), killAt)
	}
	if rp != nil {
		// The relay comes back, as a supervisor would bring it back.
		if r.rp, err = e.startRelay(ctx, st, sk.url); err != nil {
			return res, err
		}
		sk.waitForAll(ctx, commits, time.Duration(e.cfg.DrainTimeout))
	} else {
		// Nothing can deliver what the dead process held; wait out one
		// flush period for anything already on the wire.
		_ = sleep(ctx, memoryQueueFlush+time.Duration(e.cfg.SinkLatency)+time.Second)
	}
	res.Lost = sk.missing(commits)
	res.Arrived = res.Committed - res.Lost
	res.Duplicates = sk.srv.Stats().Duplicates
	return res, ctx.Err()
}

// crashChild is the child side: bookings of one mode, printing
// "<event_id> <unix nanos>" for every acknowledged commit, until done or
// killed.
func crashChild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(crashChildCmd, flag.ContinueOnError)
	mode := fs.String("mode", ModeOutbox, "memory-queue or outbox")
	endpoint := fs.String("dynamodb-endpoint", "", "DynamoDB endpoint")
	bookings := fs.String("bookings-table", "", "bookings table")
	outboxTable := fs.String("outbox-table", "", "outbox table")
	sinkURL := fs.String("sink-url", "", "analytics endpoint (memory-queue)")
	concurrency := fs.Int("concurrency", 16, "workers")
	count := fs.Int("bookings", 1000, "bookings")
	if err := fs.Parse(args); err != nil {
		return err
	}
	clients, err := dynamo.NewClients(ctx, dynamo.Config{Endpoint: *endpoint})
	if err != nil {
		return err
	}
	db := &countingDB{db: clients.DB}
	var op bookingOp
	switch *mode {
	case ModeMemoryQueue:
		hc := &http.Client{Timeout: 30 * time.Second}
		q := startMemQueue(hc, *sinkURL)
		defer q.close()
		op = memoryQueueOp(db, *bookings, q)
	case ModeOutbox:
		op = outboxOp(&outbox.Writer{DB: db, Table: *outboxTable}, *bookings)
	default:
		return fmt.Errorf("crash-child: unknown mode %q", *mode)
	}
	var mu sync.Mutex
	acked := func(op bookingOp) bookingOp {
		return func(ctx context.Context, i int) (commit, error) {
			c, err := op(ctx, i)
			if err == nil && c.key != "" {
				mu.Lock()
				fmt.Fprintf(os.Stdout, "%s %d\n", c.key, c.committedAt.UnixNano())
				mu.Unlock()
			}
			return c, err
		}
	}
	var n loadCounters
	lo := runLoad(ctx, acked(op), loadSpec{workers: *concurrency, count: *count}, &n)
	if lo.firstErr != nil {
		return lo.firstErr
	}
	return nil
}
