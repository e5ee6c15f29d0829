package dynamo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// OwnersPartition is the state table partition (stream_arn) of the owner
// rows, one per owner (shard_id is the owner). Stream ARNs begin with
// "arn:", so it never meets a stream's leases.
const OwnersPartition = "owners"

// Process is the relay process acting for an owner, as its owner row
// records it. Shard leases and sweeper claims name only the owner, so two
// processes acting for one owner at once would both read every shard and
// send every event twice; the owner row lets one at a time act.
type Process struct {
	// Instance tells two runs apart, even on one host with one pid.
	Instance string `dynamodbav:"instance"`
	Host     string `dynamodbav:"host,omitempty"`
	// PIDNamespace tells whether PID means the same process here: two
	// containers may share a hostname, each with its own pids.
	PIDNamespace string `dynamodbav:"pid_namespace,omitempty"`
	// BootID tells machines apart (Linux's boot_id): two hosts may share a
	// hostname, and every host's initial pid namespace has the same id.
	BootID         string `dynamodbav:"boot_id,omitempty"`
	PID            int    `dynamodbav:"pid,omitempty"`
	ExpiresAtMilli int64  `dynamodbav:"lease_expires_at"`
	UpdatedAt      string `dynamodbav:"updated_at,omitempty"`
}

// ThisProcess is this process as an owner row records it, under instance
// (a run's own id: pids and hosts repeat).
func ThisProcess(instance string) Process {
	host, _ := os.Hostname()
	ns, _ := os.Readlink("/proc/self/ns/pid") // "pid:[4026531836]" on Linux
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return Process{Instance: instance, Host: host, PIDNamespace: ns, BootID: strings.TrimSpace(string(boot)), PID: os.Getpid()}
}

// OwnerInUseError means another live process acts for the owner.
type OwnerInUseError struct {
	Owner  string
	Holder Process
}

func (e *OwnerInUseError) Error() string {
	return fmt.Sprintf("owner %q is in use by another relay process (instance %s, host %q, pid %d, last renewed %s)",
		e.Owner, e.Holder.Instance, e.Holder.Host, e.Holder.PID, e.Holder.UpdatedAt)
}

// ErrOwnerTaken means another process took the owner row over (this one
// did not renew it within Duration, or was judged gone): this process must
// stop acting for the owner.
var ErrOwnerTaken = errors.New("owner taken over by another relay process")

// HoldOwner makes self the process acting for l.Owner. It succeeds when
// the owner row is new, already self's, expired or released, or held by a
// process that gone reports ended (nil: none); otherwise it returns an
// *OwnerInUseError.
func (l *Leases) HoldOwner(ctx context.Context, self Process, gone func(Process) bool) error {
	holder, err := l.writeOwner(ctx, self, "")
	if err != nil || holder == nil {
		return err
	}
	if gone == nil || !gone(*holder) {
		return &OwnerInUseError{Owner: l.Owner, Holder: *holder}
	}
	// Only if the ended process still holds it: a third may have come.
	if holder, err = l.writeOwner(ctx, self, holder.Instance); err != nil || holder == nil {
		return err
	}
	return &OwnerInUseError{Owner: l.Owner, Holder: *holder}
}

// writeOwner writes self as the owner row if the row is free (new, self's,
// expired or released), or, with held set, if instance held still holds
// it. When it is not, it returns the row's holder instead.
func (l *Leases) writeOwner(ctx context.Context, self Process, held string) (*Process, error) {
	now := l.now()
	values := map[string]types.AttributeValue{
		":inst": &types.AttributeValueMemberS{Value: self.Instance},
		":host": &types.AttributeValueMemberS{Value: self.Host},
		":ns":   &types.AttributeValueMemberS{Value: self.PIDNamespace},
		":boot": &types.AttributeValueMemberS{Value: self.BootID},
		":pid":  &types.AttributeValueMemberN{Value: strconv.Itoa(self.PID)},
		":exp":  millis(now.Add(l.Duration)),
		":upd":  timestamp(now),
	}
	names := map[string]string{
		"#inst": "instance", "#host": "host", "#ns": "pid_namespace", "#boot": "boot_id", "#pid": "pid",
		"#exp": "lease_expires_at", "#upd": "updated_at",
	}
	cond := "#inst = :held"
	if held != "" {
		values[":held"] = &types.AttributeValueMemberS{Value: held}
	} else {
		cond = "attribute_not_exists(#shard) OR #inst = :inst OR #exp < :now"
		values[":now"] = millis(now)
		names["#shard"] = StateRangeKey
	}
	_, err := l.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(l.Table),
		Key:                                 leaseKey(OwnersPartition, l.Owner),
		UpdateExpression:                    aws.String("SET #inst = :inst, #host = :host, #ns = :ns, #boot = :boot, #pid = :pid, #exp = :exp, #upd = :upd"),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		var holder Process
		if err := attributevalue.UnmarshalMap(ccf.Item, &holder); err != nil {
			return nil, fmt.Errorf("decode owner %q: %w", l.Owner, err)
		}
		return &holder, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hold owner %q: %w", l.Owner, err)
	}
	return nil, nil
}

// RenewOwner extends self's hold of l.Owner by Duration, or fails with
// ErrOwnerTaken.
func (l *Leases) RenewOwner(ctx context.Context, self Process) error {
	return l.updateOwner(ctx, self, l.now().Add(l.Duration))
}

// ReleaseOwner ends self's hold of l.Owner at once, so that the next
// process to act for it (this relay restarted) need not wait for it to
// expire.
func (l *Leases) ReleaseOwner(ctx context.Context, self Process) error {
	return l.updateOwner(ctx, self, time.Unix(0, 0))
}

func (l *Leases) updateOwner(ctx context.Context, self Process, expires time.Time) error {
	_, err := l.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(l.Table),
		Key:                 leaseKey(OwnersPartition, l.Owner),
		UpdateExpression:    aws.String("SET #exp = :exp, #upd = :upd"),
		ConditionExpression: aws.String("#inst = :inst"),
		ExpressionAttributeNames: map[string]string{
			"#inst": "instance", "#exp": "lease_expires_at", "#upd": "updated_at",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":inst": &types.AttributeValueMemberS{Value: self.Instance},
			":exp":  millis(expires),
			":upd":  timestamp(l.now()),
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("owner %q: %w", l.Owner, ErrOwnerTaken)
	}
	if err != nil {
		return fmt.Errorf("owner %q: %w", l.Owner, err)
	}
	return nil
}

// OwnerRow is an owner row: the process that acts, or last acted, for
// Owner.
type OwnerRow struct {
	Owner string `dynamodbav:"shard_id"`
	Process
}

// Owners returns every owner row.
func (l *Leases) Owners(ctx context.Context) ([]OwnerRow, error) {
	var rows []OwnerRow
	return rows, l.query(ctx, OwnersPartition, &rows)
}
