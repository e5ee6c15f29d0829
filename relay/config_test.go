package relay

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{SinkURL: "http://127.0.0.1:9000/rows"}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"defaults are valid", func(*Config) {}, ""},
		{"rows format", func(c *Config) { c.SinkFormat = FormatRows }, ""},
		{"max record age longer than sweep after", func(c *Config) { c.MaxRecordAge = 5*time.Minute + time.Second }, ""},
		{"max record age equal to the default sweep after", func(c *Config) { c.MaxRecordAge = 5 * time.Minute }, "-max-record-age 5m0s must be longer than -sweep-after 5m0s"},
		{"max record age below sweep after", func(c *Config) { c.MaxRecordAge = time.Minute; c.SweepAfter = time.Hour }, "-max-record-age 1m0s must be longer than -sweep-after 1h0m0s"},
		{"short max record age with the sweeper disabled", func(c *Config) { c.MaxRecordAge = time.Minute; c.SweepInterval = -1 }, ""},
		{"negative max record age is no limit", func(c *Config) { c.MaxRecordAge = -time.Second }, ""},
		{"max batch size", func(c *Config) { c.BatchSize = 10000 }, ""},
		{"longest owner", func(c *Config) { c.Owner = strings.Repeat("o", MaxOwnerBytes) }, ""},
		{"owner too long for the outbox items' headroom", func(c *Config) { c.Owner = strings.Repeat("o", MaxOwnerBytes+1) }, "owner is 257 bytes"},
		{"missing sink url", func(c *Config) { c.SinkURL = "" }, "sink url is required"},
		{"relative sink url", func(c *Config) { c.SinkURL = "/rows" }, "absolute http(s)"},
		{"unknown format", func(c *Config) { c.SinkFormat = "xml" }, "sink format"},
		{"batch size over Power BI's limit", func(c *Config) { c.BatchSize = 10001 }, "batch size"},
		{"negative batch size", func(c *Config) { c.BatchSize = -1 }, "batch size"},
		{"byte cap below an envelope", func(c *Config) { c.BatchBytes = 3 }, "batch bytes"},
		{"negative window", func(c *Config) { c.BatchWindow = -time.Second }, "batch window"},
		{"one batch in flight", func(c *Config) { c.BatchesInFlight = 1 }, ""},
		{"too many batches in flight", func(c *Config) { c.BatchesInFlight = 65 }, "batches in flight"},
		{"negative batches in flight", func(c *Config) { c.BatchesInFlight = -1 }, "batches in flight"},
		{"transactions of 100 marks", func(c *Config) { c.MarkBatchSize = 100 }, ""},
		{"mark batch over a transaction's limit", func(c *Config) { c.MarkBatchSize = 101 }, "mark batch size 101 must be between 1 and 100"},
		{"negative mark batch size", func(c *Config) { c.MarkBatchSize = -1 }, "mark batch size"},
		{"a sink rate", func(c *Config) { c.SinkRate = 0.5 }, ""},
		{"negative sink rate", func(c *Config) { c.SinkRate = -1 }, "sink rate -1 must be a finite number"},
		{"NaN sink rate", func(c *Config) { c.SinkRate = math.NaN() }, "sink rate NaN must be a finite number"},
		{"infinite sink rate", func(c *Config) { c.SinkRate = math.Inf(1) }, "sink rate +Inf must be a finite number"},
		{"retry max below base", func(c *Config) { c.RetryBase = time.Second; c.RetryMax = time.Millisecond }, "retry max"},
		{"secret query is not echoed", func(c *Config) { c.SinkURL = "ftp://h/x?key=s3cret" }, "REDACTED"},
		{"nanosecond lease duration", func(c *Config) { c.LeaseDuration = 2 }, "lease duration 2ns must be at least 1s"},
		{"sub-second lease duration", func(c *Config) { c.LeaseDuration = 999 * time.Millisecond }, "lease duration"},
		{"shortest lease duration", func(c *Config) { c.LeaseDuration = time.Second }, ""},
		{"negative lease duration", func(c *Config) { c.LeaseDuration = -time.Second }, "lease duration -1s must not be negative"},
		{"nanosecond claim duration", func(c *Config) { c.ClaimDuration = 1 }, "claim duration"},
		{"nanosecond shard sync interval", func(c *Config) { c.ShardSyncInterval = 1 }, "shard sync interval"},
		{"nanosecond sweep interval", func(c *Config) { c.SweepInterval = 1 }, "sweep interval"},
		{"nanosecond sweep after sets the sweep interval", func(c *Config) { c.SweepAfter = 1 }, "sweep interval"},
		{"negative sweep interval disables the sweeper", func(c *Config) { c.SweepInterval = -1 }, ""},
		{"nanosecond poll interval", func(c *Config) { c.PollInterval = 1 }, "poll interval"},
		{"millisecond poll interval", func(c *Config) { c.PollInterval = time.Millisecond }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v, want an ErrInvalidConfig containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error leaks the secret: %v", err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.BatchSize != 500 || c.BatchBytes != 1<<20 || c.BatchWindow != time.Second || c.SinkFormat != FormatArray ||
		c.DeliveredTTL != 7*24*time.Hour || c.Tables.Outbox != "Outbox" || c.Tables.State != "OutboxRelayState" ||
		c.BatchesInFlight != 4 || c.PollInterval != 250*time.Millisecond {
		t.Fatalf("defaults %+v", c)
	}
}

func TestRedactURL(t *testing.T) {
	got := redactURL("https://user:pw@api.powerbi.com/beta/x/datasets/y/rows?key=abc%3D&other=1")
	for _, secret := range []string{"pw", "abc", "user"} {
		if strings.Contains(got, secret) {
			t.Fatalf("%q still contains %q", got, secret)
		}
	}
	if !strings.Contains(got, "api.powerbi.com/beta/x/datasets/y/rows") {
		t.Fatalf("%q lost the host and path", got)
	}
}
