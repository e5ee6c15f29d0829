package main

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	// ok is a valid config; each case changes what it tests.
	ok := config{endpoint: "http://127.0.0.1:8000", bookings: 1, concurrency: 1, batchSize: 500, batchWindow: time.Second}
	tests := []struct {
		name    string
		edit    func(*config)
		wantErr string // "" = valid
	}{
		{"endpoint", func(*config) {}, ""},
		{"jar dir", func(c *config) { c.endpoint, c.jarDir = "", "/opt/ddb" }, ""},
		{"no sink latency", func(c *config) { c.sinkLatency = 0 }, ""},
		{"neither", func(c *config) { c.endpoint = "" }, "give -dynamodb-endpoint or -dynamodb-local-jar-dir"},
		{"endpoint without scheme", func(c *config) { c.endpoint = "127.0.0.1:8000" }, `-dynamodb-endpoint: endpoint "127.0.0.1:8000"`},
		{"no bookings", func(c *config) { c.bookings = 0 }, "-bookings, -concurrency and -batch-size"},
		{"no batch size", func(c *config) { c.batchSize = 0 }, "-bookings, -concurrency and -batch-size"},
		{"zero batch window", func(c *config) { c.batchWindow = 0 }, "-batch-window must be positive"},
		{"negative sink latency", func(c *config) { c.sinkLatency = -time.Millisecond }, "-sink-latency must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
