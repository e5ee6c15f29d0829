package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ddboutbox/ddboutbox/dynamo"
	"github.com/ddboutbox/ddboutbox/outbox"
)

func setupStatus(fs *flag.FlagSet, a *app) func(ctx context.Context) error {
	outputFlag(fs, a)
	return func(ctx context.Context) error {
		db, err := a.client(ctx)
		if err != nil {
			return err
		}
		s, err := outbox.Summarize(ctx, db, a.tables.Outbox)
		if err != nil {
			return err
		}
		st := status{Summary: s, Now: time.Now()}
		// Not StreamARN: a missing or disabled stream is what status must
		// show, next to the counts, not a reason to fail.
		if st.Stream, err = dynamo.LatestStream(ctx, db, a.tables.Outbox); err != nil {
			return err
		}
		if st.Stream.ARN != "" {
			// A disabled stream's leases still matter: a running relay
			// reads it to its end.
			leases := &dynamo.Leases{DB: db, Table: a.tables.State}
			if st.Leases, err = leases.List(ctx, st.Stream.ARN); err != nil {
				return err
			}
			if st.Relays, err = leases.Owners(ctx); err != nil {
				return err
			}
		}
		return st.write(a.out, a.format)
	}
}

// status is what the status command shows.
type status struct {
	outbox.Summary
	Now time.Time
	// Stream is the outbox table's latest stream, enabled or not; its ARN
	// is empty if the table never had one.
	Stream dynamo.Stream
	// Leases are the state table's rows for Stream: one per shard the
	// relay has seen.
	Leases []dynamo.Lease
	// Relays are the owner rows: the process acting, or that last acted,
	// for each owner.
	Relays []dynamo.OwnerRow
}

// relayJSON is an owner row in JSON output.
type relayJSON struct {
	Owner         string    `json:"owner"`
	Instance      string    `json:"instance"`
	Host          string    `json:"host,omitempty"`
	PID           int       `json:"pid,omitempty"`
	HoldExpiresAt time.Time `json:"hold_expires_at"`
	HoldLive      bool      `json:"hold_live"`
	UpdatedAt     string    `json:"updated_at,omitempty"`
}

// shardJSON is a lease in JSON output.
type shardJSON struct {
	ShardID        string    `json:"shard_id"`
	Checkpoint     string    `json:"checkpoint,omitempty"`
	Finished       bool      `json:"finished"`
	Owner          string    `json:"owner,omitempty"`
	LeaseCounter   int64     `json:"lease_counter"`
	LeaseExpiresAt time.Time `json:"lease_expires_at"`
	LeaseLive      bool      `json:"lease_live"`
	ParentShardIDs []string  `json:"parent_shard_ids,omitempty"`
	UpdatedAt      string    `json:"updated_at,omitempty"`
	// SettledBefore is what the owner last published for other relays'
	// sweepers; absent until it has.
	SettledBefore *time.Time `json:"settled_before,omitempty"`
}

func (st status) write(w io.Writer, f format) error {
	age := st.OldestPendingAge(st.Now).Round(time.Millisecond)
	leases := slices.Clone(st.Leases)
	// Shard ids embed their creation time, so this is roughly stream order.
	slices.SortFunc(leases, func(a, b dynamo.Lease) int { return strings.Compare(a.ShardID, b.ShardID) })
	if f == formatJSON {
		shards := make([]shardJSON, 0, len(leases))
		for _, l := range leases {
			exp := time.UnixMilli(l.ExpiresAtMilli).UTC()
			sj := shardJSON{
				ShardID: l.ShardID, Checkpoint: l.Checkpoint, Finished: l.Finished(),
				Owner: l.Owner, LeaseCounter: l.Counter, LeaseExpiresAt: exp, LeaseLive: exp.After(st.Now),
				ParentShardIDs: l.ParentShardIDs, UpdatedAt: l.UpdatedAt,
			}
			if l.SettledBeforeMilli != 0 {
				at := time.UnixMilli(l.SettledBeforeMilli).UTC()
				sj.SettledBefore = &at
			}
			shards = append(shards, sj)
		}
		relays := make([]relayJSON, 0, len(st.Relays))
		for _, r := range st.Relays {
			exp := time.UnixMilli(r.ExpiresAtMilli).UTC()
			relays = append(relays, relayJSON{
				Owner: r.Owner, Instance: r.Instance, Host: r.Host, PID: r.PID,
				HoldExpiresAt: exp, HoldLive: exp.After(st.Now), UpdatedAt: r.UpdatedAt,
			})
		}
		return writeJSON(w, struct {
			outbox.Summary
			OldestPendingAgeSeconds float64     `json:"oldest_pending_age_seconds"`
			StreamARN               string      `json:"stream_arn,omitempty"`
			StreamEnabled           bool        `json:"stream_enabled"`
			Shards                  []shardJSON `json:"shards"`
			Relays                  []relayJSON `json:"relays"`
		}{st.Summary, age.Seconds(), st.Stream.ARN, st.Stream.Enabled, shards, relays})
	}

	tw := newTable(w)
	row(tw, "PENDING", "DELIVERED", "FAILED", "OLDEST PENDING AGE")
	row(tw, fmt.Sprint(st.Pending), fmt.Sprint(st.Delivered), fmt.Sprint(st.Failed), age.String())
	if err := tw.Flush(); err != nil {
		return err
	}
	stream := st.Stream.ARN
	switch {
	case stream == "":
		_, err := fmt.Fprintln(w, "\nstream: none (the outbox table has no stream; run outboxctl init)")
		return err
	case !st.Stream.Enabled:
		stream += " (disabled: new events reach the relay only through its sweeper; run outboxctl init)"
	}
	if len(leases) == 0 {
		fmt.Fprintf(w, "\nstream: %s\nno shard leases yet (no relay has processed this stream)\n", stream)
	} else {
		fmt.Fprintf(w, "\nstream: %s\n", stream)
		tw = newTable(w)
		row(tw, "SHARD", "CHECKPOINT", "OWNER", "COUNTER", "LEASE EXPIRES", "SETTLED", "PARENTS")
		for _, l := range leases {
			row(tw, l.ShardID, orDash(shortSeq(l.Checkpoint)), orDash(l.Owner), fmt.Sprint(l.Counter),
				leaseCell(time.UnixMilli(l.ExpiresAtMilli), st.Now), settledCell(l, st.Now), orDash(strings.Join(l.ParentShardIDs, ",")))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(st.Relays) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	row(tw, "OWNER", "HOST", "PID", "HOLD EXPIRES")
	for _, r := range st.Relays {
		row(tw, r.Owner, orDash(r.Host), fmt.Sprint(r.PID), leaseCell(time.UnixMilli(r.ExpiresAtMilli), st.Now))
	}
	return tw.Flush()
}

// shortSeq shortens a sequence number (up to 40 digits in DynamoDB
// Streams) to its ends, which is enough to see it move; -o json has it whole.
func shortSeq(seq string) string {
	const keep = 6
	if len(seq) <= 2*keep+3 {
		return seq
	}
	return seq[:keep] + "…" + seq[len(seq)-keep:]
}

func leaseCell(exp, now time.Time) string {
	if !exp.After(now) {
		return "expired"
	}
	return fmt.Sprintf("%s (in %s)", exp.UTC().Format(tableTime), exp.Sub(now).Round(time.Second))
}

// settledCell is how far behind the lease's settled_before is: a shard
// whose owner stalls shows it growing (and holds every sweeper back).
func settledCell(l dynamo.Lease, now time.Time) string {
	if l.SettledBeforeMilli == 0 || l.Finished() {
		return "-"
	}
	return fmt.Sprintf("%s ago", max(now.Sub(time.UnixMilli(l.SettledBeforeMilli)), 0).Round(time.Second))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
