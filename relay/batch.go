package relay

import (
	"bytes"
	"time"
)

// record is one stream record on its way through the relay. Records that
// carry no row (MODIFY, REMOVE, non-outbox items) still travel with the
// batch so that their shard's checkpoint can move past them.
type record struct {
	// shard is nil for events found by the sweeper.
	shard *shardWork
	seq   string
	// eventID is set for outbox INSERT records.
	eventID string
	// row is the encoded row; nil when there is nothing to send.
	row []byte
	// fail is set for an event that can never be delivered (bad payload,
	// row over the byte cap): it is marked FAILED instead of sent.
	fail error
	// shardEnd marks the end of a closed shard, after its last record.
	shardEnd bool
	// attempts is how many POSTs carried the row, for the FAILED mark.
	attempts int
	// occurredAt is the event's time, for the end-to-end lag metric.
	occurredAt time.Time
	// created is the stream record's approximate creation time; zero for
	// swept events and a shard's end.
	created time.Time
	// pendingSince is when the event last became PENDING (outbox.PendingSince),
	// set when MaxRecordAge is: the age limit also holds while it is retried.
	pendingSince time.Time
}

// envelopeSize is the fixed part of a body: "[" "]" or {"rows":[ ]}.
func envelopeSize(f Format) int {
	if f == FormatRows {
		return len(`{"rows":[]}`)
	}
	return len(`[]`)
}

// batcher accumulates records until one of its caps is reached. Like
// kafka-go's Writer it checks the byte cap before appending, so the cap is
// hard: a row that would push the body past it waits for the next batch.
type batcher struct {
	maxRows, maxBytes int
	format            Format

	records []record
	rows    int
	bytes   int // body size with the rows so far, envelope included
}

func newBatcher(maxRows, maxBytes int, format Format) *batcher {
	return &batcher{maxRows: maxRows, maxBytes: maxBytes, format: format, bytes: envelopeSize(format)}
}

// rowCost is what a row adds to the body: itself and a comma unless first.
func (b *batcher) rowCost(row []byte) int {
	if b.rows == 0 {
		return len(row)
	}
	return len(row) + 1
}

// fits reports whether r can join the current batch without breaking a cap.
func (b *batcher) fits(r record) bool {
	if r.row == nil {
		return true
	}
	return b.rows < b.maxRows && b.bytes+b.rowCost(r.row) <= b.maxBytes
}

// add appends r; the caller checked fits. It reports whether the batch is
// now full, i.e. no further row could join it.
func (b *batcher) add(r record) (full bool) {
	if r.row != nil {
		b.bytes += b.rowCost(r.row)
		b.rows++
	}
	b.records = append(b.records, r)
	return b.rows >= b.maxRows || b.bytes >= b.maxBytes
}

func (b *batcher) empty() bool { return len(b.records) == 0 }

// take hands over the accumulated records and resets the batcher.
func (b *batcher) take() []record {
	out := b.records
	b.records = nil
	b.rows = 0
	b.bytes = envelopeSize(b.format)
	return out
}

// encodeBody renders rows as one POST body in the given format.
func encodeBody(format Format, rows [][]byte) []byte {
	size := envelopeSize(format)
	for _, r := range rows {
		size += len(r) + 1
	}
	var buf bytes.Buffer
	buf.Grow(size)
	if format == FormatRows {
		buf.WriteString(`{"rows":`)
	}
	buf.WriteByte('[')
	for i, r := range rows {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(r)
	}
	buf.WriteByte(']')
	if format == FormatRows {
		buf.WriteByte('}')
	}
	return buf.Bytes()
}
