package relay

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks test vector, as published with the reference
// libraries (e.g. libraries/go and the Svix test suites).
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func vectorHeader(sig string) http.Header {
	h := http.Header{}
	h.Set(HeaderWebhookID, vectorID)
	h.Set(HeaderWebhookTimestamp, strconv.Itoa(vectorTimestamp))
	h.Set(HeaderWebhookSignature, sig)
	return h
}

func TestSignMatchesTheSpecTestVector(t *testing.T) {
	secret, err := ParseSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	got := Signer{Secret: secret}.Sign(vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorBody))
	if got != vectorSignature {
		t.Errorf("Sign = %s, want %s", got, vectorSignature)
	}
	if err := Verify(secret, vectorHeader(vectorSignature), []byte(vectorBody), time.Unix(vectorTimestamp, 0), 0); err != nil {
		t.Errorf("Verify of the test vector: %v", err)
	}
}

func TestSignRequestVerifies(t *testing.T) {
	secret, _ := ParseSecret(vectorSecret)
	body := []byte(`[{"event_id":"a"}]`)
	now := time.Unix(1_700_000_000, 0)
	req, _ := http.NewRequest(http.MethodPost, "http://x", bytes.NewReader(body))
	Signer{Secret: secret}.SignRequest(req, "3f2a9c", body, now)
	if req.Header.Get("Webhook-Id") != "3f2a9c" || req.Header.Get("Webhook-Timestamp") != "1700000000" ||
		!strings.HasPrefix(req.Header.Get("Webhook-Signature"), "v1,") {
		t.Errorf("headers = %v", req.Header)
	}
	if err := Verify(secret, req.Header, body, now.Add(time.Minute), 0); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	secret, _ := ParseSecret(vectorSecret)
	other, _ := ParseSecret("whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	at := time.Unix(vectorTimestamp, 0)
	tests := []struct {
		name      string
		secret    []byte
		header    http.Header
		body      string
		now       time.Time
		tolerance time.Duration
		wantInErr string // "" means Verify must succeed
	}{
		{"valid", secret, vectorHeader(vectorSignature), vectorBody, at, 0, ""},
		{"valid among several, rotation", secret, vectorHeader("v1,bm9wZQ== v1a,AAAA " + vectorSignature), vectorBody, at, 0, ""},
		{"extra spaces", secret, vectorHeader("  " + vectorSignature + "  "), vectorBody, at, 0, ""},
		{"exactly 5m late is within the default tolerance", secret, vectorHeader(vectorSignature), vectorBody, at.Add(5 * time.Minute), 0, ""},
		{"tampered body", secret, vectorHeader(vectorSignature), `{"test": 2432232315}`, at, 0, "no matching"},
		{"body with a trailing newline", secret, vectorHeader(vectorSignature), vectorBody + "\n", at, 0, "no matching"},
		{"wrong secret", other, vectorHeader(vectorSignature), vectorBody, at, 0, "no matching"},
		{"raw string of the whsec value is a different key", []byte(vectorSecret), vectorHeader(vectorSignature), vectorBody, at, 0, "no matching"},
		{"empty secret", nil, vectorHeader(vectorSignature), vectorBody, at, 0, "no secret"},
		{"tampered timestamp", secret, withHeader(vectorHeader(vectorSignature), HeaderWebhookTimestamp, strconv.Itoa(vectorTimestamp+1)), vectorBody, at, 0, "no matching"},
		{"tampered id", secret, withHeader(vectorHeader(vectorSignature), HeaderWebhookID, vectorID+"x"), vectorBody, at, 0, "no matching"},
		{"id with a dot", secret, withHeader(vectorHeader(vectorSignature), HeaderWebhookID, "msg.1"), vectorBody, at, 0, "must not contain"},
		{"too old", secret, vectorHeader(vectorSignature), vectorBody, at.Add(5*time.Minute + time.Second), 0, "old"},
		{"too new", secret, vectorHeader(vectorSignature), vectorBody, at.Add(-5*time.Minute - time.Second), 0, "future"},
		{"custom tolerance", secret, vectorHeader(vectorSignature), vectorBody, at.Add(31 * time.Second), 30 * time.Second, "old"},
		{"huge timestamp", secret, withHeader(vectorHeader(vectorSignature), HeaderWebhookTimestamp, "9223372036854775807"), vectorBody, at, 0, "future"},
		{"negative timestamp", secret, withHeader(vectorHeader(vectorSignature), HeaderWebhookTimestamp, "-9223372036854775808"), vectorBody, at, 0, "old"},
		{"timestamp not an integer", secret, withHeader(vectorHeader(vectorSignature), HeaderWebhookTimestamp, "1614265330.0"), vectorBody, at, 0, "not an integer"},
		{"missing signature", secret, withHeader(vectorHeader(vectorSignature), HeaderWebhookSignature, ""), vectorBody, at, 0, "missing"},
		{"missing id", secret, withHeader(vectorHeader(vectorSignature), HeaderWebhookID, ""), vectorBody, at, 0, "missing"},
		{"missing timestamp", secret, withHeader(vectorHeader(vectorSignature), HeaderWebhookTimestamp, ""), vectorBody, at, 0, "missing"},
		{"unversioned signature", secret, vectorHeader(strings.TrimPrefix(vectorSignature, "v1,")), vectorBody, at, 0, "no matching"},
		{"wrong version", secret, vectorHeader("v2," + strings.TrimPrefix(vectorSignature, "v1,")), vectorBody, at, 0, "no matching"},
		{"hex instead of base64", secret, vectorHeader("v1,836c4cf52b04f8e4d3252d1adf8a22acd2664e5137b8524255655834e2c9d4e1"), vectorBody, at, 0, "no matching"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secret, tt.header, []byte(tt.body), tt.now, tt.tolerance)
			if tt.wantInErr == "" {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidSignature) || !strings.Contains(err.Error(), tt.wantInErr) {
				t.Fatalf("Verify = %v, want ErrInvalidSignature about %q", err, tt.wantInErr)
			}
			assertNoSecret(t, err.Error(), tt.secret)
			if strings.Contains(err.Error(), strings.TrimPrefix(vectorSignature, "v1,")) {
				t.Errorf("error %q quotes the signature", err)
			}
		})
	}
}

func withHeader(h http.Header, key, value string) http.Header {
	if value == "" {
		h.Del(key)
	} else {
		h.Set(key, value)
	}
	return h
}

func TestParseSecret(t *testing.T) {
	raw24 := strings.Repeat("k", 24)
	tests := []struct {
		name    string
		in      string
		want    []byte
		wantErr string
	}{
		{"whsec form is base64-decoded", vectorSecret, mustDecode(t, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), ""},
		{"whitespace around it is trimmed", "\n  " + vectorSecret + " \r\n", mustDecode(t, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), ""},
		{"anything else is raw bytes", raw24, []byte(raw24), ""},
		{"unprefixed base64 stays raw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", []byte("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), ""},
		{"empty", "", nil, "empty"},
		{"only whitespace", " \n\t", nil, "empty"},
		{"raw too short", "hunter2-correct-horse", nil, "shorter than 24"},
		{"decoded too short", "whsec_" + base64.StdEncoding.EncodeToString([]byte("sixteen-byte-key")), nil, "shorter than 24"},
		{"bad base64", "whsec_not*base64*at*all*but*long*enough", nil, "not valid base64"},
		{"unpadded base64", "whsec_" + base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte("x"), 25)), nil, "not valid base64"},
		{"prefix only", "whsec_", nil, "shorter than 24"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSecret(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSecret = %v, want an error about %q", err, tt.wantErr)
				}
				assertNoSecret(t, err.Error(), []byte(strings.TrimSpace(tt.in)))
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("ParseSecret = %x, %v; want %x", []byte(got), err, tt.want)
			}
		})
	}
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadSecret(t *testing.T) {
	const envVar = "DDBOUTBOX_TEST_WEBHOOK_SECRET"
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("f1", vectorSecret+"\n")
	short := write("f2", "whsec_dGlueS1rZXk=\n")
	empty := write("f3", "\n")
	want := mustDecode(t, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")

	tests := []struct {
		name    string
		path    string
		env     *string
		want    []byte
		wantErr string
	}{
		{"neither: signing off", "", nil, nil, ""},
		{"file", good, nil, want, ""},
		{"env", "", ptr(vectorSecret), want, ""},
		{"both is ambiguous", good, ptr(vectorSecret), nil, "use one"},
		{"missing file", filepath.Join(dir, "nope"), nil, nil, "no such file"},
		{"empty file", empty, nil, nil, "empty"},
		{"short secret in file", short, nil, nil, "shorter"},
		{"short secret in env", "", ptr("whsec_dGlueS1rZXk="), nil, envVar},
		{"set but empty env", "", ptr(""), nil, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != nil {
				t.Setenv(envVar, *tt.env)
			} else {
				t.Setenv(envVar, "")
				os.Unsetenv(envVar)
			}
			got, err := LoadSecret(tt.path, envVar)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadSecret = %v, want an error about %q", err, tt.wantErr)
				}
				for _, s := range []string{vectorSecret, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "dGlueS1rZXk=", "tiny-key"} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q contains secret material %q", err, s)
					}
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("LoadSecret = %x, %v; want %x", []byte(got), err, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestSecretNeverPrints covers the ways a secret could reach a log line or
// an error through a value that holds it.
func TestSecretNeverPrints(t *testing.T) {
	secret, _ := ParseSecret("correct-horse-battery-staple-0123456789")
	signer := Signer{Secret: secret}
	holder := struct {
		Name   string
		Secret Secret
	}{"x", secret}

	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%o", "%b"} {
		out = append(out, fmt.Sprintf(verb, secret), fmt.Sprintf(verb, signer), fmt.Sprintf(verb, &signer), fmt.Sprintf(verb, holder))
	}
	out = append(out, fmt.Errorf("wrapped: %v", signer).Error())
	js, err := json.Marshal(holder)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, string(js))
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&logs, nil), slog.NewJSONHandler(&logs, nil)} {
		slog.New(h).Info("config", "secret", secret, "signer", signer, "holder", holder)
	}
	out = append(out, logs.String())

	for _, s := range out {
		assertNoSecret(t, s, secret)
		if !strings.Contains(s, "REDACTED") {
			t.Errorf("%q does not say REDACTED", s)
		}
	}
}

// assertNoSecret fails if s holds the secret in any common encoding.
func assertNoSecret(t *testing.T, s string, secret []byte) {
	t.Helper()
	if len(secret) == 0 {
		return
	}
	for _, enc := range []string{
		string(secret),
		fmt.Sprintf("%x", []byte(secret)),
		fmt.Sprintf("%v", []byte(secret)),
		base64.StdEncoding.EncodeToString(secret),
		base64.RawStdEncoding.EncodeToString(secret),
	} {
		if strings.Contains(s, enc) {
			t.Errorf("%q contains the secret (%q)", s, enc)
		}
	}
}

// A webhook secret signs whatever *HTTPSink the relay uses, its own or one
// the caller passes; a sink the relay cannot sign through is refused
// rather than sending unsigned requests while the config says signed.
func TestNewSignsThroughTheSinkItIsGiven(t *testing.T) {
	secret, err := ParseSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	var got http.Header
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		body, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	cfg := Config{SinkURL: srv.URL, WebhookSecret: secret, Logger: quietLogger()}
	for _, tt := range []struct {
		name string
		sink Sink
	}{
		{"the relay's own sink", nil},
		{"an *HTTPSink without a signer", &HTTPSink{URL: srv.URL, Client: srv.Client()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(cfg, newStateDB(), nil, tt.sink)
			if err != nil {
				t.Fatal(err)
			}
			got = nil
			if err := r.sink.Send(t.Context(), []byte(`[{"event_id":"a"}]`), "k1"); err != nil {
				t.Fatal(err)
			}
			if err := Verify(secret, got, body, time.Now(), 0); err != nil {
				t.Fatalf("request not signed with the secret: %v (headers %v)", err, got)
			}
		})
	}
	if _, err := New(cfg, newStateDB(), nil, acceptSink{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("a sink the relay cannot sign through: err %v, want ErrInvalidConfig", err)
	}
}
