// Command analytics-sink serves package endpoint: a local stand-in for a
// Power BI dataset that keeps what the relay sends in memory.
package main

import (
	"context"
	"flag"
	"os"
	"time"

	"github.com/ddboutbox/ddboutbox/cmd/analytics-sink/endpoint"
	"github.com/ddboutbox/ddboutbox/cmd/internal/cli"
)

func main() {
	var o endpoint.Options
	fs := flag.NewFlagSet("analytics-sink", flag.ContinueOnError)
	addr := fs.String("addr", ":9000", "listen address")
	fs.DurationVar(&o.Latency, "latency", 0, "delay before answering each POST, e.g. 250ms")
	fs.IntVar(&o.MaxRows, "max-rows", endpoint.DefaultMaxRows, "most rows per POST; more is answered 400")
	fs.Int64Var(&o.MaxBodyBytes, "max-body-bytes", endpoint.DefaultMaxBodyBytes, "largest POST body; more is answered 413")
	logger := cli.Log(fs, os.Stderr)
	cli.Main("analytics-sink", func(ctx context.Context) error {
		if err := cli.Parse(fs, os.Args[1:]); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return cli.Usage(err)
		}
		var err error
		if o.Logger, err = logger(); err != nil {
			return err
		}
		// The grace covers POSTs still sleeping out -latency.
		return cli.Serve(ctx, *addr, endpoint.New(o), o.Logger, 10*time.Second+o.Latency)
	})
}
