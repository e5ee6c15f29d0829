package dynamo

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
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

// With an endpoint of its own, the clients sign with the credentials the
// environment or the shared AWS files hold, and with a dummy key only when
// there are none: an endpoint may be real DynamoDB (a VPC endpoint).
func TestNewClientsSignsWithTheCredentialsFound(t *testing.T) {
	tests := []struct {
		name        string
		credentials string // the shared credentials file; "" = none
		envKey      string // AWS_ACCESS_KEY_ID; "" = unset
		wantKey     string
	}{
		{"none: a dummy key", "", "", "local"},
		{"default profile of the shared file", "[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = s\n", "", "AKIAFILE"},
		{"environment", "", "AKIAENV", "AKIAENV"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			creds := filepath.Join(dir, "credentials")
			if tt.credentials != "" {
				if err := os.WriteFile(creds, []byte(tt.credentials), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			// Nothing of the machine's own AWS set-up may leak in.
			for _, v := range []string{"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
				"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"} {
				t.Setenv(v, "")
			}
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
			t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
			if tt.envKey != "" {
				t.Setenv("AWS_ACCESS_KEY_ID", tt.envKey)
				t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
			}
			cl, err := NewClients(t.Context(), Config{Endpoint: "http://127.0.0.1:1"})
			if err != nil {
				t.Fatal(err)
			}
			for name, p := range map[string]aws.CredentialsProvider{"dynamodb": cl.DB.Options().Credentials, "streams": cl.Streams.Options().Credentials} {
				got, err := p.Retrieve(t.Context())
				if err != nil || got.AccessKeyID != tt.wantKey {
					t.Fatalf("%s signs with %q (%v), want %q", name, got.AccessKeyID, err, tt.wantKey)
				}
			}
		})
	}
}
