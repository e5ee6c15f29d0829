// Package outbox commits a booking handler's business writes and its outbox
// events in one DynamoDB TransactWriteItems call: both land or neither does,
// and the request returns as soon as DynamoDB commits. The relay (package
// relay) later tails the outbox table's stream and delivers the events.
//
// # Outbox item schema
//
// One item per event in the outbox table (default "Outbox"), whose stream
// must carry NEW_IMAGE:
//
//	event_id        S  partition key; UUIDv7, so ids sort by creation time
//	event_type      S  e.g. "BookingReserved"
//	aggregate_type  S  e.g. "Booking"
//	aggregate_id    S  e.g. the booking id
//	occurred_at     S  RFC 3339 UTC, nine fraction digits (TimeLayout)
//	payload         S  the event's JSON object, stored verbatim
//	status          S  PENDING | DELIVERED | FAILED
//	delivered_at    S  RFC 3339 UTC, set by the relay with status DELIVERED
//	expires_at      N  epoch seconds; the table's TTL attribute, set on delivery
//	                   so delivered events age out (default 7 days)
//	attempts        N  delivery attempts, set by the relay when it fails an event
//	last_error      S  why delivery failed, with status FAILED
//	failed_at       S  RFC 3339 UTC, with status FAILED
//	pending_bucket  S  "p0".."p7", present only while PENDING: the partition
//	                   key of the sparse GSI "pending-index" (sort key
//	                   occurred_at) that the relay's sweeper reads
//	claimed_by      S  the relay whose sweeper is delivering the event
//	claim_expires_at N epoch ms; another relay's sweeper may take it after
//	redriven_at     S  RFC 3339 UTC, set by Redrive (FAILED -> PENDING)
//	replayed_at     S  RFC 3339 UTC, set by Replay (DELIVERED -> PENDING)
//
// Commit writes status PENDING with the condition attribute_not_exists(event_id),
// so an event is never overwritten; the relay moves it to DELIVERED (or
// FAILED) with a conditional update.
package outbox
