package outbox_test

import (
	"context"
	"errors"
	"log"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddboutbox/ddboutbox/outbox"
)

// A booking handler commits the booking and its event in one transaction.
func ExampleWriter_Commit() {
	ctx := context.Background()
	var db *dynamodb.Client // from dynamo.NewClients or dynamodb.NewFromConfig
	w := &outbox.Writer{DB: db, Table: "Outbox"}

	bookingID := "0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"
	ev, err := outbox.NewEvent("BookingReserved", "Booking", bookingID, map[string]any{
		"booking_id": bookingID, "user_id": "u-1", "session_id": "s-1",
	})
	if err != nil {
		log.Fatal(err)
	}
	err = w.Commit(ctx, outbox.Tx{
		Writes: []types.TransactWriteItem{{Put: &types.Put{
			TableName: aws.String("Bookings"),
			Item: map[string]types.AttributeValue{
				"booking_id": &types.AttributeValueMemberS{Value: bookingID},
				"status":     &types.AttributeValueMemberS{Value: "RESERVED"},
			},
			ConditionExpression: aws.String("attribute_not_exists(booking_id)"),
		}}},
		Events: []outbox.Event{ev},
	})
	var cf *outbox.ConditionFailedError
	switch {
	case errors.As(err, &cf):
		log.Printf("action %d on %s failed its condition: nothing was written", cf.Index, cf.Table)
	case errors.Is(err, outbox.ErrTransactionConflict):
		log.Print("a concurrent request touched the same items: retry")
	case err != nil:
		log.Print(err)
	}
}
