package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/ddboutbox/ddboutbox/dynamo"
)

func setupInit(_ *flag.FlagSet, a *app) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		db, err := a.client(ctx)
		if err != nil {
			return err
		}
		if err := dynamo.EnsureTables(ctx, db, a.tables); err != nil {
			return err
		}
		t := a.tables.WithDefaults()
		_, err = fmt.Fprintf(a.out, "tables ready: %s (stream, pending index, TTL), %s, %s\n", t.Outbox, t.Bookings, t.State)
		return err
	}
}
