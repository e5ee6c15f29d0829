package main

import (
	"context"
	"errors"
	"flag"

	"github.com/ddboutbox/ddboutbox/cmd/internal/cli"
	"github.com/ddboutbox/ddboutbox/outbox"
)

func setupReplay(fs *flag.FlagSet, a *app) func(ctx context.Context) error {
	var sel selection
	sel.register(fs, " (required)")
	dryRun := fs.Bool("dry-run", false, "list the events that would be replayed, change nothing")
	outputFlag(fs, a)
	return func(ctx context.Context) error {
		if sel.from.t.IsZero() || sel.to.t.IsZero() {
			// An open range could re-send the whole table by accident.
			return cli.Usage(errors.New("replay: -from and -to are both required"))
		}
		f, err := sel.filter(outbox.StatusDelivered)
		if err != nil {
			return err
		}
		return requeue(ctx, a, f, *dryRun, "replayed", outbox.Replay)
	}
}
