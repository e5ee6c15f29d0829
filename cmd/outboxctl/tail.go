package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ddboutbox/ddboutbox/cmd/internal/cli"
	"github.com/ddboutbox/ddboutbox/outbox"
)

// Tail is a Scan per poll: every poll reads the whole outbox table, which
// is fine for a developer or an operator watching deliveries, and is why
// this is not an API for feeding another system (that is the relay's job).
func setupTail(fs *flag.FlagSet, a *app) func(ctx context.Context) error {
	interval := fs.Duration("interval", time.Second, "`duration` between polls")
	var since timeFlag
	fs.Var(&since, "since", "show events delivered after this `time` (RFC 3339; default now)")
	lag := fs.Duration("lag", 10*time.Second, "how late a delivery may become visible after its delivered_at stamp: each poll re-reads this `duration`")
	outputFlag(fs, a)
	return func(ctx context.Context) error {
		if *interval <= 0 {
			return cli.Usage(errors.New("tail: -interval must be positive"))
		}
		if *lag < 0 {
			return cli.Usage(errors.New("tail: -lag must not be negative"))
		}
		start := since.t
		if start.IsZero() {
			start = time.Now()
		}
		db, err := a.client(ctx)
		if err != nil {
			return err
		}
		fl := newFollower(start, *lag)
		p := newTailPrinter(a.out, a.format)
		if err := p.header(); err != nil {
			return err
		}
		tick := time.NewTicker(*interval)
		defer tick.Stop()
		for {
			recs, err := outbox.List(ctx, db, a.tables.Outbox, outbox.Filter{Status: outbox.StatusDelivered, DeliveredAfter: fl.window()})
			if ctx.Err() != nil {
				return nil // Ctrl-C is how tail ends
			}
			if err != nil {
				return err
			}
			if err := p.print(fl.next(recs)); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
	}
}

// follower turns repeated reads of a moving window of deliveries into a
// stream of new ones. delivered_at is stamped before the relay's marking
// write lands, and one batch shares one stamp, so a cursor alone would
// skip the rest of a batch seen half marked, or a slower write; instead
// each poll re-reads the last lag before the newest delivery printed and
// skips what was printed. Memory is bounded by the deliveries within lag
// of the newest one, however long tail runs.
type follower struct {
	start  time.Time // nothing delivered at or before it is printed
	lag    time.Duration
	cursor time.Time // the newest delivered_at printed, or start
	// seen holds what was printed within the window, by event_id and
	// delivered_at: a replayed event is delivered again with a new stamp
	// and is printed again.
	seen map[string]time.Time
}

func newFollower(start time.Time, lag time.Duration) *follower {
	return &follower{start: start, lag: lag, cursor: start, seen: map[string]time.Time{}}
}

// window is the delivered_at after which the next poll must read.
func (f *follower) window() time.Time { return f.cursor.Add(-f.lag) }

// next returns the records of a poll not printed before, in delivered_at
// order, and remembers them.
func (f *follower) next(recs []outbox.Record) []outbox.Record {
	var fresh []outbox.Record
	for _, r := range recs {
		if !r.DeliveredAt.After(f.start) {
			continue
		}
		key := r.ID + "@" + r.DeliveredAt.Format(time.RFC3339Nano)
		if _, ok := f.seen[key]; ok {
			continue
		}
		f.seen[key] = r.DeliveredAt
		fresh = append(fresh, r)
	}
	slices.SortFunc(fresh, func(a, b outbox.Record) int {
		return cmp.Or(a.DeliveredAt.Compare(b.DeliveredAt), strings.Compare(a.ID, b.ID))
	})
	if n := len(fresh); n > 0 && fresh[n-1].DeliveredAt.After(f.cursor) {
		f.cursor = fresh[n-1].DeliveredAt
	}
	// What is at or before the window is never read again.
	for k, t := range f.seen {
		if !t.After(f.window()) {
			delete(f.seen, k)
		}
	}
	return fresh
}

// tailPrinter prints deliveries as they come. The table has fixed-width
// columns rather than tabwriter's: rows arrive over time, and columns sized
// per poll would not line up with the header or each other.
type tailPrinter struct {
	w      io.Writer
	format format
	enc    *json.Encoder
}

func newTailPrinter(w io.Writer, f format) *tailPrinter {
	// One compact JSON object per line, for jq and line-based tools.
	return &tailPrinter{w: w, format: f, enc: json.NewEncoder(w)}
}

const tailRow = "%-24s  %-36s  %-24s  %-32s  %s\n"

func (p *tailPrinter) header() error {
	if p.format == formatJSON {
		return nil
	}
	_, err := fmt.Fprintf(p.w, tailRow, "DELIVERED AT", "EVENT ID", "EVENT TYPE", "AGGREGATE", "PAYLOAD")
	return err
}

func (p *tailPrinter) print(recs []outbox.Record) error {
	for _, r := range recs {
		var err error
		if p.format == formatJSON {
			err = p.enc.Encode(r)
		} else {
			_, err = fmt.Fprintf(p.w, tailRow, timeCell(r.DeliveredAt), r.ID, cell(r.Type, 24),
				cell(r.AggregateType+"/"+r.AggregateID, 32), payloadCell(r.Payload))
		}
		if err != nil {
			return err
		}
	}
	return nil
}
