package relay

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddboutbox/ddboutbox/dynamo"
)

// thisProcess describes this run of the relay for the owner row.
func thisProcess() dynamo.Process { return dynamo.ThisProcess(rand.Text()) }

// processGone reports whether p, the process holding this relay's owner,
// is known to have ended: it ran on this machine (boot id) and host, in
// this pid namespace, and no process has its pid now. Elsewhere (another
// machine, even one with the same hostname, whose initial pid namespace
// has the same id as every host's; or a restarted container with a pid
// namespace of its own) it cannot be told, and p's hold must expire.
func processGone(self, p dynamo.Process) bool {
	if p.BootID == "" || p.BootID != self.BootID || p.Host != self.Host || p.PIDNamespace != self.PIDNamespace || p.PID <= 0 {
		return false
	}
	proc, err := os.FindProcess(p.PID)
	if err != nil {
		return true
	}
	return errors.Is(proc.Signal(syscall.Signal(0)), os.ErrProcessDone)
}

// holdOwner waits until this process acts for cfg.Owner: until no other
// live process does. Two processes with one owner would share its leases
// and claims, and both send every event. It returns early only when ctx
// ends or on an error other than a transient one.
func (r *Relay) holdOwner(ctx context.Context) error {
	var logged time.Time
	for attempt := 0; ; attempt++ {
		err := r.leases.HoldOwner(ctx, r.self, func(p dynamo.Process) bool { return processGone(r.self, p) })
		var inUse *dynamo.OwnerInUseError
		var missing *ddbtypes.ResourceNotFoundException
		switch {
		case err == nil:
			r.ownerWait.Store(nil)
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &inUse):
			r.ownerWait.Store(&err)
			if time.Since(logged) >= time.Minute {
				logged = time.Now()
				r.log.Error("another relay process acts for this -owner: waiting for it to stop, or for its hold to lapse after -lease-duration; give each relay its own -owner (the hostname by default)",
					"owner", r.cfg.Owner, "holder_host", inUse.Holder.Host, "holder_pid", inUse.Holder.PID,
					"holder_renewed", inUse.Holder.UpdatedAt)
			}
			attempt = 0
			// Soon enough to take over as the holder stops: it releases.
			if err := sleep(ctx, min(r.cfg.LeaseDuration/3, time.Second)); err != nil {
				return err
			}
		case errors.As(err, &missing):
			return fmt.Errorf("state table %q: %w", r.cfg.Tables.State, err)
		default:
			r.log.Warn("holding the owner failed, retrying", "err", err)
			if err := sleep(ctx, r.policy.delay(attempt, 0)); err != nil {
				return err
			}
		}
	}
}

// renewOwner keeps this process's hold of its owner. It returns
// ErrOwnerTaken once another process acts for it; other errors are
// logged, and the hold lapses after LeaseDuration if they go on.
func (r *Relay) renewOwner(ctx context.Context) error {
	err := r.leases.RenewOwner(ctx, r.self)
	if errors.Is(err, dynamo.ErrOwnerTaken) {
		return fmt.Errorf("stopping: %w (this process did not renew its hold within -lease-duration, or was judged gone)", err)
	}
	if err != nil && ctx.Err() == nil {
		r.log.Warn("owner renewal failed", "err", err)
	}
	return nil
}

// releaseOwner ends this process's hold on shutdown, so that the relay
// restarted acts at once.
func (r *Relay) releaseOwner() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.leases.ReleaseOwner(ctx, r.self); err != nil && !errors.Is(err, dynamo.ErrOwnerTaken) {
		r.log.Warn("owner release failed", "err", err)
	}
}
