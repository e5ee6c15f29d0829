package relay

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func rowOf(n int) []byte { return []byte(`{"x":"` + strings.Repeat("a", n-8) + `"}`) }

func TestBatcherFlushTriggers(t *testing.T) {
	tests := []struct {
		name      string
		maxRows   int
		maxBytes  int
		format    Format
		rowSizes  []int
		wantSizes []int // rows per batch, in order, when adding greedily
	}{
		{"row count", 3, 1 << 20, FormatArray, []int{10, 10, 10, 10, 10, 10, 10}, []int{3, 3, 1}},
		// body "[" + 10 + "," + 10 + "]" = 23 bytes; a third row would be 34.
		{"byte cap is hard", 100, 33, FormatArray, []int{10, 10, 10, 10}, []int{2, 2}},
		{"exact fit", 100, 34, FormatArray, []int{10, 10, 10, 10}, []int{3, 1}},
		{"rows envelope counts", 100, 23 + len(`{"rows":}`), FormatRows, []int{10, 10, 10}, []int{2, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBatcher(tt.maxRows, tt.maxBytes, tt.format)
			var got []int
			var bodies [][]byte
			flush := func() {
				recs := b.take()
				rows := make([][]byte, 0, len(recs))
				for _, r := range recs {
					rows = append(rows, r.row)
				}
				got = append(got, len(recs))
				bodies = append(bodies, encodeBody(tt.format, rows))
			}
			for _, n := range tt.rowSizes {
				r := record{row: rowOf(n)}
				if !b.fits(r) {
					flush()
				}
				if b.add(r) {
					flush()
				}
			}
			if !b.empty() {
				flush()
			}
			if len(got) != len(tt.wantSizes) {
				t.Fatalf("batches %v, want %v", got, tt.wantSizes)
			}
			for i := range got {
				if got[i] != tt.wantSizes[i] {
					t.Fatalf("batches %v, want %v", got, tt.wantSizes)
				}
				if len(bodies[i]) > tt.maxBytes {
					t.Fatalf("body %d is %d bytes, cap %d", i, len(bodies[i]), tt.maxBytes)
				}
				if !json.Valid(bodies[i]) {
					t.Fatalf("body %d is not JSON: %s", i, bodies[i])
				}
			}
		})
	}
}

func TestBatcherCountsBodyBytesExactly(t *testing.T) {
	for _, f := range []Format{FormatArray, FormatRows} {
		b := newBatcher(100, 1<<20, f)
		var rows [][]byte
		for _, n := range []int{9, 20, 33} {
			r := rowOf(n)
			rows = append(rows, r)
			b.add(record{row: r})
		}
		if body := encodeBody(f, rows); len(body) != b.bytes {
			t.Fatalf("%s: batcher counted %d bytes, body is %d", f, b.bytes, len(body))
		}
	}
}

func TestBatcherRecordsWithoutRowsDoNotCount(t *testing.T) {
	b := newBatcher(1, 1<<20, FormatArray)
	for range 5 {
		if !b.fits(record{seq: "1"}) || b.add(record{seq: "1"}) {
			t.Fatal("a record without a row filled the batch")
		}
	}
	if !b.add(record{row: rowOf(10)}) {
		t.Fatal("one row with batch size 1 should fill the batch")
	}
	if got := len(b.take()); got != 6 {
		t.Fatalf("took %d records, want 6", got)
	}
}

func TestEncodeBodyFormats(t *testing.T) {
	rows := [][]byte{[]byte(`{"a":1}`), []byte(`{"b":2}`)}
	if got := encodeBody(FormatArray, rows); !bytes.Equal(got, []byte(`[{"a":1},{"b":2}]`)) {
		t.Fatalf("array: %s", got)
	}
	if got := encodeBody(FormatRows, rows); !bytes.Equal(got, []byte(`{"rows":[{"a":1},{"b":2}]}`)) {
		t.Fatalf("rows: %s", got)
	}
}
