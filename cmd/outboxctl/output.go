package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/ddboutbox/ddboutbox/outbox"
)

// maxCell bounds a free-text cell (a payload, an error) in table output,
// so that one large payload does not push every other column off screen;
// -o json prints them whole.
const maxCell = 120

// tableTime is the time layout of table output: fixed width, milliseconds.
const tableTime = "2006-01-02T15:04:05.000Z07:00"

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

// row writes one tab-separated row of cells.
func row(w io.Writer, cells ...string) {
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// cell makes s safe for one table cell: control characters (a tab would
// split the cell, a newline the row) become spaces, and it is cut to
// limit runes.
func cell(s string, limit int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	r := []rune(s)
	return string(r[:limit-1]) + "…"
}

// payloadCell is the payload on one line: compacted when it is JSON.
func payloadCell(p []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, p) == nil {
		p = buf.Bytes()
	}
	return cell(string(p), maxCell)
}

func timeCell(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(tableTime)
}

// writeRecords prints events: a table, or one JSON array.
func writeRecords(w io.Writer, f format, recs []outbox.Record) error {
	if f == formatJSON {
		if recs == nil {
			recs = []outbox.Record{} // [] rather than null
		}
		return writeJSON(w, recs)
	}
	tw := newTable(w)
	row(tw, "EVENT ID", "EVENT TYPE", "OCCURRED AT", "STATUS", "ATTEMPTS", "LAST ERROR", "PAYLOAD")
	for _, r := range recs {
		lastErr := "-"
		if r.LastError != "" {
			lastErr = cell(r.LastError, maxCell)
		}
		row(tw, r.ID, cell(r.Type, maxCell), timeCell(r.OccurredAt), string(r.Status),
			fmt.Sprint(r.Attempts), lastErr, payloadCell(r.Payload))
	}
	return tw.Flush()
}

// writeMoved reports how many events a redrive or replay moved.
func writeMoved(w io.Writer, f format, verb string, n int) error {
	if f == formatJSON {
		return writeJSON(w, map[string]int{verb: n})
	}
	if n == 0 {
		_, err := fmt.Fprintf(w, "%s 0 events\n", verb)
		return err
	}
	_, err := fmt.Fprintf(w, "%s %d event(s); the relay's sweeper delivers them within its sweep interval\n", verb, n)
	return err
}

// partial adds to a redrive or replay error how many events had moved:
// they stay moved, and running the command again moves only the rest.
func partial(err error, moved int) error {
	if moved == 0 {
		return err
	}
	return fmt.Errorf("%w (%d event(s) were moved before the error; running the command again moves the rest)", err, moved)
}
