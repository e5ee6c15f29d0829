package relay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sink delivers one batch body to the analytics endpoint. A nil error
// means the endpoint accepted every row.
type Sink interface {
	Send(ctx context.Context, body []byte, idempotencyKey string) error
}

// StatusError is a non-2xx answer from the endpoint.
type StatusError struct {
	Code int
	// RetryAfter is the endpoint's Retry-After, 0 when absent.
	RetryAfter time.Duration
	// Body is the start of the response body, for the error message.
	Body string
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("endpoint answered %d", e.Code)
	}
	return fmt.Sprintf("endpoint answered %d: %s", e.Code, e.Body)
}

// HTTPSink POSTs batches as application/json.
type HTTPSink struct {
	URL string
	// Client defaults to a client with no overall timeout: Timeout bounds
	// each request instead. Of its redirects, only those that repeat the
	// POST (307, 308) are followed; see keepPost.
	Client *http.Client
	// Timeout bounds one request, body included.
	Timeout time.Duration
	// Signer, when set, signs each request (Standard Webhooks). The
	// webhook-id is the batch's idempotency key, the same on every retry;
	// the timestamp is fresh per attempt, as the spec asks.
	Signer *Signer
}

var _ Sink = (*HTTPSink)(nil)

// maxErrorBody bounds what is read of an error response for the message;
// maxDrain bounds what is read at all, so a hostile or broken endpoint
// cannot make the relay read forever.
const (
	maxErrorBody = 512
	maxDrain     = 64 << 10
)

// Send POSTs body once. The Idempotency-Key header lets the receiver drop a
// batch it has already accepted.
func (s *HTTPSink) Send(ctx context.Context, body []byte, idempotencyKey string) error {
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}
	// bytes.Reader makes the request replayable: net/http sets GetBody.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request for %s: %w", redactURL(s.URL), stripURL(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", idempotencyKey)
	if s.Signer != nil {
		s.Signer.SignRequest(req, idempotencyKey, body, time.Now())
	}
	client := http.Client{}
	if s.Client != nil {
		client = *s.Client
	}
	client.CheckRedirect = keepPost(client.CheckRedirect)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("post to %s: %w", redactURL(s.URL), stripURL(err))
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	// Draining lets the connection be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	return &StatusError{
		Code:       resp.StatusCode,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Body:       strings.TrimSpace(string(head)),
	}
}

// keepPost follows only the redirects that repeat the POST with its body
// (307, 308). net/http turns a POST answered 301, 302 or 303 into a GET
// without a body, and a 2xx to that GET would mark rows DELIVERED that
// never arrived: the 3xx is returned instead, a misconfigured URL.
func keepPost(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if req.Method != http.MethodPost {
			return http.ErrUseLastResponse
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 { // net/http's own limit
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
}

// stripURL removes the URL net/http puts in its errors: it may hold the
// endpoint's key.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// parseRetryAfter reads both forms of Retry-After (RFC 9110 10.2.3):
// delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// verdict is what the relay does after a failed POST.
type verdict int

const (
	// retryBatch: transient (network, timeout, 408, 429, 5xx); send it
	// again after a backoff. Counts toward MaxAttempts.
	retryBatch verdict = iota
	// splitBatch: the endpoint rejected the rows (400, 422); bisect to
	// isolate the offending rows (Lambda's BisectBatchOnFunctionError).
	splitBatch
	// shrinkBatch: the body was too large (413); split it and lower the
	// byte cap for later batches.
	shrinkBatch
	// misconfigured: 401, 403, 404, 405, 407, and a redirect that would
	// drop the body (301, 302, 303), mean a wrong key or URL, not bad
	// rows. Retried forever without counting, so that a rotated key or a
	// fixed URL resumes delivery with nothing marked FAILED.
	misconfigured
)

func classifySend(err error) verdict {
	var se *StatusError
	if errors.As(err, &se) {
		switch se.Code {
		case http.StatusBadRequest, http.StatusUnprocessableEntity:
			return splitBatch
		case http.StatusRequestEntityTooLarge:
			return shrinkBatch
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
			http.StatusMethodNotAllowed, http.StatusProxyAuthRequired,
			http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther:
			return misconfigured
		}
	}
	// Everything else is retried: failing rows for an unknown answer
	// would lose them.
	return retryBatch
}

func retryAfterOf(err error) time.Duration {
	var se *StatusError
	if errors.As(err, &se) {
		return se.RetryAfter
	}
	return 0
}

// idempotencyKey is stable for the same set of events, so every retry of a
// batch carries the same key, and differs for each half of a split batch.
func idempotencyKey(recs []*record) string {
	h := sha256.New()
	for _, r := range recs {
		h.Write([]byte(r.eventID))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
