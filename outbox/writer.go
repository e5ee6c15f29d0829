package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoDB's TransactWriteItems limits, checked before calling it so the
// caller gets a clear error instead of a generic ValidationException.
const (
	MaxItemBytes        = 400 * 1024
	MaxActions          = 100
	MaxTransactionBytes = 4 * 1024 * 1024
	// MaxTokenLength is the longest ClientRequestToken DynamoDB accepts.
	MaxTokenLength = 36
	// EventHeadroom is what an outbox item must leave of MaxItemBytes for
	// the attributes its delivery adds later (delivered_at, expires_at;
	// failed_at, attempts, last_error of up to 1,000 bytes; the sweeper's
	// claim with the relay's -owner of up to 256 bytes; redriven_at,
	// replayed_at): an item DynamoDB accepts but cannot grow by those
	// could never be marked DELIVERED or FAILED.
	EventHeadroom = 2048
	// MaxEventItemBytes is the largest outbox item Commit writes.
	MaxEventItemBytes = MaxItemBytes - EventHeadroom
)

// DefaultTable is the outbox table's default name.
const DefaultTable = "Outbox"

// TransactWriter is the part of the DynamoDB client the writer needs.
type TransactWriter interface {
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// Writer commits business writes and outbox events atomically.
// The zero value is not usable: DB must be set.
type Writer struct {
	DB TransactWriter
	// Table is the outbox table. Default "Outbox".
	Table string
}

// Tx is one atomic commit.
type Tx struct {
	// Writes are the caller's business writes (Put, Update, Delete or
	// ConditionCheck), in the order they appear in errors.
	Writes []types.TransactWriteItem
	// Events are written to the outbox table as PENDING items, after Writes.
	Events []Event
	// IdempotencyToken, if set, becomes the ClientRequestToken: a retried
	// Commit with the same token and the same contents within 10 minutes
	// succeeds without writing anything again. At most 36 characters.
	// When empty the SDK still sets a fresh token per call, so its own
	// retries of a lost response are idempotent.
	IdempotencyToken string
}

// Commit writes tx in one TransactWriteItems call. Errors a caller branches
// on: *ValidationError (nothing sent, or refused as invalid),
// *ConditionFailedError, ErrTransactionConflict, ErrThrottled,
// ErrIdempotencyMismatch.
func (w *Writer) Commit(ctx context.Context, tx Tx) error {
	in, err := w.build(tx)
	if err != nil {
		return err
	}
	_, err = w.DB.TransactWriteItems(ctx, in)
	if err != nil {
		return classify(err, in.TransactItems, len(tx.Writes))
	}
	return nil
}

func (w *Writer) table() string {
	if w.Table == "" {
		return DefaultTable
	}
	return w.Table
}

func (w *Writer) build(tx Tx) (*dynamodb.TransactWriteItemsInput, error) {
	if len(tx.Events) == 0 {
		return nil, &ValidationError{Field: "events", Reason: "a commit needs at least one event"}
	}
	if n := len(tx.Writes) + len(tx.Events); n > MaxActions {
		return nil, &ValidationError{Field: "transaction", Reason: fmt.Sprintf("%d actions, DynamoDB allows at most %d", n, MaxActions)}
	}
	if len(tx.IdempotencyToken) > MaxTokenLength {
		return nil, &ValidationError{Field: "idempotency token", Reason: fmt.Sprintf("%d characters, at most %d", len(tx.IdempotencyToken), MaxTokenLength)}
	}
	items := make([]types.TransactWriteItem, 0, len(tx.Writes)+len(tx.Events))
	items = append(items, tx.Writes...)
	// DynamoDB refuses two actions on one item with a generic
	// ValidationException; naming the events is more use to the caller.
	seen := make(map[string]int, len(tx.Events))
	for i, e := range tx.Events {
		item, err := Item(e)
		if err != nil {
			return nil, err
		}
		if j, dup := seen[e.ID]; dup {
			return nil, &ValidationError{Field: "events", Reason: fmt.Sprintf("events %d and %d have the same id %s", j, i, e.ID)}
		}
		seen[e.ID] = i
		items = append(items, types.TransactWriteItem{Put: &types.Put{
			TableName:                           aws.String(w.table()),
			Item:                                item,
			ConditionExpression:                 aws.String("attribute_not_exists(#id)"),
			ExpressionAttributeNames:            map[string]string{"#id": AttrEventID},
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}})
	}
	total := 0
	for i, it := range items {
		if it.Put != nil {
			size := ItemSize(it.Put.Item)
			if size > MaxItemBytes {
				return nil, &ValidationError{Field: fmt.Sprintf("action %d", i), Reason: fmt.Sprintf("item is %d bytes, DynamoDB allows at most %d", size, MaxItemBytes)}
			}
			if i >= len(tx.Writes) && size > MaxEventItemBytes {
				return nil, &ValidationError{Field: fmt.Sprintf("action %d", i), Reason: fmt.Sprintf(
					"event item is %d bytes; an outbox item may be at most %d: DynamoDB's %d less %d for the attributes delivery adds",
					size, MaxEventItemBytes, MaxItemBytes, EventHeadroom)}
			}
		}
		total += actionSize(it)
	}
	if total > MaxTransactionBytes {
		return nil, &ValidationError{Field: "transaction", Reason: fmt.Sprintf("%d bytes, DynamoDB allows at most %d", total, MaxTransactionBytes)}
	}
	in := &dynamodb.TransactWriteItemsInput{TransactItems: items}
	if tx.IdempotencyToken != "" {
		in.ClientRequestToken = aws.String(tx.IdempotencyToken)
	}
	return in, nil
}

// item is the stored shape of an event; see the package doc.
type item struct {
	EventID       string    `dynamodbav:"event_id"`
	EventType     string    `dynamodbav:"event_type"`
	AggregateType string    `dynamodbav:"aggregate_type"`
	AggregateID   string    `dynamodbav:"aggregate_id"`
	OccurredAt    time.Time `dynamodbav:"occurred_at"` // stored with TimeLayout
	Payload       string    `dynamodbav:"payload"`
	Status        Status    `dynamodbav:"status"`
	PendingBucket string    `dynamodbav:"pending_bucket,omitempty"`
}

// Item returns the PENDING outbox item for e.
func Item(e Event) (map[string]types.AttributeValue, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	av, err := attributevalue.MarshalMap(item{
		EventID:       e.ID,
		EventType:     e.Type,
		AggregateType: e.AggregateType,
		AggregateID:   e.AggregateID,
		OccurredAt:    e.OccurredAt.UTC(),
		Payload:       string(e.Payload),
		Status:        StatusPending,
		PendingBucket: PendingBucket(e.ID),
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: encode event %s: %w", e.ID, err)
	}
	// attributevalue writes time.RFC3339Nano, which is not sortable.
	av[AttrOccurredAt] = &types.AttributeValueMemberS{Value: FormatTime(e.OccurredAt)}
	return av, nil
}

// DecodeItem reads an outbox item, e.g. a stream record's new image after
// attributevalue.FromDynamoDBStreamsMap. It does not validate the payload:
// the relay must be able to read a bad item in order to mark it FAILED.
func DecodeItem(av map[string]types.AttributeValue) (Event, Status, error) {
	var it item
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return Event{}, "", fmt.Errorf("outbox: decode item: %w", err)
	}
	if it.EventID == "" {
		return Event{}, "", fmt.Errorf("outbox: decode item: %w", &ValidationError{Field: AttrEventID, Reason: "missing"})
	}
	return Event{
		ID:            it.EventID,
		Type:          it.EventType,
		AggregateType: it.AggregateType,
		AggregateID:   it.AggregateID,
		OccurredAt:    it.OccurredAt.UTC(),
		Payload:       []byte(it.Payload),
	}, it.Status, nil
}

// classify turns a TransactWriteItems error into the typed errors callers
// branch on, keeping the SDK error reachable through errors.As.
func classify(err error, items []types.TransactWriteItem, nWrites int) error {
	var ipm *types.IdempotentParameterMismatchException
	if errors.As(err, &ipm) {
		return fmt.Errorf("%w: %w", ErrIdempotencyMismatch, err)
	}
	var api interface {
		ErrorCode() string
		ErrorMessage() string
	}
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "ValidationException":
			return &ValidationError{Field: "transaction", Reason: "DynamoDB refused it: " + api.ErrorMessage(), Err: err}
		case "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded":
			return fmt.Errorf("%w: %w", ErrThrottled, err)
		}
	}
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) {
		var (
			conflict   *types.TransactionConflictException
			inProgress *types.TransactionInProgressException
		)
		// In progress: a commit with the same token has not finished yet,
		// so the outcome is unknown and a later retry gets it.
		if errors.As(err, &conflict) || errors.As(err, &inProgress) {
			return fmt.Errorf("%w: %w", ErrTransactionConflict, err)
		}
		return fmt.Errorf("outbox: transact write: %w", err)
	}
	for i, r := range tce.CancellationReasons {
		if aws.ToString(r.Code) != "ConditionalCheckFailed" {
			continue
		}
		cf := &ConditionFailedError{Index: i, Message: aws.ToString(r.Message), Item: r.Item, Err: err}
		if i < len(items) {
			cf.Table = actionTable(items[i])
			if i >= nWrites {
				if id, ok := items[i].Put.Item[AttrEventID].(*types.AttributeValueMemberS); ok {
					cf.EventID = id.Value
				}
			}
		}
		return cf
	}
	for i, r := range tce.CancellationReasons {
		if aws.ToString(r.Code) == "ValidationError" {
			field := fmt.Sprintf("action %d", i)
			if i < len(items) {
				field += " on " + actionTable(items[i])
			}
			return &ValidationError{Field: field, Reason: "DynamoDB refused it: " + aws.ToString(r.Message), Err: err}
		}
	}
	for _, r := range tce.CancellationReasons {
		switch aws.ToString(r.Code) {
		case "TransactionConflict":
			return fmt.Errorf("%w: %w", ErrTransactionConflict, err)
		case "ThrottlingError", "ProvisionedThroughputExceeded":
			return fmt.Errorf("%w: %w", ErrThrottled, err)
		}
	}
	return fmt.Errorf("outbox: transaction canceled: %w", err)
}

func actionTable(it types.TransactWriteItem) string {
	switch {
	case it.Put != nil:
		return aws.ToString(it.Put.TableName)
	case it.Update != nil:
		return aws.ToString(it.Update.TableName)
	case it.Delete != nil:
		return aws.ToString(it.Delete.TableName)
	case it.ConditionCheck != nil:
		return aws.ToString(it.ConditionCheck.TableName)
	}
	return ""
}
