// Command demo runs the whole ddboutbox flow on one machine without
// containers: DynamoDB Local as a java process, the local analytics
// endpoint, the booking service, the relay and a load of bookings, with a
// live progress line and a summary.
package main

import (
	"context"
	"flag"
	"os"
	"time"

	"github.com/ddboutbox/ddboutbox/cmd/internal/cli"
)

func main() {
	var c config
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.StringVar(&c.endpoint, "dynamodb-endpoint", "", "use this DynamoDB instead of starting DynamoDB Local")
	fs.StringVar(&c.jarDir, "dynamodb-local-jar-dir", "", "directory of DynamoDBLocal.jar, started with java when no endpoint is given")
	fs.StringVar(&c.bookingAddr, "booking-addr", "127.0.0.1:8080", "booking service address")
	fs.StringVar(&c.sinkAddr, "sink-addr", "127.0.0.1:9000", "analytics endpoint address")
	fs.DurationVar(&c.sinkLatency, "sink-latency", 250*time.Millisecond, "analytics endpoint answer delay (a cloud API takes 150-300ms)")
	fs.IntVar(&c.bookings, "bookings", 2000, "bookings the load generator makes")
	fs.IntVar(&c.concurrency, "concurrency", 16, "concurrent booking clients")
	fs.IntVar(&c.batchSize, "batch-size", 500, "relay batch size")
	fs.DurationVar(&c.batchWindow, "batch-window", time.Second, "relay batch window")
	fs.BoolVar(&c.keep, "keep", false, "keep the stack running after the load, until Ctrl-C")
	cli.Main("demo", func(ctx context.Context) error {
		if err := cli.Parse(fs, os.Args[1:]); err != nil {
			return err
		}
		if err := cli.NoArgs(fs); err != nil {
			return err
		}
		if err := c.validate(); err != nil {
			return cli.Usage(err)
		}
		return run(ctx, c, os.Stdout)
	})
}
