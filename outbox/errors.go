package outbox

import (
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ValidationError means the transaction is invalid: caught before it was
// sent (a field is missing or malformed, a DynamoDB limit would be
// exceeded) or refused by DynamoDB for a reason only it can check (an
// update that would grow an item past 400 KB, a malformed expression).
// Nothing was written, and retrying the same transaction cannot help.
type ValidationError struct {
	Field  string
	Reason string
	// Err is DynamoDB's error when DynamoDB refused the transaction; nil
	// when it was caught before the call.
	Err error
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("outbox: invalid %s: %s", e.Field, e.Reason)
}

// Unwrap returns DynamoDB's error, if any.
func (e *ValidationError) Unwrap() error { return e.Err }

// ConditionFailedError means a condition of the transaction did not hold
// (for example a booking id that already exists), so nothing was written.
// Index is the action's position: the caller's writes first, in order, then
// the events.
type ConditionFailedError struct {
	Index int
	// Table is the target table of the failed action.
	Table string
	// EventID is set when the failed action is an outbox event.
	EventID string
	// Item is the item as it is in the table, when DynamoDB returned it
	// (ReturnValuesOnConditionCheckFailure ALL_OLD on the action).
	Item    map[string]types.AttributeValue
	Message string
	Err     error
}

func (e *ConditionFailedError) Error() string {
	msg := fmt.Sprintf("outbox: condition failed on action %d (table %s)", e.Index, e.Table)
	if e.EventID != "" {
		msg += ", event " + e.EventID
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

func (e *ConditionFailedError) Unwrap() error { return e.Err }

// ErrTransactionConflict means another request was changing one of the
// items at the same time, or a commit with the same idempotency token is
// still in progress; this call wrote nothing and the commit may be retried.
var ErrTransactionConflict = errors.New("outbox: transaction conflict")

// ErrThrottled means DynamoDB refused the transaction for capacity
// (throttled after the SDK's own retries): nothing was written, and the
// commit may be retried later.
var ErrThrottled = errors.New("outbox: throttled by DynamoDB")

// ErrIdempotencyMismatch means the idempotency token was used in the last
// 10 minutes for a transaction with different contents; nothing was written.
var ErrIdempotencyMismatch = errors.New("outbox: idempotency token reused with different contents")
