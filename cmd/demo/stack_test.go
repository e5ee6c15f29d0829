package main

import (
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		c       config
		wantErr string // "" = valid
	}{
		{"endpoint", config{endpoint: "http://127.0.0.1:8000", bookings: 1, concurrency: 1}, ""},
		{"jar dir", config{jarDir: "/opt/ddb", bookings: 1, concurrency: 1}, ""},
		{"neither", config{bookings: 1, concurrency: 1}, "give -dynamodb-endpoint or -dynamodb-local-jar-dir"},
		{"endpoint without scheme", config{endpoint: "127.0.0.1:8000", bookings: 1, concurrency: 1}, `-dynamodb-endpoint: endpoint "127.0.0.1:8000"`},
		{"no bookings", config{endpoint: "http://127.0.0.1:8000", concurrency: 1}, "-bookings and -concurrency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.validate()
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
