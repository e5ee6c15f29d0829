package cli

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/ddboutbox/ddboutbox/dynamo"
	"github.com/ddboutbox/ddboutbox/relay"
)

// parseRelayFlags parses args with env set, as the relay binary does.
func parseRelayFlags(t *testing.T, args []string, env map[string]string) (relay.Config, dynamo.Config, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var (
		cfg relay.Config
		db  dynamo.Config
	)
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	Dynamo(fs, &db, &cfg.Tables)
	Relay(fs, &cfg)
	return cfg, db, Parse(fs, args)
}

func TestParseFlagsAndEnv(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		wantURL   string
		wantSize  int
		wantTable string
		wantErr   error
	}{
		{"defaults", nil, nil, "", 500, "Outbox", nil},
		{"env fills flags", nil, map[string]string{"SINK_URL": "http://e", "BATCH_SIZE": "7", "OUTBOX_TABLE": "T"}, "http://e", 7, "T", nil},
		{"flag beats env", []string{"-sink-url", "http://f"}, map[string]string{"SINK_URL": "http://e"}, "http://f", 500, "Outbox", nil},
		{"bad env value", nil, map[string]string{"BATCH_SIZE": "many"}, "", 0, "", ErrUsage},
		{"unknown flag", []string{"-nope"}, nil, "", 0, "", ErrUsage},
		{"help", []string{"-h"}, nil, "", 0, "", flag.ErrHelp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := parseRelayFlags(t, tt.args, tt.env)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || cfg.SinkURL != tt.wantURL || cfg.BatchSize != tt.wantSize || cfg.Tables.Outbox != tt.wantTable {
				t.Fatalf("got %+v, %v", cfg, err)
			}
		})
	}
}

func TestRelayCheck(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"valid", []string{"-sink-url", "http://x"}, ""},
		{"zero batch size is not silently the default", []string{"-sink-url", "http://x", "-batch-size", "0"}, "must be positive"},
		{"over the maximum", []string{"-sink-url", "http://x", "-batch-size", "10001"}, "batch size"},
		{"missing url", nil, "sink url"},
		{"bad format", []string{"-sink-url", "http://x", "-sink-format", "xml"}, "sink format"},
		{"unknown profile", []string{"-sink-url", "http://x", "-sink-profile", "excel"}, "profile"},
		{"secret file missing", []string{"-sink-url", "http://x", "-webhook-secret-file", "/nonexistent/secret"}, "secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg relay.Config
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			check := Relay(fs, &cfg)
			err := Parse(fs, tt.args)
			if err == nil {
				err = check()
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want a usage error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestProfileFillsWhatWasNotGiven(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantSize   int
		wantBytes  int
		wantFormat relay.Format
		wantRate   float64
	}{
		{"streaming profile", []string{"-sink-profile", "powerbi-streaming"}, 500, 15000, relay.FormatArray, 5},
		{"push profile", []string{"-sink-profile", "powerbi-push"}, 500, 16000000, relay.FormatRows, 2},
		{"explicit flags override", []string{"-sink-profile", "powerbi-push", "-batch-size", "50", "-batch-bytes", "9999", "-sink-format", "array", "-sink-rate", "1"}, 50, 9999, relay.FormatArray, 1},
		{"no profile keeps the flag defaults", nil, 500, 1 << 20, relay.FormatArray, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg relay.Config
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			check := Relay(fs, &cfg)
			if err := Parse(fs, append([]string{"-sink-url", "http://x"}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			if err := check(); err != nil {
				t.Fatal(err)
			}
			got := cfg.WithDefaults()
			if got.BatchSize != tt.wantSize || got.BatchBytes != tt.wantBytes || got.SinkFormat != tt.wantFormat || got.SinkRate != tt.wantRate {
				t.Fatalf("size %d bytes %d format %s rate %g", got.BatchSize, got.BatchBytes, got.SinkFormat, got.SinkRate)
			}
		})
	}
}

func TestWebhookSecretComesFromEnvNotFlags(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	t.Setenv("WEBHOOK_SECRET", secret)
	var cfg relay.Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	check := Relay(fs, &cfg)
	if err := Parse(fs, []string{"-sink-url", "http://x"}); err != nil {
		t.Fatal(err)
	}
	if err := check(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.WebhookSecret) == 0 {
		t.Fatal("WEBHOOK_SECRET was not loaded")
	}
	fs.VisitAll(func(f *flag.Flag) {
		if strings.Contains(f.Value.String(), "MfKQ9r8") {
			t.Fatalf("flag -%s holds the secret", f.Name)
		}
	})
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		err      error
		code     int
		wantLine bool
	}{
		{nil, 0, false},
		{flag.ErrHelp, 0, false},
		{Usage(errors.New("bad flag")), 2, true},
		{errors.New("dynamodb down"), 1, true},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if got := ExitCode("x", tt.err, &buf); got != tt.code {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.code)
		}
		if lines := strings.Count(buf.String(), "\n"); (lines == 1) != tt.wantLine || (lines > 1) {
			t.Errorf("ExitCode(%v) wrote %q; want one line iff it failed", tt.err, buf.String())
		}
	}
}

func TestLogFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		ok   bool
	}{
		{nil, true}, {[]string{"-log-format", "json", "-log-level", "debug"}, true},
		{[]string{"-log-format", "xml"}, false}, {[]string{"-log-level", "loud"}, false},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		build := Log(fs, io.Discard)
		if err := Parse(fs, tt.args); err != nil {
			t.Fatal(err)
		}
		_, err := build()
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrUsage)) {
			t.Errorf("%v: got %v", tt.args, err)
		}
	}
}

func TestDynamoFlagsAreChecked(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantErr  string // "" = no error
		endpoint string
		tables   dynamo.Tables
	}{
		{name: "defaults", tables: dynamo.Tables{Outbox: "Outbox", Bookings: "Bookings", State: "OutboxRelayState"}},
		{
			name: "valid endpoint and tables", args: []string{"-dynamodb-endpoint", "http://127.0.0.1:8000", "-outbox-table", "O"},
			env: map[string]string{"STATE_TABLE": "S"}, endpoint: "http://127.0.0.1:8000",
			tables: dynamo.Tables{Outbox: "O", Bookings: "Bookings", State: "S"},
		},
		{name: "endpoint without scheme", args: []string{"-dynamodb-endpoint", "127.0.0.1:8000"}, wantErr: `-dynamodb-endpoint: endpoint "127.0.0.1:8000" is not`},
		{name: "endpoint without host", args: []string{"-dynamodb-endpoint", "http://"}, wantErr: "-dynamodb-endpoint: "},
		{name: "endpoint from env", env: map[string]string{"DYNAMODB_ENDPOINT": "localhost:8000"}, wantErr: "-dynamodb-endpoint (env DYNAMODB_ENDPOINT): "},
		{name: "empty outbox table flag", args: []string{"-outbox-table", ""}, wantErr: "-outbox-table: table name must not be empty"},
		{name: "empty bookings table flag", args: []string{"-bookings-table="}, wantErr: "-bookings-table: table name must not be empty"},
		{name: "empty outbox table env", env: map[string]string{"OUTBOX_TABLE": ""}, wantErr: "-outbox-table (env OUTBOX_TABLE): table name must not be empty"},
		{name: "empty state table env", env: map[string]string{"STATE_TABLE": ""}, wantErr: "-state-table (env STATE_TABLE): table name must not be empty"},
		{name: "flag beats an empty env", args: []string{"-outbox-table", "O"}, env: map[string]string{"OUTBOX_TABLE": ""},
			tables: dynamo.Tables{Outbox: "O", Bookings: "Bookings", State: "OutboxRelayState"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, db, err := parseRelayFlags(t, tt.args, tt.env)
			tables := cfg.Tables
			if tt.wantErr != "" {
				if !errors.Is(err, ErrUsage) || !strings.HasPrefix(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("got %v, want a one-line usage error starting %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || db.Endpoint != tt.endpoint || tables != tt.tables {
				t.Fatalf("got %q %+v, %v", db.Endpoint, tables, err)
			}
		})
	}
}

func TestNoArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" = no error
	}{
		{"none", nil, ""},
		{"flags only", []string{"-sink-url", "http://x"}, ""},
		{"after the flags", []string{"-sink-url", "http://x", "stray"}, `unexpected argument "stray"`},
		{"before the flags", []string{"stray", "-sink-url", "http://x"}, `unexpected argument "stray"`},
		{"after --", []string{"--", "-x"}, `unexpected argument "-x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.String("sink-url", "", "")
			if err := Parse(fs, tt.args); err != nil {
				t.Fatal(err)
			}
			err := NoArgs(fs)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				return
			}
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want a usage error containing %q", err, tt.wantErr)
			}
		})
	}
}
