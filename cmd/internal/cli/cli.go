// Package cli maps flags and environment variables onto the config structs
// of the dynamo, outbox and relay packages, so that every binary spells a
// setting the same way.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ddboutbox/ddboutbox/dynamo"
)

// ErrUsage marks a configuration error: the binary exits 2.
var ErrUsage = errors.New("invalid configuration")

// Usage marks err as a configuration error without changing its message.
func Usage(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

type usageError struct{ error }

func (e usageError) Is(target error) bool { return target == ErrUsage }
func (e usageError) Unwrap() error        { return e.error }

// EnvName is the environment variable that sets a flag when it is not on
// the command line: the flag's name in upper case with "-" as "_"
// (-dynamodb-endpoint is DYNAMODB_ENDPOINT, -sink-url is SINK_URL).
func EnvName(flagName string) string {
	return strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args, then fills every flag that was not given from its
// environment variable. A command line flag beats the environment.
func Parse(fs *flag.FlagSet, args []string) error {
	fs.VisitAll(func(f *flag.Flag) {
		f.Usage += fmt.Sprintf(" (env %s)", EnvName(f.Name))
	})
	// The flag package prints the whole usage on any error; keep that for
	// -h and give a one-line reason otherwise.
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	if errors.Is(err, flag.ErrHelp) {
		fs.Usage()
		return err
	}
	if err != nil {
		return Usage(err)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := os.LookupEnv(EnvName(f.Name))
		if given[f.Name] || !ok || err != nil {
			return
		}
		if setErr := fs.Set(f.Name, v); setErr != nil {
			err = Usage(fmt.Errorf("env %s: %w", EnvName(f.Name), setErr))
		}
	})
	// Checked only now, so that a bad value is reported the same way
	// whether the command line or the environment gave it.
	fs.VisitAll(func(f *flag.Flag) {
		c, ok := f.Value.(checkedString)
		if !ok || err != nil {
			return
		}
		if checkErr := c.check(*c.p); checkErr != nil {
			name := "-" + f.Name
			if !given[f.Name] {
				name += " (env " + EnvName(f.Name) + ")"
			}
			err = Usage(fmt.Errorf("%s: %w", name, checkErr))
		}
	})
	return err
}

// NoArgs rejects positional arguments, for binaries that take none. The
// flag package stops at the first one, so without this "relay stray
// -sink-url x" would ignore -sink-url and fail with a misleading reason.
func NoArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return Usage(fmt.Errorf("unexpected argument %q (-h for help)", fs.Arg(0)))
	}
	return nil
}

// checkedString is a string flag whose final value Parse checks.
type checkedString struct {
	p     *string
	check func(string) error
}

func (s checkedString) String() string {
	// flag.PrintDefaults calls String on a zero value.
	if s.p == nil {
		return ""
	}
	return *s.p
}

func (s checkedString) Set(v string) error {
	*s.p = v
	return nil
}

// checkedStringVar is fs.StringVar with a check Parse applies.
func checkedStringVar(fs *flag.FlagSet, p *string, name, value, usage string, check func(string) error) {
	*p = value
	fs.Var(checkedString{p: p, check: check}, name, usage)
}

// tableName rejects an empty table name: the libraries read "" as "the
// default", so OUTBOX_TABLE= would silently pick the default table in one
// binary and reach DynamoDB as "" in another.
func tableName(v string) error {
	if v == "" {
		return errors.New("table name must not be empty")
	}
	return nil
}

// Dynamo registers -dynamodb-endpoint and the three table flags. Region and
// credentials come from the standard AWS environment (AWS_REGION,
// AWS_PROFILE, ...). Parse rejects an endpoint that dynamo.Config.Validate
// rejects and a table name given as empty.
func Dynamo(fs *flag.FlagSet, c *dynamo.Config, t *dynamo.Tables) {
	checkedStringVar(fs, &c.Endpoint, "dynamodb-endpoint", "", "DynamoDB endpoint `URL`, e.g. http://127.0.0.1:8000 for DynamoDB Local; empty means real AWS",
		func(v string) error { return dynamo.Config{Endpoint: v}.Validate() })
	checkedStringVar(fs, &t.Outbox, "outbox-table", dynamo.DefaultOutboxTable, "outbox `table` (stream enabled, NEW_IMAGE)", tableName)
	checkedStringVar(fs, &t.Bookings, "bookings-table", dynamo.DefaultBookingsTable, "bookings `table` of the example service", tableName)
	checkedStringVar(fs, &t.State, "state-table", dynamo.DefaultStateTable, "relay lease and checkpoint `table`", tableName)
}

// Log registers -log-level and -log-format; call the result after parsing.
func Log(fs *flag.FlagSet, w io.Writer) func() (*slog.Logger, error) {
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	format := fs.String("log-format", "text", "log format: text or json")
	return func() (*slog.Logger, error) {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(*level)); err != nil {
			return nil, Usage(fmt.Errorf("log level %q must be debug, info, warn or error", *level))
		}
		opts := &slog.HandlerOptions{Level: lv}
		switch *format {
		case "text":
			return slog.New(slog.NewTextHandler(w, opts)), nil
		case "json":
			return slog.New(slog.NewJSONHandler(w, opts)), nil
		}
		return nil, Usage(fmt.Errorf("log format %q must be text or json", *format))
	}
}

// Main runs fn with a context cancelled on SIGINT or SIGTERM and exits:
// 0 on success, 2 on a configuration error, 1 otherwise, with the reason on
// one line of stderr.
func Main(name string, fn func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := fn(ctx)
	stop()
	os.Exit(ExitCode(name, err, os.Stderr))
}

// ExitCode reports err on w and maps it to an exit code.
func ExitCode(name string, err error, w io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(w, "%s: %v\n", name, err)
		return 2
	default:
		fmt.Fprintf(w, "%s: %v\n", name, err)
		return 1
	}
}
