// Command booking serves the example booking API of package bookings: each
// booking and its BookingReserved event are committed in one transaction.
package main

import (
	"context"
	"flag"
	"net/http"
	"os"
	"time"

	"github.com/ddboutbox/ddboutbox/cmd/booking/bookings"
	"github.com/ddboutbox/ddboutbox/cmd/internal/cli"
	"github.com/ddboutbox/ddboutbox/dynamo"
)

func main() {
	var (
		db     dynamo.Config
		tables dynamo.Tables
	)
	fs := flag.NewFlagSet("booking", flag.ContinueOnError)
	addr := fs.String("addr", ":8080", "listen address")
	cli.Dynamo(fs, &db, &tables)
	logger := cli.Log(fs, os.Stderr)
	cli.Main("booking", func(ctx context.Context) error {
		if err := cli.Parse(fs, os.Args[1:]); err != nil {
			return err
		}
		if err := cli.NoArgs(fs); err != nil {
			return err
		}
		log, err := logger()
		if err != nil {
			return err
		}
		clients, err := dynamo.NewClients(ctx, db)
		if err != nil {
			return err
		}
		svc := &bookings.Service{DB: clients.DB, BookingsTable: tables.Bookings, OutboxTable: tables.Outbox, Logger: log}
		reg := cli.NewRegistry()
		mux := http.NewServeMux()
		cli.Ops(mux, reg, func(ctx context.Context) error { return svc.Ready(ctx, clients.DB) })
		mux.Handle("/", cli.Instrument(reg, "ddboutbox_booking", svc.Handler()))
		// In-flight commits land either way; the grace lets them answer.
		return cli.Serve(ctx, *addr, mux, log, 10*time.Second)
	})
}
