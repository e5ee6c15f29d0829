package relay

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/ddboutbox/ddboutbox/outbox"
)

func testEvent(payload string) outbox.Event {
	return outbox.Event{
		ID: "0190a0b0-0000-7000-8000-000000000001", Type: "BookingReserved",
		AggregateType: "Booking", AggregateID: "b-1",
		OccurredAt: time.Date(2026, 11, 25, 10, 0, 0, 123000000, time.FixedZone("CET", 3600)),
		Payload:    json.RawMessage(payload),
	}
}

func TestEncodeRow(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    string
		wantErr bool
	}{
		{"payload fields at top level in key order", `{"z":1,"user_id":"u-1","nested":{"a":[1, 2]}}`,
			`{"event_id":"0190a0b0-0000-7000-8000-000000000001","event_type":"BookingReserved","aggregate_type":"Booking","aggregate_id":"b-1","occurred_at":"2026-11-25T09:00:00.123Z","nested":{"a":[1,2]},"user_id":"u-1","z":1}`, false},
		{"envelope wins over payload fields", `{"event_id":"forged","x":true}`,
			`{"event_id":"0190a0b0-0000-7000-8000-000000000001","event_type":"BookingReserved","aggregate_type":"Booking","aggregate_id":"b-1","occurred_at":"2026-11-25T09:00:00.123Z","x":true}`, false},
		{"big numbers keep their digits", `{"n":12345678901234567890}`,
			`{"event_id":"0190a0b0-0000-7000-8000-000000000001","event_type":"BookingReserved","aggregate_type":"Booking","aggregate_id":"b-1","occurred_at":"2026-11-25T09:00:00.123Z","n":12345678901234567890}`, false},
		{"empty object", `{}`,
			`{"event_id":"0190a0b0-0000-7000-8000-000000000001","event_type":"BookingReserved","aggregate_type":"Booking","aggregate_id":"b-1","occurred_at":"2026-11-25T09:00:00.123Z"}`, false},
		{"array payload", `[1,2]`, "", true},
		{"string payload", `"x"`, "", true},
		{"broken json", `{"a":`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeRow(testEvent(tt.payload))
			if tt.wantErr {
				var ve *outbox.ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("got %v, want a validation error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func streamImage(status, payload string) map[string]streamtypes.AttributeValue {
	return map[string]streamtypes.AttributeValue{
		"event_id":       &streamtypes.AttributeValueMemberS{Value: "e-1"},
		"event_type":     &streamtypes.AttributeValueMemberS{Value: "T"},
		"aggregate_type": &streamtypes.AttributeValueMemberS{Value: "A"},
		"aggregate_id":   &streamtypes.AttributeValueMemberS{Value: "a-1"},
		"occurred_at":    &streamtypes.AttributeValueMemberS{Value: "2026-11-25T09:00:00Z"},
		"payload":        &streamtypes.AttributeValueMemberS{Value: payload},
		"status":         &streamtypes.AttributeValueMemberS{Value: status},
	}
}

// withAttr sets a string attribute on a stream image.
func withAttr(img map[string]streamtypes.AttributeValue, name, value string) map[string]streamtypes.AttributeValue {
	img[name] = &streamtypes.AttributeValueMemberS{Value: value}
	return img
}

func TestClassifyRecord(t *testing.T) {
	rec := func(op streamtypes.OperationType, img map[string]streamtypes.AttributeValue) streamtypes.Record {
		return streamtypes.Record{EventName: op, Dynamodb: &streamtypes.StreamRecord{SequenceNumber: aws.String("100"), NewImage: img}}
	}
	tests := []struct {
		name     string
		rec      streamtypes.Record
		maxBytes int
		maxAge   time.Duration
		wantRow  bool
		wantID   string
		wantFail error // nil: no failure
	}{
		{"insert of a pending event is sent", rec(streamtypes.OperationTypeInsert, streamImage("PENDING", `{"a":1}`)), 1 << 20, 0, true, "e-1", nil},
		{"modify is skipped", rec(streamtypes.OperationTypeModify, streamImage("DELIVERED", `{"a":1}`)), 1 << 20, 0, false, "", nil},
		{"modify of a pending event is skipped", rec(streamtypes.OperationTypeModify, streamImage("PENDING", `{"a":1}`)), 1 << 20, 0, false, "", nil},
		{"remove is skipped", rec(streamtypes.OperationTypeRemove, nil), 1 << 20, 0, false, "", nil},
		{"insert already delivered is skipped", rec(streamtypes.OperationTypeInsert, streamImage("DELIVERED", `{"a":1}`)), 1 << 20, 0, false, "", nil},
		{"insert of a non-outbox item is skipped", rec(streamtypes.OperationTypeInsert, map[string]streamtypes.AttributeValue{"pk": &streamtypes.AttributeValueMemberS{Value: "x"}}), 1 << 20, 0, false, "", nil},
		{"payload not an object fails the event", rec(streamtypes.OperationTypeInsert, streamImage("PENDING", `[1]`)), 1 << 20, 0, false, "e-1", &outbox.ValidationError{}},
		{"row over the byte cap fails the event", rec(streamtypes.OperationTypeInsert, streamImage("PENDING", `{"a":"`+strings.Repeat("x", 200)+`"}`)), 100, 0, false, "e-1", ErrRowTooLarge},
		{"event older than max-record-age fails", rec(streamtypes.OperationTypeInsert, streamImage("PENDING", `{"a":1}`)), 1 << 20, 5 * time.Minute, false, "e-1", ErrRecordTooOld},
		{"event within max-record-age is sent", rec(streamtypes.OperationTypeInsert, streamImage("PENDING", `{"a":1}`)), 1 << 20, 15 * time.Minute, true, "e-1", nil},
		// Occurred 10 minutes before now; a redrive or replay is a new start.
		{"event redriven within max-record-age is sent", rec(streamtypes.OperationTypeInsert, withAttr(streamImage("PENDING", `{"a":1}`), outbox.AttrRedrivenAt, "2026-11-25T09:08:00Z")), 1 << 20, 5 * time.Minute, true, "e-1", nil},
		{"event replayed within max-record-age is sent", rec(streamtypes.OperationTypeInsert, withAttr(streamImage("PENDING", `{"a":1}`), outbox.AttrReplayedAt, "2026-11-25T09:09:59.5Z")), 1 << 20, 5 * time.Minute, true, "e-1", nil},
		{"latest of redrive and replay counts", rec(streamtypes.OperationTypeInsert, withAttr(withAttr(streamImage("PENDING", `{"a":1}`), outbox.AttrRedrivenAt, "2026-11-25T09:08:00Z"), outbox.AttrReplayedAt, "2026-11-25T09:01:00Z")), 1 << 20, 5 * time.Minute, true, "e-1", nil},
		{"event redriven longer ago than max-record-age fails", rec(streamtypes.OperationTypeInsert, withAttr(streamImage("PENDING", `{"a":1}`), outbox.AttrRedrivenAt, "2026-11-25T09:04:00Z")), 1 << 20, 5 * time.Minute, false, "e-1", ErrRecordTooOld},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classifyRecord(tt.rec, rowRules{format: FormatArray, maxBytes: tt.maxBytes, maxAge: tt.maxAge, now: time.Date(2026, 11, 25, 9, 10, 0, 0, time.UTC)})
			if got.seq != "100" {
				t.Fatalf("seq %q, want 100: every record moves the checkpoint", got.seq)
			}
			if (got.row != nil) != tt.wantRow || got.eventID != tt.wantID {
				t.Fatalf("row %s id %q; want row=%v id %q", got.row, got.eventID, tt.wantRow, tt.wantID)
			}
			switch want := tt.wantFail.(type) {
			case nil:
				if got.fail != nil {
					t.Fatalf("unexpected failure %v", got.fail)
				}
			case *outbox.ValidationError:
				var ve *outbox.ValidationError
				if !errors.As(got.fail, &ve) {
					t.Fatalf("fail %v, want a validation error", got.fail)
				}
			default:
				if !errors.Is(got.fail, want) {
					t.Fatalf("fail %v, want %v", got.fail, want)
				}
			}
		})
	}
}
