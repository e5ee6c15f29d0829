// Command bench compares ddboutbox with the usual ways of telling an
// analytics endpoint about a booking: put-only (no analytics), txn-floor
// (a raw two-item TransactWriteItems), sync-dual-write (POST inside the
// request), memory-queue (in-process queue flushed every 2 s) and outbox
// (outbox.Writer plus the relay as a separate process). It runs the modes
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
	"strings"
	"time"

	"github.com/ddboutbox/ddboutbox/cmd/internal/cli"
	"github.com/ddboutbox/ddboutbox/relay"
)

func main() {
	var (
		cfg                                                 Config
		modes                                               string
		out                                                 string
		sinkLatency, batchWindow, drainTimeout, modeTimeout time.Duration
	)
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&cfg.Bookings, "bookings", 2000, "bookings per mode per round")
	fs.IntVar(&cfg.Concurrency, "concurrency", 16, "bookings in flight (closed-loop workers), the same for every mode")
	fs.IntVar(&cfg.Rounds, "rounds", 3, "rounds; the mode order rotates by one each round and medians are reported")
	fs.StringVar(&modes, "modes", strings.Join(AllModes, ","), "comma-separated modes: "+strings.Join(AllModes, ", "))
	fs.DurationVar(&sinkLatency, "sink-latency", 250*time.Millisecond, "latency of the local analytics endpoint's answer to each POST")
	fs.IntVar(&cfg.BatchSize, "batch-size", relay.DefaultBatchSize, "the relay's -batch-size (outbox mode)")
	fs.DurationVar(&batchWindow, "batch-window", relay.DefaultBatchWindow, "the relay's -batch-window (outbox mode)")
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
		cfg.Log = os.Stderr
		var err error
		if cfg.Modes, err = parseModes(modes); err != nil {
			return cli.Usage(err)
		}
		if err := validate(cfg); err != nil {
			return cli.Usage(err)
		}
		rep, err := Run(ctx, cfg)
		if rep != nil && len(rep.Runs) > 0 {
			if rep.Summary == nil {
				rep.summarize() // interrupted: report what ran
			}
			rep.Print(os.Stdout)
			if out != "" {
				if werr := rep.WriteJSON(out); werr != nil {
					return fmt.Errorf("write %s: %w", out, werr)
				}
				fmt.Fprintf(os.Stderr, "bench: wrote %s\n", out)
			}
		}
		return err
	})
}

func parseModes(s string) ([]string, error) {
	var modes []string
	seen := map[string]bool{}
	for _, m := range strings.Split(s, ",") {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		if !contains(AllModes, m) {
			return nil, fmt.Errorf("unknown mode %q; modes are %s", m, strings.Join(AllModes, ", "))
		}
		if !seen[m] {
			seen[m] = true
			modes = append(modes, m)
		}
	}
	if len(modes) == 0 {
		return nil, fmt.Errorf("-modes names no mode")
	}
	return modes, nil
}

func validate(c Config) error {
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
	case c.BatchWindow <= 0, c.DrainTimeout <= 0, c.ModeTimeout <= 0:
		return fmt.Errorf("-batch-window, -drain-timeout and -mode-timeout must be positive")
	}
	return nil
}
