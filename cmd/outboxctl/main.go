// Command outboxctl administers a ddboutbox deployment.
//
//	outboxctl [global flags] <command> [command flags]
//
//	init     create the tables and enable a missing or disabled stream (idempotent)
//	status   counts by status, oldest pending age, per-shard checkpoint and lease
//	failed   list FAILED events with their error and payload
//	redrive  move FAILED events back to PENDING: -id id... | -from/-to time | -all
//	replay   re-send the DELIVERED events that occurred in [-from, -to)
//	tail     follow delivered events as they are marked (scan based, dev/ops)
//
// The global flags select DynamoDB and the tables (-dynamodb-endpoint,
// -outbox-table, -bookings-table, -state-table; each also read from its
// environment variable) and the default output, -o table|json. Commands
// take -o too, and -h documents each one's flags. Times are RFC 3339, e.g.
// 2025-05-01T12:00:00Z. A usage error exits 2, any other error 1.
//
// Redriven and replayed events are delivered by the relay's sweeper within
// its sweep interval, at least once: receivers dedupe by event_id.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/ddboutbox/ddboutbox/cmd/internal/cli"
	"github.com/ddboutbox/ddboutbox/dynamo"
	"github.com/ddboutbox/ddboutbox/outbox"
)

const synopsis = "usage: outboxctl [global flags] init|status|failed|redrive|replay|tail [flags] (-h for help)"

func main() {
	cli.Main("outboxctl", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	})
}

// app is what a command works with: the parsed global flags, where to
// write, and the DynamoDB client, created on first use so that usage
// errors and -h need no AWS configuration.
type app struct {
	cfg    dynamo.Config
	tables dynamo.Tables
	format format
	out    io.Writer
	db     *dynamodb.Client
}

func (a *app) client(ctx context.Context) (*dynamodb.Client, error) {
	if a.db == nil {
		c, err := dynamo.NewClients(ctx, a.cfg)
		if err != nil {
			return nil, err
		}
		a.db = c.DB
	}
	return a.db, nil
}

// command is one subcommand. setup registers its flags and returns the
// function that runs it once they are parsed.
type command struct {
	name, args, summary string
	setup               func(fs *flag.FlagSet, a *app) func(ctx context.Context) error
}

func commands() []command {
	return []command{
		{"init", "[-o table|json]", "create the tables and enable a missing or disabled stream (idempotent)", setupInit},
		{"status", "[-o table|json]", "counts by status, oldest pending age, per-shard checkpoint and lease", setupStatus},
		{"failed", "[-id id]... [-from time] [-to time] [-o table|json]", "list FAILED events with their error and payload", setupFailed},
		{"redrive", "-id id... | [-from time] [-to time] | -all [-dry-run] [-o table|json]", "move FAILED events back to PENDING for the relay to deliver again", setupRedrive},
		{"replay", "-from time -to time [-id id]... [-dry-run] [-o table|json]", "re-send the DELIVERED events that occurred in [-from, -to)", setupReplay},
		{"tail", "[-interval duration] [-since time] [-lag duration] [-o table|json]", "follow delivered events until interrupted (scan based: a dev/ops tool)", setupTail},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	a := &app{out: stdout, format: formatTable}
	fs := flag.NewFlagSet("outboxctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cli.Dynamo(fs, &a.cfg, &a.tables)
	fs.Var(&a.format, "o", "default output `format` of every command: table or json")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\ncommands:\n", synopsis)
		for _, c := range commands() {
			fmt.Fprintf(fs.Output(), "  %-8s %s\n", c.name, c.summary)
		}
		fmt.Fprintf(fs.Output(), "\nglobal flags:\n")
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return cli.Usage(errors.New(synopsis))
	}
	name := fs.Arg(0)
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		sub := flag.NewFlagSet(c.name, flag.ContinueOnError)
		sub.SetOutput(stderr)
		exec := c.setup(sub, a)
		sub.Usage = func() {
			fmt.Fprintf(sub.Output(), "usage: outboxctl [global flags] %s %s\n\n%s.\n", c.name, c.args, c.summary)
			if help := commandHelp[c.name]; help != "" {
				fmt.Fprintf(sub.Output(), "\n%s\n", help)
			}
			fmt.Fprintf(sub.Output(), "\nflags:\n")
			sub.PrintDefaults()
		}
		if err := parseFlags(sub, fs.Args()[1:]); err != nil {
			return err
		}
		return asUsage(exec(ctx))
	}
	return cli.Usage(fmt.Errorf("unknown command %q; %s", name, synopsis))
}

// commandHelp is the longer -h text of the commands that need one.
var commandHelp = map[string]string{
	"redrive": strings.TrimSpace(`
Each selected FAILED event becomes PENDING again (last_error and attempts
are kept as history). The relay's sweeper delivers it within its sweep
interval; delivery is at-least-once, so receivers dedupe by event_id.
A selector is required: -all must be said explicitly.`),
	"replay": strings.TrimSpace(`
Each DELIVERED event that occurred in [-from, -to) becomes PENDING again,
and the relay's sweeper delivers it once more within its sweep interval:
for a dashboard rebuilt from scratch. Receivers dedupe by event_id. Only
events not yet expired by TTL (the relay's -delivered-ttl) can be replayed.`),
	"tail": strings.TrimSpace(`
Polls a consistent Scan of the outbox table for events delivered since the
last poll and prints them in delivered_at order until Ctrl-C. Every poll
reads the whole table: a tool for development and operations, not for
feeding another system. An event whose marking lands more than -lag after
its delivered_at stamp is not shown.`),
}

// asUsage turns a filter the outbox package rejected into a usage error:
// it came from the command line.
func asUsage(err error) error {
	var ve *outbox.ValidationError
	if errors.As(err, &ve) {
		return cli.Usage(err)
	}
	return err
}
