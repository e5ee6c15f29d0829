package relay

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Request signing per the Standard Webhooks specification, version 1.0.0
// (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):
// the symmetric scheme, HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}",
// sent as "webhook-signature: v1,<base64>". A receiver can verify it with
// any Standard Webhooks or Svix library given the secret in its whsec_ form.

// The Standard Webhooks headers.
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// DefaultSignatureTolerance is how far a webhook-timestamp may be from the
// verifier's clock, either way: the reference libraries' 5 minutes.
const DefaultSignatureTolerance = 5 * time.Minute

// MinSecretBytes is the shortest secret ParseSecret accepts: the spec's
// minimum for a symmetric signing secret (24 bytes, 192 bits).
const MinSecretBytes = 24

// secretPrefix marks a secret serialized as the spec says: whsec_<base64>.
const secretPrefix = "whsec_"

// ErrInvalidSignature wraps every reason Verify rejects a request. None of
// its messages holds the secret or a signature.
var ErrInvalidSignature = errors.New("invalid webhook signature")

// Secret is a signing secret. It formats, logs and marshals as REDACTED so
// that it cannot leak through a %v of a struct holding it, a slog attribute
// or a JSON dump. It converts to and from []byte freely.
type Secret []byte

const redacted = "REDACTED"

// String returns REDACTED.
func (Secret) String() string { return redacted }

// GoString returns REDACTED, for %#v.
func (Secret) GoString() string { return redacted }

// Format prints REDACTED for every verb, %x and %d included.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue makes slog print REDACTED.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText makes encoding/json and friends write REDACTED.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// ParseSecret reads a signing secret as configured:
//
//   - "whsec_<base64>", the spec's serialization: the secret is the decoded
//     bytes (standard base64 with padding, as the reference libraries use).
//     Generate one with: echo "whsec_$(openssl rand -base64 32)".
//   - anything else: the secret is the string's bytes as they are.
//
// Beware that the reference libraries also base64-decode a secret given
// without the prefix; to share a secret with such a receiver, configure it
// in the whsec_ form on both sides. Surrounding whitespace is trimmed. A
// secret shorter than MinSecretBytes is rejected. Errors never quote s.
func ParseSecret(s string) (Secret, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("webhook secret is empty")
	}
	key := []byte(s)
	if rest, ok := strings.CutPrefix(s, secretPrefix); ok {
		var err error
		if key, err = base64.StdEncoding.DecodeString(rest); err != nil {
			// The decoder's error only gives an offset, but it is not
			// wrapped all the same: nothing of the secret goes into errors.
			return nil, errors.New("webhook secret starts with whsec_ but the rest is not valid base64")
		}
	}
	if len(key) < MinSecretBytes {
		return nil, fmt.Errorf("webhook secret is shorter than %d bytes", MinSecretBytes)
	}
	return Secret(key), nil
}

// LoadSecret reads the signing secret from the file at path or, when path
// is empty, from the environment variable envVar, and parses it with
// ParseSecret. It returns nil and no error when neither is set: signing is
// off. Setting both is an error, so that it is never unclear which secret
// is in use. The secret is deliberately not taken from a flag value, which
// any user can read in ps. Errors name the file or variable, never the
// secret.
func LoadSecret(path, envVar string) (Secret, error) {
	env, inEnv := "", false
	if envVar != "" {
		env, inEnv = os.LookupEnv(envVar)
	}
	switch {
	case path != "" && inEnv:
		return nil, fmt.Errorf("webhook secret: both the file %s and the environment variable %s are set; use one", path, envVar)
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			// *fs.PathError names the path and the cause, not the contents.
			return nil, fmt.Errorf("read webhook secret: %w", err)
		}
		s, err := ParseSecret(string(b))
		if err != nil {
			return nil, fmt.Errorf("webhook secret file %s: %w", path, err)
		}
		return s, nil
	case inEnv:
		s, err := ParseSecret(env)
		if err != nil {
			return nil, fmt.Errorf("environment variable %s: %w", envVar, err)
		}
		return s, nil
	}
	return nil, nil
}

// Signer signs outgoing requests.
type Signer struct {
	// Secret is the HMAC key; it must not be empty (ParseSecret and
	// LoadSecret guarantee MinSecretBytes).
	Secret Secret
}

// Sign returns the webhook-signature value for one attempt:
// "v1," + base64(HMAC-SHA256(secret, msgID + "." + unix seconds of ts + "." + body)).
// msgID must not contain "."; Verify rejects such ids, since a dot would
// make the signed content ambiguous.
func (s Signer) Sign(msgID string, ts time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(s.Secret, msgID, ts.Unix(), body))
}

// SignRequest sets the three Standard Webhooks headers on req: msgID as
// webhook-id, now as webhook-timestamp and the signature of body, which
// must be exactly the bytes req sends. Sign every attempt anew with the
// same msgID (the batch's idempotency key) and the attempt's time: the
// spec keeps the id across retries and the timestamp per attempt.
func (s Signer) SignRequest(req *http.Request, msgID string, body []byte, now time.Time) {
	req.Header.Set(HeaderWebhookID, msgID)
	req.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderWebhookSignature, s.Sign(msgID, now, body))
}

func mac(secret []byte, msgID string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	_, _ = io.WriteString(h, msgID)
	_, _ = io.WriteString(h, ".")
	_, _ = io.WriteString(h, strconv.FormatInt(unix, 10))
	_, _ = io.WriteString(h, ".")
	_, _ = h.Write(body)
	return h.Sum(nil)
}

// Verify checks the Standard Webhooks signature of a received request:
// the three headers must be present, webhook-id must not contain ".",
// webhook-timestamp must be within tolerance of now either way
// (DefaultSignatureTolerance when tolerance <= 0), and one of the
// space-separated "v1,<base64>" entries of webhook-signature must match,
// compared in constant time. Entries of other versions (e.g. v1a,
// asymmetric) are skipped. An empty secret verifies nothing. Every error
// wraps ErrInvalidSignature and holds neither the secret nor a signature.
func Verify(secret []byte, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidSignature, fmt.Sprintf(format, args...))
	}
	if len(secret) == 0 {
		return bad("no secret to verify with")
	}
	if tolerance <= 0 {
		tolerance = DefaultSignatureTolerance
	}
	id, tsText, sigs := header.Get(HeaderWebhookID), header.Get(HeaderWebhookTimestamp), header.Get(HeaderWebhookSignature)
	switch {
	case id == "" || tsText == "" || sigs == "":
		return bad("missing %s, %s or %s header", HeaderWebhookID, HeaderWebhookTimestamp, HeaderWebhookSignature)
	case strings.Contains(id, "."):
		return bad("%s must not contain '.'", HeaderWebhookID)
	}
	unix, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return bad("%s is not an integer", HeaderWebhookTimestamp)
	}
	// Compare in whole seconds against bounds computed from now, so that
	// no arithmetic on the untrusted value can overflow.
	tol := int64(tolerance / time.Second)
	switch nowUnix := now.Unix(); {
	case unix < nowUnix-tol:
		return bad("timestamp is more than %s old", tolerance)
	case unix > nowUnix+tol:
		return bad("timestamp is more than %s in the future", tolerance)
	}
	want := []byte(base64.StdEncoding.EncodeToString(mac(secret, id, unix, body)))
	for entry := range strings.FieldsSeq(sigs) {
		version, sig, ok := strings.Cut(entry, ",")
		if ok && version == "v1" && hmac.Equal([]byte(sig), want) {
			return nil
		}
	}
	return bad("no matching v1 signature")
}
