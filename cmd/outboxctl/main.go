// Command outboxctl administers a ddboutbox deployment:
//
//	outboxctl init     create the outbox, bookings and state tables (idempotent)
//	outboxctl status   counts by status and the oldest pending event's age
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ddboutbox/ddboutbox/cmd/internal/cli"
	"github.com/ddboutbox/ddboutbox/dynamo"
	"github.com/ddboutbox/ddboutbox/outbox"
)

const usage = "usage: outboxctl [flags] init|status"

func main() {
	var (
		db     dynamo.Config
		tables dynamo.Tables
	)
	fs := flag.NewFlagSet("outboxctl", flag.ContinueOnError)
	cli.Dynamo(fs, &db, &tables)
	output := fs.String("o", "table", "output format of status: table or json")
	cli.Main("outboxctl", func(ctx context.Context) error {
		if err := cli.Parse(fs, os.Args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 || (*output != "table" && *output != "json") {
			return cli.Usage(fmt.Errorf("%s (-o table|json)", usage))
		}
		clients, err := dynamo.NewClients(ctx, db)
		if err != nil {
			return err
		}
		switch fs.Arg(0) {
		case "init":
			if err := dynamo.EnsureTables(ctx, clients.DB, tables); err != nil {
				return err
			}
			t := tables.WithDefaults()
			fmt.Printf("tables ready: %s (stream), %s, %s\n", t.Outbox, t.Bookings, t.State)
			return nil
		case "status":
			s, err := outbox.Summarize(ctx, clients.DB, tables.WithDefaults().Outbox)
			if err != nil {
				return err
			}
			return printStatus(os.Stdout, s, *output)
		}
		return cli.Usage(fmt.Errorf("unknown command %q; %s", fs.Arg(0), usage))
	})
}

func printStatus(w io.Writer, s outbox.Summary, format string) error {
	age := s.OldestPendingAge(time.Now()).Round(time.Millisecond)
	if format == "json" {
		return json.NewEncoder(w).Encode(struct {
			outbox.Summary
			OldestPendingAgeSeconds float64 `json:"oldest_pending_age_seconds"`
		}{s, age.Seconds()})
	}
	_, err := fmt.Fprintf(w, "PENDING\tDELIVERED\tFAILED\tOLDEST PENDING AGE\n%d\t%d\t%d\t%s\n", s.Pending, s.Delivered, s.Failed, age)
	return err
}
