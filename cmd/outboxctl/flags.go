package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ddboutbox/ddboutbox/cmd/internal/cli"
	"github.com/ddboutbox/ddboutbox/outbox"
)

// format is the -o flag.
type format string

const (
	formatTable format = "table"
	formatJSON  format = "json"
)

func (f *format) String() string { return string(*f) }

func (f *format) Set(s string) error {
	switch format(s) {
	case formatTable, formatJSON:
		*f = format(s)
		return nil
	}
	return fmt.Errorf("%q is not table or json", s)
}

// timeFlag is an RFC 3339 time; the zero value means not given.
type timeFlag struct{ t time.Time }

func (f *timeFlag) String() string {
	if f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339Nano)
}

func (f *timeFlag) Set(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("%q is not an RFC 3339 time such as 2025-05-01T12:00:00Z", s)
	}
	f.t = t.UTC()
	return nil
}

// idsFlag collects a repeated -id.
type idsFlag []string

func (f *idsFlag) String() string { return strings.Join(*f, ",") }

func (f *idsFlag) Set(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	*f = append(*f, s)
	return nil
}

// selection is the -id/-from/-to flags that pick events.
type selection struct {
	ids      idsFlag
	from, to timeFlag
}

func (s *selection) register(fs *flag.FlagSet, what string) {
	fs.Var(&s.ids, "id", "select the event with this event_`id` (repeatable)")
	fs.Var(&s.from, "from", "select events that occurred at or after this `time` (RFC 3339)"+what)
	fs.Var(&s.to, "to", "select events that occurred before this `time` (RFC 3339)"+what)
}

func (s *selection) filter(status outbox.Status) (outbox.Filter, error) {
	f := outbox.Filter{Status: status, From: s.from.t, To: s.to.t, IDs: s.ids}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return f, cli.Usage(fmt.Errorf("-from %s is not before -to %s", s.from.String(), s.to.String()))
	}
	return f, nil
}

func (s *selection) byTime() bool { return !s.from.t.IsZero() || !s.to.t.IsZero() }

// parseFlags parses a command's flags. Unlike cli.Parse it does not read
// the environment: a selector such as -all must never come from a stray
// variable. Like cli.Parse it prints the full usage only for -h.
func parseFlags(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return err
	case err != nil:
		return cli.Usage(fmt.Errorf("%s: %w", fs.Name(), err))
	case fs.NArg() > 0:
		return cli.Usage(fmt.Errorf("%s: unexpected argument %q (-h for help)", fs.Name(), fs.Arg(0)))
	}
	return nil
}

// outputFlag registers -o on a command, defaulting to the global -o.
func outputFlag(fs *flag.FlagSet, a *app) {
	fs.Var(&a.format, "o", "output `format`: table or json")
}
