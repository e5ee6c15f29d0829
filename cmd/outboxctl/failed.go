package main

import (
	"context"
	"flag"

	"github.com/ddboutbox/ddboutbox/outbox"
)

func setupFailed(fs *flag.FlagSet, a *app) func(ctx context.Context) error {
	var sel selection
	sel.register(fs, "")
	outputFlag(fs, a)
	return func(ctx context.Context) error {
		f, err := sel.filter(outbox.StatusFailed)
		if err != nil {
			return err
		}
		db, err := a.client(ctx)
		if err != nil {
			return err
		}
		recs, err := outbox.List(ctx, db, a.tables.Outbox, f)
		if err != nil {
			return err
		}
		return writeRecords(a.out, a.format, recs)
	}
}
