package outbox

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ItemSize is the size DynamoDB bills and limits an item by: attribute
// names plus values, following "Item sizes and formats" in the DynamoDB
// Developer Guide. Numbers are estimated from their digits.
func ItemSize(item map[string]types.AttributeValue) int {
	n := 0
	for name, v := range item {
		n += len(name) + valueSize(v)
	}
	return n
}

func valueSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return numberSize(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberNS:
		n := 0
		for _, s := range v.Value {
			n += numberSize(s)
		}
		return n
	case *types.AttributeValueMemberBS:
		n := 0
		for _, b := range v.Value {
			n += len(b)
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += 1 + len(k) + valueSize(e)
		}
		return n
	}
	return 0
}

// numberSize: about one byte per two significant digits, plus one, plus
// one more for a negative number (DynamoDB stores a terminator byte
// then). Counting every character of s, sign, point and exponent
// included, errs on the large side for the digits, never the small one.
func numberSize(s string) int {
	n := (len(s)+1)/2 + 1
	if strings.HasPrefix(s, "-") {
		n++
	}
	return n
}

// actionSize is what one transaction action contributes to the 4 MB
// transaction limit: the full item for a Put, the key and expression values
// otherwise.
func actionSize(it types.TransactWriteItem) int {
	switch {
	case it.Put != nil:
		return ItemSize(it.Put.Item) + ItemSize(it.Put.ExpressionAttributeValues)
	case it.Update != nil:
		return ItemSize(it.Update.Key) + ItemSize(it.Update.ExpressionAttributeValues)
	case it.Delete != nil:
		return ItemSize(it.Delete.Key) + ItemSize(it.Delete.ExpressionAttributeValues)
	case it.ConditionCheck != nil:
		return ItemSize(it.ConditionCheck.Key) + ItemSize(it.ConditionCheck.ExpressionAttributeValues)
	}
	return 0
}
