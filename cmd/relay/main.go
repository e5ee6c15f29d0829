// Command relay tails the outbox table's DynamoDB stream and delivers
// outbox events in batches to an analytics endpoint.
package main

import (
	"context"
	"flag"
	"net/http"
	"os"
	"time"

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
	metricsAddr := fs.String("metrics-addr", ":9090", "serve /metrics, /healthz and /readyz here (empty = off)")
	pprofAddr := fs.String("pprof-addr", "", "serve net/http/pprof here, e.g. 127.0.0.1:6060 (empty = off)")
	logger := cli.Log(fs, os.Stderr)
	cli.Main("relay", func(ctx context.Context) error {
		if err := cli.Parse(fs, os.Args[1:]); err != nil {
			return err
		}
		if err := cli.NoArgs(fs); err != nil {
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
		reg := cli.NewRegistry()
		cfg.Registerer = reg
		r, err := relay.New(cfg, clients.DB, clients.Streams, nil)
		if err != nil {
			return err
		}
		var servers []func(context.Context) error
		if *metricsAddr != "" {
			mux := http.NewServeMux()
			cli.Ops(mux, reg, func(context.Context) error { return r.Ready() }, func(ctx context.Context) error {
				_, err := dynamo.StreamARN(ctx, clients.DB, cfg.Tables.WithDefaults().Outbox)
				return err
			})
			servers = append(servers, func(ctx context.Context) error { return cli.Serve(ctx, *metricsAddr, mux, cfg.Logger, time.Second) })
		}
		if *pprofAddr != "" {
			servers = append(servers, func(ctx context.Context) error {
				return cli.Serve(ctx, *pprofAddr, cli.Pprof(), cfg.Logger, time.Second)
			})
		}
		return cli.RunAll(ctx, r.Run, servers...)
	})
}
