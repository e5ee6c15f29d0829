// Command bench compares ddboutbox with the usual ways of telling an
// analytics endpoint about a booking: put-only (no analytics), txn-floor
// (a raw two-item TransactWriteItems), sync-dual-write (POST inside the
// request), memory-queue (in-process queue flushed every 2 s), outbox
// (outbox.Writer plus the relay as a separate process) and booking-http
// (cmd/booking as a separate process, the relay delivering). It runs the modes
// in several rounds in rotating order against DynamoDB Local (a container,
// or -dynamodb-endpoint) and a local endpoint with a configurable latency,
// and prints the median of each figure with its range.
//
//	DYNAMODB_ENDPOINT=http://127.0.0.1:8000 go run ./cmd/bench -bookings 300 -concurrency 8 -rounds 1
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ddboutbox/ddboutbox/cmd/internal/cli"
	"github.com/ddboutbox/ddboutbox/dynamo"
	"github.com/ddboutbox/ddboutbox/relay"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == crashChildCmd {
		cli.Main("bench "+crashChildCmd, func(ctx context.Context) error { return crashChild(ctx, os.Args[2:]) })
		return
	}
	var (
		cfg                                                     Config
		modes, scenarios, sweepSizes, sweepWindows              string
		stepDuration, sweepDuration, modeWarmUp, saturationHold time.Duration
		out                                                     string
		sinkLatency, batchWindow, drainTimeout, modeTimeout     time.Duration
	)
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&cfg.Bookings, "bookings", 2000, "bookings per mode per round")
	fs.IntVar(&cfg.Concurrency, "concurrency", 4, "bookings in flight (closed-loop workers), the same for every mode; the default keeps DynamoDB Local near, not above, its saturation on a 2-core machine, so that latency is mostly the request path's, not queueing (the saturation scenario ramps it)")
	fs.IntVar(&cfg.Rounds, "rounds", 3, "rounds; the mode order rotates by one each round and medians are reported")
	fs.StringVar(&modes, "modes", strings.Join(AllModes, ","), "comma-separated modes: "+strings.Join(AllModes, ", "))
	fs.DurationVar(&sinkLatency, "sink-latency", 250*time.Millisecond, "latency of the local analytics endpoint's answer to each POST")
	fs.IntVar(&cfg.BatchSize, "batch-size", relay.DefaultBatchSize, "the relay's -batch-size (outbox mode)")
	fs.DurationVar(&batchWindow, "batch-window", relay.DefaultBatchWindow, "the relay's -batch-window (outbox mode)")
	fs.IntVar(&cfg.BatchesInFlight, "batches-in-flight", relay.DefaultBatchesInFlight, "the relay's -batches-in-flight")
	fs.IntVar(&cfg.MarkBatchSize, "mark-batch-size", relay.DefaultMarkBatchSize, "the relay's -mark-batch-size")
	fs.StringVar(&scenarios, "scenarios", strings.Join(AllScenarios, ","), "relay capacity scenarios run after the modes, comma-separated: "+strings.Join(AllScenarios, ", ")+"; empty runs none")
	fs.DurationVar(&stepDuration, "saturation-step", 10*time.Second, "saturation: how long each concurrency step runs (and the half-saturation run)")
	fs.IntVar(&cfg.MaxConcurrency, "saturation-max-concurrency", 128, "saturation: the highest concurrency step (steps double from 1)")
	fs.DurationVar(&saturationHold, "saturation-hold", time.Minute, "saturation: how long the saturated concurrency runs again after the ramp; its rates, backlog growth and requests per event are what the targets judge")
	fs.IntVar(&cfg.DrainEvents, "drain-events", 100_000, "drain: events written with the relay stopped")
	fs.StringVar(&sweepSizes, "sweep-batch-sizes", "1,10,100,500,1000", "sweep: relay batch sizes")
	fs.StringVar(&sweepWindows, "sweep-windows", "0,100ms,1s", "sweep: relay batch windows (0 = no linger)")
	fs.Float64Var(&cfg.SweepRate, "sweep-rate", 50, "sweep: bookings per second offered (open loop)")
	fs.DurationVar(&sweepDuration, "sweep-duration", 10*time.Second, "sweep: how long each point offers bookings")
	fs.IntVar(&cfg.WarmUp, "warm-up", 1000, "two-item transactions, on a table without a stream, that warm each fresh DynamoDB Local container up")
	fs.DurationVar(&modeWarmUp, "mode-warm-up", 5*time.Second, "how long each mode runs unmeasured on its fresh container before it is measured (0 = no warm-up)")
	check := fs.Bool("check", false, "exit 1 if an event delivered by the relay was lost or a booking failed (the CI smoke); targets are reported, never enforced")
	fs.IntVar(&cfg.CrashBookings, "crash-bookings", 5000, "crash: bookings a run aims for; SIGKILL half way")
	fs.DurationVar(&drainTimeout, "drain-timeout", 30*time.Second, "after the last booking, how long to wait for every committed event at the endpoint before counting the rest lost")
	fs.DurationVar(&modeTimeout, "mode-timeout", 10*time.Minute, "bound on one mode's run (bookings, drain and relay stop)")
	fs.StringVar(&out, "out", "", "write the JSON report here, e.g. cmd/bench/results/latest.json (empty = print only)")
	fs.StringVar(&cfg.Endpoint, "dynamodb-endpoint", "", "DynamoDB Local endpoint, e.g. http://127.0.0.1:8000; empty starts a container (image DYNAMODB_LOCAL_IMAGE, default "+defaultImage+")")
	fs.StringVar(&cfg.RelayBin, "relay-bin", "", "relay binary for the outbox mode (empty = go build ./cmd/relay into a temp dir)")
	fs.BoolVar(&cfg.KeepTables, "keep-tables", false, "leave the run's tables in DynamoDB")
	fs.DurationVar(&cfg.Progress, "progress", 2*time.Second, "print a progress line this often (0 = off)")
	cli.Main("bench", func(ctx context.Context) error {
		if err := cli.Parse(fs, os.Args[1:]); err != nil {
			return err
		}
		cfg.SinkLatency, cfg.BatchWindow = Duration(sinkLatency), Duration(batchWindow)
		cfg.DrainTimeout, cfg.ModeTimeout = Duration(drainTimeout), Duration(modeTimeout)
		cfg.StepDuration, cfg.SweepDuration = Duration(stepDuration), Duration(sweepDuration)
		cfg.ModeWarmUp, cfg.SaturationHold = Duration(modeWarmUp), Duration(saturationHold)
		cfg.Log = os.Stderr
		var err error
		if cfg.Modes, err = parseList(modes, AllModes); err != nil {
			return cli.Usage(fmt.Errorf("-modes: %w", err))
		}
		if cfg.Scenarios, err = parseList(scenarios, AllScenarios); err != nil {
			return cli.Usage(fmt.Errorf("-scenarios: %w", err))
		}
		if cfg.SweepBatchSizes, err = parseInts(sweepSizes); err != nil {
			return cli.Usage(fmt.Errorf("-sweep-batch-sizes: %w", err))
		}
		if cfg.SweepWindows, err = parseDurations(sweepWindows); err != nil {
			return cli.Usage(fmt.Errorf("-sweep-windows: %w", err))
		}
		if err := validate(cfg); err != nil {
			return cli.Usage(err)
		}
		rep, err := Run(ctx, cfg)
		if rep != nil {
			if err != nil {
				// Interrupted or failed: report what ran.
				rep.summarize()
				rep.evaluate()
			}
			rep.Print(os.Stdout)
			if out != "" {
				if werr := rep.WriteJSON(out); werr != nil {
					return fmt.Errorf("write %s: %w", out, werr)
				}
				fmt.Fprintf(os.Stderr, "bench: wrote %s\n", out)
			}
		}
		if err == nil && *check {
			if problems := rep.problems(); len(problems) > 0 {
				return fmt.Errorf("check failed:\n  %s", strings.Join(problems, "\n  "))
			}
			fmt.Fprintln(os.Stderr, "bench: check passed: no booking errors, no relay-delivered event lost")
		}
		return err
	})
}

// parseList reads a comma-separated subset of known, in the given order,
// without repeats. An empty list is allowed.
func parseList(s string, known []string) ([]string, error) {
	var out []string
	for _, v := range splitList(s) {
		if !slices.Contains(known, v) {
			return nil, fmt.Errorf("unknown %q; choose from %s", v, strings.Join(known, ", "))
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func validate(c Config) error {
	if err := (dynamo.Config{Endpoint: c.Endpoint}).Validate(); err != nil {
		return fmt.Errorf("-dynamodb-endpoint: %w", err)
	}
	switch {
	case c.Bookings < 1:
		return fmt.Errorf("-bookings %d must be at least 1", c.Bookings)
	case c.Concurrency < 1 || c.Concurrency > 1024:
		return fmt.Errorf("-concurrency %d must be between 1 and 1024", c.Concurrency)
	case c.Rounds < 1 || c.Rounds > 100:
		return fmt.Errorf("-rounds %d must be between 1 and 100", c.Rounds)
	case c.SinkLatency < 0:
		return fmt.Errorf("-sink-latency must not be negative")
	case c.BatchSize < 1 || c.BatchSize > 10_000:
		return fmt.Errorf("-batch-size %d must be between 1 and 10000", c.BatchSize)
	case c.BatchWindow <= 0, c.DrainTimeout <= 0, c.ModeTimeout <= 0, c.StepDuration <= 0, c.SaturationHold <= 0, c.SweepDuration <= 0:
		return fmt.Errorf("-batch-window, -drain-timeout, -mode-timeout, -saturation-step, -saturation-hold and -sweep-duration must be positive")
	case c.BatchesInFlight < 1 || c.BatchesInFlight > 64:
		return fmt.Errorf("-batches-in-flight %d must be between 1 and 64", c.BatchesInFlight)
	case c.MarkBatchSize < 1 || c.MarkBatchSize > relay.MaxMarkBatchSize:
		return fmt.Errorf("-mark-batch-size %d must be between 1 and %d", c.MarkBatchSize, relay.MaxMarkBatchSize)
	case c.MaxConcurrency < 1 || c.MaxConcurrency > 1024:
		return fmt.Errorf("-saturation-max-concurrency %d must be between 1 and 1024", c.MaxConcurrency)
	case c.WarmUp < 0, c.ModeWarmUp < 0:
		return fmt.Errorf("-warm-up and -mode-warm-up must not be negative")
	case c.DrainEvents < 1, c.CrashBookings < 2:
		return fmt.Errorf("-drain-events must be at least 1 and -crash-bookings at least 2")
	case c.SweepRate <= 0 || c.SweepRate > 10_000:
		return fmt.Errorf("-sweep-rate %g must be above 0 and at most 10000", c.SweepRate)
	case len(c.Modes) == 0 && len(c.Scenarios) == 0:
		return fmt.Errorf("-modes and -scenarios name nothing to run")
	}
	return nil
}
