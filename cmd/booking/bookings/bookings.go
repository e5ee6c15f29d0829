// Package bookings is the example booking service: an HTTP API that reserves
// a booking and, in the same DynamoDB transaction, records a BookingReserved
// outbox event, so the event exists if and only if the booking does.
//
// # Endpoints
//
//	POST /bookings        {"user_id","session_id"} -> 201 {"booking_id","status"}
//	GET  /bookings/{id}   -> 200 Booking | 404
//	GET  /healthz         -> 200 {"status":"ok"}
//
// Every response, errors included, is JSON: {"error":"..."} on failure.
//
// # Status codes of POST /bookings
//
//	201  created, or replayed (with Idempotent-Replayed: true)
//	400  malformed JSON, unknown, duplicate or miscased keys, missing or
//	     over-long fields, bad Idempotency-Key
//	409  the generated booking id already exists
//	413  body over MaxBodyBytes
//	422  Idempotency-Key already used with a different request
//	503  transaction conflict with a concurrent request; Retry-After: 1
//	500  anything else; the cause is logged, never sent
//
// A conflict is 503 rather than 409 because nothing is wrong with the
// request: the same request, retried, succeeds (or replays), and generic
// HTTP clients retry a 503 with Retry-After but not a 409.
//
// # Idempotency
//
// A POST may carry an Idempotency-Key header. The transaction then also puts
// an idempotency record into the bookings table, keyed "idem#" +
// hex(sha256(key)), holding the booking id and a hash of the request. A
// retry finds the record (or, racing the first request, fails on its
// condition) and gets the first response again instead of a second booking
// and event. The key is deliberately not the transaction's
// ClientRequestToken: a retry builds a new booking id, so DynamoDB would
// answer IdempotentParameterMismatch instead of replaying, and it forgets
// tokens after 10 minutes. Records do not expire.
package bookings

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/uuid"

	"github.com/ddboutbox/ddboutbox/dynamo"
	"github.com/ddboutbox/ddboutbox/outbox"
)

// Names the service writes into items and events.
const (
	StatusReserved       = "RESERVED"
	EventBookingReserved = "BookingReserved"
	AggregateBooking     = "Booking"
)

// Request limits. The field cap keeps every item far below DynamoDB's
// 400 KB item limit, so outbox.Writer's size checks never reject a request
// that passed validation.
const (
	MaxBodyBytes            = 64 << 10
	MaxFieldLength          = 256 // characters
	MaxIdempotencyKeyLength = 255 // bytes
)

// Headers of the idempotency protocol.
const (
	IdempotencyKeyHeader = "Idempotency-Key"
	ReplayedHeader       = "Idempotent-Replayed"
)

// idemPrefix marks idempotency records, which share the bookings table's key
// space with bookings; GET never serves them.
const idemPrefix = "idem#"

// maxKeyBytes is DynamoDB's limit on a partition key value; a longer id
// cannot name an item, so GET answers 404 instead of sending it.
const maxKeyBytes = 2048

// DB is the part of the DynamoDB client the service needs;
// *dynamodb.Client implements it.
type DB interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

var _ DB = (*dynamodb.Client)(nil)

// Service configures the booking API. DB must be set; every other field has
// a working zero value. Handler reads the fields once, so changing them
// afterwards has no effect on a handler already built.
type Service struct {
	DB DB
	// BookingsTable holds bookings and idempotency records, keyed by
	// booking_id. Default "Bookings".
	BookingsTable string
	// OutboxTable receives the events. Default "Outbox".
	OutboxTable string
	// NewID returns a fresh booking id. Default: a UUIDv7 string, so ids
	// sort by creation time.
	NewID func() string
	// Now is the clock for created_at and the event's occurred_at.
	// Default time.Now.
	Now func() time.Time
	// Logger receives server-side errors, which clients only see as
	// "internal error". Default slog.Default().
	Logger *slog.Logger
}

// Booking is a booking as stored in the bookings table and as GET returns it.
type Booking struct {
	BookingID string `json:"booking_id" dynamodbav:"booking_id"`
	UserID    string `json:"user_id" dynamodbav:"user_id"`
	SessionID string `json:"session_id" dynamodbav:"session_id"`
	Status    string `json:"status" dynamodbav:"status"`
	// CreatedAt is RFC 3339 UTC with nanoseconds.
	CreatedAt string `json:"created_at" dynamodbav:"created_at"`
}

// idemRecord is the stored idempotency record; see the package doc.
type idemRecord struct {
	ID           string `dynamodbav:"booking_id"`
	RefBookingID string `dynamodbav:"ref_booking_id"`
	RequestHash  string `dynamodbav:"request_hash"`
	CreatedAt    string `dynamodbav:"created_at"`
}

type createRequest struct {
	UserID    string `json:"user_id"`
	SessionID string `json:"session_id"`
}

type createResponse struct {
	BookingID string `json:"booking_id"`
	Status    string `json:"status"`
}

// reservedPayload is the BookingReserved event's payload.
type reservedPayload struct {
	BookingID string `json:"booking_id"`
	UserID    string `json:"user_id"`
	SessionID string `json:"session_id"`
	Status    string `json:"status"`
}

// handler is a Service with its defaults resolved.
type handler struct {
	db       DB
	writer   *outbox.Writer
	bookings string
	newID    func() string
	now      func() time.Time
	log      *slog.Logger
}

// ErrNotReady is wrapped by every error Ready returns.
var ErrNotReady = errors.New("booking service not ready")

// Ready reports whether bookings can be taken: DynamoDB answers and the
// outbox table's stream is enabled (events committed without one reach
// the endpoint only through the relay's sweeper). Its error is for the
// service's own clients, on its public port: it says which of the two
// failed; the DynamoDB error behind it (request ids, ARNs with the account
// number) is logged, never returned.
func (s *Service) Ready(ctx context.Context, db dynamo.DescribeTableAPI) error {
	_, err := dynamo.StreamARN(ctx, db, s.outboxTable())
	switch {
	case err == nil:
		return nil
	case errors.Is(err, dynamo.ErrNoStream):
		return fmt.Errorf("%w: the outbox table's stream is missing or disabled", ErrNotReady)
	}
	s.logger().Warn("readiness: DynamoDB does not answer", "err", err)
	return fmt.Errorf("%w: DynamoDB does not answer", ErrNotReady)
}

func (s *Service) outboxTable() string { return cmp.Or(s.OutboxTable, dynamo.DefaultOutboxTable) }

func (s *Service) logger() *slog.Logger { return cmp.Or(s.Logger, slog.Default()) }

// Handler returns the API's routes. It panics if DB is nil, a wiring
// mistake that should stop the program at start-up rather than fail
// every request.
func (s *Service) Handler() http.Handler {
	if s.DB == nil {
		panic("bookings: Service.DB is nil")
	}
	h := &handler{
		db:       s.DB,
		writer:   &outbox.Writer{DB: s.DB, Table: s.outboxTable()},
		bookings: cmp.Or(s.BookingsTable, dynamo.DefaultBookingsTable),
		newID:    s.NewID,
		now:      s.Now,
		log:      s.logger(),
	}
	if h.newID == nil {
		// uuid.NewV7 fails only if crypto/rand does, which since Go 1.24
		// crashes the program instead of returning an error.
		h.newID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	if h.now == nil {
		h.now = time.Now
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /bookings", h.create)
	mux.HandleFunc("GET /bookings/{id}", h.get)
	mux.HandleFunc("GET /healthz", h.health)
	// ServeMux's own 404 and 405 answers are text/plain; these method-less
	// patterns are less specific than the ones above, so they only catch
	// what those do not, and keep every response JSON.
	mux.HandleFunc("/bookings", methodNotAllowed(http.MethodPost))
	mux.HandleFunc("/bookings/{id}", methodNotAllowed(http.MethodGet, http.MethodHead))
	mux.HandleFunc("/healthz", methodNotAllowed(http.MethodGet, http.MethodHead))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not found")
	})
	return mux
}

func (h *handler) create(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	key, hasKey, rerr := idempotencyKey(r.Header)
	var req createRequest
	if rerr == nil {
		req, rerr = decodeCreate(w, r)
	}
	if rerr != nil {
		writeError(w, rerr.status, rerr.msg)
		return
	}
	hash := requestHash(req)
	var idemID string
	if hasKey {
		idemID = idemRecordID(key)
		rec, found, err := h.readIdem(ctx, idemID)
		if err != nil {
			h.internal(w, r, err)
			return
		}
		if found {
			h.replay(w, r, rec, hash)
			return
		}
	}

	now := h.now().UTC()
	b := Booking{
		BookingID: h.newID(),
		UserID:    req.UserID,
		SessionID: req.SessionID,
		Status:    StatusReserved,
		CreatedAt: now.Format(time.RFC3339Nano),
	}
	tx, err := h.reservation(b, now, idemID, hash)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	err = h.writer.Commit(ctx, tx)
	var cf *outbox.ConditionFailedError
	switch {
	case err == nil:
		writeJSON(w, http.StatusCreated, createResponse{BookingID: b.BookingID, Status: b.Status})
	case errors.As(err, &cf) && hasKey && cf.Index == 0:
		h.replayWinner(w, r, cf, idemID, hash)
	case errors.As(err, &cf) && cf.Index == len(tx.Writes)-1:
		writeError(w, http.StatusConflict, fmt.Sprintf("booking %s already exists", b.BookingID))
	case errors.Is(err, outbox.ErrTransactionConflict):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "a concurrent request touched the same items; retry the request")
	case errors.Is(err, outbox.ErrThrottled):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the database is over its capacity; retry the request")
	default:
		h.internal(w, r, fmt.Errorf("commit booking %s: %w", b.BookingID, err))
	}
}

// reservation is the transaction that reserves b: the idempotency record
// (when idemID is set) first, the booking last among the writes, then the
// BookingReserved event. The record goes first because outbox reports the
// first failed action: when a retry with an injected, repeated booking id
// fails both conditions, a replay is the right answer to a retry.
func (h *handler) reservation(b Booking, now time.Time, idemID, hash string) (outbox.Tx, error) {
	if b.BookingID == "" || strings.HasPrefix(b.BookingID, idemPrefix) {
		return outbox.Tx{}, fmt.Errorf("new booking id %q is empty or reserved", b.BookingID)
	}
	ev, err := NewReservedEvent(b, now)
	if err != nil {
		return outbox.Tx{}, err
	}
	tx := outbox.Tx{Events: []outbox.Event{ev}}
	if idemID != "" {
		put, err := h.putNew(idemRecord{ID: idemID, RefBookingID: b.BookingID, RequestHash: hash, CreatedAt: b.CreatedAt})
		if err != nil {
			return outbox.Tx{}, err
		}
		// ALL_OLD hands back the winner's record on a lost race, saving a read.
		put.Put.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
		tx.Writes = append(tx.Writes, put)
	}
	put, err := h.putNew(b)
	if err != nil {
		return outbox.Tx{}, err
	}
	tx.Writes = append(tx.Writes, put)
	return tx, nil
}

// putNew builds a Put of v into the bookings table that fails if the key
// is taken, so nothing is ever overwritten.
func (h *handler) putNew(v any) (types.TransactWriteItem, error) {
	put, err := PutNew(h.bookings, v)
	return types.TransactWriteItem{Put: put}, err
}

// PutNew is the Put of v (a Booking, or an idempotency record) into the
// bookings table that fails if an item with its key exists.
func PutNew(table string, v any) (*types.Put, error) {
	item, err := attributevalue.MarshalMap(v)
	if err != nil {
		return nil, fmt.Errorf("encode item: %w", err)
	}
	return &types.Put{
		TableName:                aws.String(table),
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": dynamo.BookingsKey},
	}, nil
}

// NewReservedEvent is b's BookingReserved event, occurring at now: one
// clock for the booking and its event.
func NewReservedEvent(b Booking, now time.Time) (outbox.Event, error) {
	ev, err := outbox.NewEvent(EventBookingReserved, AggregateBooking, b.BookingID, reservedPayload{
		BookingID: b.BookingID, UserID: b.UserID, SessionID: b.SessionID, Status: b.Status,
	})
	if err != nil {
		return ev, fmt.Errorf("new event: %w", err)
	}
	ev.OccurredAt = now
	return ev, nil
}

// replayWinner answers a request whose idempotency record lost the race to
// a concurrent request with the same key, taking the winner's record from
// the cancellation reason when DynamoDB returned it, else reading it.
func (h *handler) replayWinner(w http.ResponseWriter, r *http.Request, cf *outbox.ConditionFailedError, id, hash string) {
	var rec idemRecord
	if len(cf.Item) > 0 && attributevalue.UnmarshalMap(cf.Item, &rec) == nil && rec.RefBookingID != "" {
		h.replay(w, r, rec, hash)
		return
	}
	rec, found, err := h.readIdem(r.Context(), id)
	switch {
	case err != nil:
		h.internal(w, r, err)
	case !found:
		// The condition saw the record, so a consistent read must too,
		// unless someone deleted it in between.
		h.internal(w, r, fmt.Errorf("idempotency record %s vanished after its condition failed", id))
	default:
		h.replay(w, r, rec, hash)
	}
}

func (h *handler) readIdem(ctx context.Context, id string) (idemRecord, bool, error) {
	var rec idemRecord
	found, err := h.getItem(ctx, id, &rec)
	if err != nil {
		return rec, false, fmt.Errorf("read idempotency record: %w", err)
	}
	return rec, found, nil
}

// getItem reads one item of the bookings table into v. The read is
// consistent so a retry, or a GET, right after a commit sees it.
func (h *handler) getItem(ctx context.Context, id string, v any) (bool, error) {
	out, err := h.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(h.bookings),
		Key:            map[string]types.AttributeValue{dynamo.BookingsKey: &types.AttributeValueMemberS{Value: id}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return false, fmt.Errorf("get %s: %w", id, err)
	}
	if len(out.Item) == 0 {
		return false, nil
	}
	if err := attributevalue.UnmarshalMap(out.Item, v); err != nil {
		return false, fmt.Errorf("decode %s: %w", id, err)
	}
	return true, nil
}

// replay answers a retry with the first request's response.
func (h *handler) replay(w http.ResponseWriter, r *http.Request, rec idemRecord, hash string) {
	if rec.RequestHash != hash {
		writeError(w, http.StatusUnprocessableEntity, "idempotency key reused with a different request")
		return
	}
	if rec.RefBookingID == "" {
		h.internal(w, r, fmt.Errorf("idempotency record %s has no ref_booking_id", rec.ID))
		return
	}
	w.Header().Set(ReplayedHeader, "true")
	writeJSON(w, http.StatusCreated, createResponse{BookingID: rec.RefBookingID, Status: StatusReserved})
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if strings.HasPrefix(id, idemPrefix) || len(id) > maxKeyBytes {
		writeError(w, http.StatusNotFound, "booking not found")
		return
	}
	var b Booking
	found, err := h.getItem(r.Context(), id, &b)
	switch {
	case err != nil:
		h.internal(w, r, fmt.Errorf("read booking: %w", err))
	case !found:
		writeError(w, http.StatusNotFound, "booking not found")
	default:
		writeJSON(w, http.StatusOK, b)
	}
}

// health reports liveness only: a DynamoDB outage should fail requests,
// not get the process restarted.
func (h *handler) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *handler) internal(w http.ResponseWriter, r *http.Request, err error) {
	h.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error")
}

func methodNotAllowed(methods ...string) http.HandlerFunc {
	allow := strings.Join(methods, ", ")
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

// idempotencyKey returns the request's Idempotency-Key, if it has one.
func idempotencyKey(hdr http.Header) (string, bool, *requestError) {
	vals := hdr.Values(IdempotencyKeyHeader)
	switch {
	case len(vals) == 0:
		return "", false, nil
	case len(vals) > 1:
		return "", false, badRequest("only one %s header is allowed", IdempotencyKeyHeader)
	case vals[0] == "" || len(vals[0]) > MaxIdempotencyKeyLength:
		return "", false, badRequest("%s must be 1 to %d bytes", IdempotencyKeyHeader, MaxIdempotencyKeyLength)
	}
	return vals[0], true, nil
}

// idemRecordID hashes the key so that any client string, whatever its
// bytes, becomes a short key that cannot collide with a booking id.
func idemRecordID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return idemPrefix + hex.EncodeToString(sum[:])
}

// requestHash identifies a request's content. Encoding the fields as a JSON
// array keeps ("ab","c") and ("a","bc") apart.
func requestHash(req createRequest) string {
	b, _ := json.Marshal([]string{req.UserID, req.SessionID}) // strings always marshal
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// requestError is a client mistake, answered with status and msg.
type requestError struct {
	status int
	msg    string
}

func badRequest(format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// decodeCreate reads exactly one JSON object with known fields from the
// body and validates it.
func decodeCreate(w http.ResponseWriter, r *http.Request) (createRequest, *requestError) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var req createRequest
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return req, decodeError(err)
	}
	if err := checkKeys(raw); err != nil {
		return req, err
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		return req, decodeError(err)
	}
	// Decode stops after the first value; anything but whitespace after it
	// means the client sent something other than what it thinks.
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return req, decodeError(err)
		}
		return req, badRequest("request body must hold a single JSON object")
	}
	for _, f := range []struct{ name, value string }{
		{"user_id", req.UserID}, {"session_id", req.SessionID},
	} {
		if strings.TrimSpace(f.value) == "" {
			return req, badRequest("%s is required", f.name)
		}
		if utf8.RuneCountInString(f.value) > MaxFieldLength {
			return req, badRequest("%s must be at most %d characters", f.name, MaxFieldLength)
		}
	}
	return req, nil
}

// checkKeys rejects what encoding/json lets through: it matches keys
// case-insensitively and keeps the last of duplicate keys, so
// {"USER_ID":"u"} or {"user_id":"u","USER_ID":"x"} would be accepted. raw
// is one syntactically valid JSON value; anything but an object is left
// for the decoder to report.
func checkKeys(raw json.RawMessage) *requestError {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := tok.(string)
		switch {
		case key != "user_id" && key != "session_id":
			return badRequest("unknown field %q", key)
		case seen[key]:
			return badRequest("duplicate field %q", key)
		}
		seen[key] = true
		if err := dec.Decode(&json.RawMessage{}); err != nil {
			return nil
		}
	}
	return nil
}

func decodeError(err error) *requestError {
	var (
		tooBig    *http.MaxBytesError
		syntax    *json.SyntaxError
		wrongType *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooBig):
		return &requestError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body exceeds %d bytes", tooBig.Limit)}
	case errors.Is(err, io.EOF):
		return badRequest("request body is empty")
	case errors.As(err, &syntax):
		return badRequest("malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &wrongType) && wrongType.Field != "":
		return badRequest("%s must be a string", wrongType.Field)
	case errors.As(err, &wrongType):
		return badRequest("request body must be a JSON object")
	}
	return badRequest("malformed JSON")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status line is out; a failed write means the client went away.
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
