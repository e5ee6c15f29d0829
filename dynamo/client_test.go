package dynamo

import (
	"context"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		endpoint string
		ok       bool
	}{
		{"", true},
		{"http://127.0.0.1:8000", true},
		{"https://dynamodb.eu-west-1.amazonaws.com", true},
		{"HTTP://localhost:8000/", true},
		{"127.0.0.1:8000", false},
		{"localhost:8000", false},
		{"dynamodb-local", false},
		{"ftp://127.0.0.1:8000", false},
		{"http://", false},
		{"http://:8000", false},
		{"http:///path", false},
		{"http://[::1", false},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			err := Config{Endpoint: tt.endpoint}.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate(%q) = %v, want ok %v", tt.endpoint, err, tt.ok)
			}
			if err != nil && (strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), tt.endpoint)) {
				t.Fatalf("error %q should be one line naming the endpoint", err)
			}
		})
	}
}

func TestNewClientsRejectsBadEndpoint(t *testing.T) {
	for _, endpoint := range []string{"127.0.0.1:8000", "http://"} {
		t.Run(endpoint, func(t *testing.T) {
			if _, err := NewClients(context.Background(), Config{Endpoint: endpoint}); err == nil {
				t.Fatalf("NewClients(%q) succeeded", endpoint)
			}
		})
	}
}
