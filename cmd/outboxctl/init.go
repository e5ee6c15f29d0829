package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/ddboutbox/ddboutbox/dynamo"
)

func setupInit(fs *flag.FlagSet, a *app) func(ctx context.Context) error {
	outputFlag(fs, a)
	return func(ctx context.Context) error {
		db, err := a.client(ctx)
		if err != nil {
			return err
		}
		if err := dynamo.EnsureTables(ctx, db, a.tables); err != nil {
			return err
		}
		return writeTables(a.out, a.format, a.tables.WithDefaults())
	}
}

// writeTables reports the tables init made ready.
func writeTables(w io.Writer, f format, t dynamo.Tables) error {
	if f == formatJSON {
		return writeJSON(w, map[string]string{"outbox": t.Outbox, "bookings": t.Bookings, "state": t.State})
	}
	_, err := fmt.Fprintf(w, "tables ready: %s (stream, pending index, TTL), %s, %s\n", t.Outbox, t.Bookings, t.State)
	return err
}
