package outbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Status is the delivery state of an outbox item.
type Status string

// The outbox item states. An event is written PENDING; the relay moves it to
// DELIVERED after the endpoint accepted it, or to FAILED when it cannot be
// delivered (a poison row).
const (
	StatusPending   Status = "PENDING"
	StatusDelivered Status = "DELIVERED"
	StatusFailed    Status = "FAILED"
)

// Attribute names of the outbox item (see the package doc).
const (
	AttrEventID       = "event_id"
	AttrEventType     = "event_type"
	AttrAggregateType = "aggregate_type"
	AttrAggregateID   = "aggregate_id"
	AttrOccurredAt    = "occurred_at"
	AttrPayload       = "payload"
	AttrStatus        = "status"
	AttrDeliveredAt   = "delivered_at"
	AttrExpiresAt     = "expires_at"
	AttrAttempts      = "attempts"
	AttrLastError     = "last_error"
	AttrFailedAt      = "failed_at"
	// AttrPendingBucket exists only while an event is PENDING, which makes
	// PendingIndex a sparse index of exactly the undelivered events.
	AttrPendingBucket = "pending_bucket"
	// AttrClaimedBy and AttrClaimExpiresAt are the relay sweeper's claim
	// on a PENDING event (see package relay).
	AttrClaimedBy      = "claimed_by"
	AttrClaimExpiresAt = "claim_expires_at"
)

// PendingIndex is the outbox table's sparse GSI of PENDING events:
// partition key pending_bucket, sort key occurred_at. The relay's sweeper
// queries it for events the stream path missed.
const PendingIndex = "pending-index"

// PendingBuckets spreads the index over this many partition key values so
// that a high write rate does not make one index partition hot.
const PendingBuckets = 8

// PendingBucket is the index partition of an event.
func PendingBucket(eventID string) string {
	h := fnv.New32a()
	h.Write([]byte(eventID))
	return "p" + strconv.Itoa(int(h.Sum32()%PendingBuckets))
}

// AllPendingBuckets lists every PendingIndex partition key value.
func AllPendingBuckets() []string {
	out := make([]string, PendingBuckets)
	for i := range out {
		out[i] = "p" + strconv.Itoa(i)
	}
	return out
}

// Event is a fact a handler wants the analytics endpoint to learn about.
type Event struct {
	// ID is unique and sorts by creation time (UUIDv7).
	ID            string
	Type          string
	AggregateType string
	AggregateID   string
	// OccurredAt is stored in UTC.
	OccurredAt time.Time
	// Payload must be a JSON object; its fields become top-level fields of
	// the row the relay sends.
	Payload json.RawMessage
}

// TimeLayout is how occurred_at is stored in the outbox table (rows sent to
// the endpoint keep time.RFC3339Nano): RFC 3339 in UTC with all nine
// fraction digits. time.RFC3339Nano drops trailing zeros, and
// then string order, which the pending index and the sweeper's cutoff go
// by, is not time order within a second ("…18Z" sorts after "…18.5Z").
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// FormatTime formats t in UTC with TimeLayout.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// NewEvent builds an event with a fresh UUIDv7 id, occurring now. payload is
// a json.RawMessage or []byte holding a JSON object, or any value that
// encoding/json marshals to an object (a struct or a map).
func NewEvent(eventType, aggregateType, aggregateID string, payload any) (Event, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Event{}, fmt.Errorf("new event id: %w", err)
	}
	var raw json.RawMessage
	switch p := payload.(type) {
	case json.RawMessage:
		raw = p
	case []byte:
		raw = p
	default:
		if raw, err = json.Marshal(payload); err != nil {
			return Event{}, &ValidationError{Field: AttrPayload, Reason: err.Error()}
		}
	}
	e := Event{
		ID:            id.String(),
		Type:          eventType,
		AggregateType: aggregateType,
		AggregateID:   aggregateID,
		OccurredAt:    time.Now().UTC(),
		Payload:       raw,
	}
	return e, e.Validate()
}

// Validate reports the first missing or malformed field as a *ValidationError.
func (e Event) Validate() error {
	for _, f := range []struct{ name, value string }{
		{AttrEventID, e.ID}, {AttrEventType, e.Type},
		{AttrAggregateType, e.AggregateType}, {AttrAggregateID, e.AggregateID},
	} {
		if f.value == "" {
			return &ValidationError{Field: f.name, Reason: "must not be empty"}
		}
		if !utf8.ValidString(f.value) {
			return &ValidationError{Field: f.name, Reason: "must be valid UTF-8"}
		}
	}
	if e.OccurredAt.IsZero() {
		return &ValidationError{Field: AttrOccurredAt, Reason: "must be set"}
	}
	if err := ValidatePayload(e.Payload); err != nil {
		return err
	}
	if k, ok := duplicateKey(e.Payload); ok {
		return &ValidationError{Field: AttrPayload, Reason: fmt.Sprintf("has the key %q twice", k)}
	}
	return nil
}

// duplicateKey reports a key that the JSON object p has twice at its top
// level, where keys become a row's columns: decoders keep one of the two
// values (encoding/json the last), so the row would silently lose the
// other. It is checked when an event is written, not by the relay, which
// delivers events stored before the check as it always did. p must be
// valid JSON (see ValidatePayload).
func duplicateKey(p []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(p))
	if _, err := dec.Token(); err != nil { // {
		return "", false
	}
	seen := make(map[string]bool)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "", false
		}
		k, _ := t.(string)
		if seen[k] {
			return k, true
		}
		seen[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "", false
		}
	}
	return "", false
}

// ValidatePayload checks that p is one JSON object, the only payload shape
// that can be flattened into a row, in valid UTF-8: json.Valid lets
// invalid bytes through, which DynamoDB would store as U+FFFD (three bytes
// each, so the item would also outgrow its size check) instead of the
// payload as given.
func ValidatePayload(p []byte) error {
	p = bytes.TrimSpace(p)
	if len(p) == 0 || p[0] != '{' || !json.Valid(p) {
		return &ValidationError{Field: AttrPayload, Reason: "must be a JSON object"}
	}
	if !utf8.Valid(p) {
		return &ValidationError{Field: AttrPayload, Reason: "must be valid UTF-8"}
	}
	return nil
}
