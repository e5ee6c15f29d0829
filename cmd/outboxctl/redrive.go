package main

import (
	"context"
	"errors"
	"flag"

	"github.com/ddboutbox/ddboutbox/cmd/internal/cli"
	"github.com/ddboutbox/ddboutbox/outbox"
)

func setupRedrive(fs *flag.FlagSet, a *app) func(ctx context.Context) error {
	var sel selection
	sel.register(fs, "")
	all := fs.Bool("all", false, "select every FAILED event")
	dryRun := fs.Bool("dry-run", false, "list the events that would be redriven, change nothing")
	outputFlag(fs, a)
	return func(ctx context.Context) error {
		switch {
		case !*all && len(sel.ids) == 0 && !sel.byTime():
			// Redriving everything must be a decision, not a default.
			return cli.Usage(errors.New("redrive: choose the events: -id ID (repeatable), -from/-to, or -all"))
		case *all && (len(sel.ids) > 0 || sel.byTime()):
			return cli.Usage(errors.New("redrive: -all cannot be combined with -id, -from or -to"))
		case len(sel.ids) > 0 && sel.byTime():
			return cli.Usage(errors.New("redrive: choose either -id or -from/-to"))
		}
		f, err := sel.filter(outbox.StatusFailed)
		if err != nil {
			return err
		}
		return requeue(ctx, a, f, *dryRun, "redriven", outbox.Redrive)
	}
}

// requeue moves the selected events back to PENDING with move (Redrive or
// Replay), or with dryRun only lists them.
func requeue(ctx context.Context, a *app, f outbox.Filter, dryRun bool, verb string,
	move func(context.Context, outbox.RequeueAPI, string, outbox.Filter) (int, error)) error {
	db, err := a.client(ctx)
	if err != nil {
		return err
	}
	if dryRun {
		recs, err := outbox.List(ctx, db, a.tables.Outbox, f)
		if err != nil {
			return err
		}
		return writeRecords(a.out, a.format, recs)
	}
	n, err := move(ctx, db, a.tables.Outbox, f)
	if err != nil {
		return partial(err, n)
	}
	return writeMoved(a.out, a.format, verb, n)
}
