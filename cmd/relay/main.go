// Command relay tails the outbox table's DynamoDB stream and delivers
// outbox events in batches to an analytics endpoint.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/ddboutbox/ddboutbox/cmd/internal/cli"
	"github.com/ddboutbox/ddboutbox/dynamo"
	"github.com/ddboutbox/ddboutbox/relay"
)

func main() {
	var (
		cfg relay.Config
		db  dynamo.Config
	)
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	cli.Dynamo(fs, &db, &cfg.Tables)
	check := cli.Relay(fs, &cfg)
	logger := cli.Log(fs, os.Stderr)
	cli.Main("relay", func(ctx context.Context) error {
		if err := cli.Parse(fs, os.Args[1:]); err != nil {
			return err
		}
		var err error
		if cfg.Logger, err = logger(); err != nil {
			return err
		}
		if err := check(); err != nil {
			return err
		}
		clients, err := dynamo.NewClients(ctx, db)
		if err != nil {
			return err
		}
		r, err := relay.New(cfg, clients.DB, clients.Streams, nil)
		if err != nil {
			return err
		}
		return r.Run(ctx)
	})
}
