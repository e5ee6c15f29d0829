package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/ddboutbox/ddboutbox/outbox"
)

// EncodeRow renders an event as one flat row: the envelope fields
// (event_id, event_type, aggregate_type, aggregate_id, occurred_at in
// RFC 3339 UTC) followed by the payload's fields in key order. A payload
// field named like an envelope field is dropped: the envelope is what
// receivers deduplicate and join on, so it must not be overridable.
func EncodeRow(e outbox.Event) ([]byte, error) {
	if err := outbox.ValidatePayload(e.Payload); err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(e.Payload, &fields); err != nil {
		return nil, fmt.Errorf("decode payload of %s: %w", e.ID, err)
	}
	var buf bytes.Buffer
	buf.Grow(len(e.Payload) + 200)
	buf.WriteByte('{')
	envelope := []struct{ k, v string }{
		{outbox.AttrEventID, e.ID},
		{outbox.AttrEventType, e.Type},
		{outbox.AttrAggregateType, e.AggregateType},
		{outbox.AttrAggregateID, e.AggregateID},
		{outbox.AttrOccurredAt, e.OccurredAt.UTC().Format(time.RFC3339Nano)},
	}
	reserved := make(map[string]bool, len(envelope))
	for i, f := range envelope {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeString(&buf, f.k)
		buf.WriteByte(':')
		writeString(&buf, f.v)
		reserved[f.k] = true
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if !reserved[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		buf.WriteByte(',')
		writeString(&buf, k)
		buf.WriteByte(':')
		if err := json.Compact(&buf, fields[k]); err != nil {
			return nil, fmt.Errorf("compact payload field %q of %s: %w", k, e.ID, err)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func writeString(buf *bytes.Buffer, s string) {
	b, _ := json.Marshal(s) // a string always marshals
	buf.Write(b)
}
