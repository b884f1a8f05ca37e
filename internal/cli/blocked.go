package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/fail"
)

// defaultBlockedTimeout is how long a publishing command waits, unless
// told otherwise, while the broker blocks it: long enough for an alarm that
// consumers or an operator clear, short enough for a script not to stall.
const defaultBlockedTimeout = 2 * time.Minute

// blockedTimeoutHelp is the flag's help, shared by the commands that take it.
const blockedTimeoutHelp = "how long to wait while the broker blocks publishing (memory or disk alarm) before giving up with exit 1"

// addBlockedTimeoutFlag registers --blocked-timeout on a command that
// publishes and exits when done.
func addBlockedTimeoutFlag(fl *pflag.FlagSet, p *time.Duration) {
	fl.DurationVar(p, "blocked-timeout", defaultBlockedTimeout, blockedTimeoutHelp)
}

func checkBlockedTimeout(d time.Duration) error {
	if d <= 0 {
		return fail.Usagef("--blocked-timeout %v: want a positive duration, e.g. 2m", d)
	}
	return nil
}

// blockedPolicy waits up to timeout (0: as long as the block lasts) and
// reports each block and its end on log; waiting says what happens
// meanwhile.
func blockedPolicy(log *lineLog, timeout time.Duration, waiting string) broker.BlockedPolicy {
	return broker.BlockedPolicy{Timeout: timeout, Notify: func(b broker.Blocking) {
		if b.Active {
			log.Printf("publishing blocked by the broker: %s (%s); %s", b.Alarm(), b.Reason, waiting)
			return
		}
		log.Printf("publishing unblocked by the broker after %s; resuming", b.For.Round(10*time.Millisecond))
	}}
}

// boundedBlockedPolicy is the policy of a command that takes
// --blocked-timeout: it waits up to timeout, and says so.
func boundedBlockedPolicy(log *lineLog, timeout time.Duration) broker.BlockedPolicy {
	return blockedPolicy(log, timeout, fmt.Sprintf("waiting up to %s for it to clear (--blocked-timeout)", timeout))
}

// blockedGaveUp reports whether err comes from a block that outlasted
// --blocked-timeout and, if so, marks it operational (exit 1) even when part
// of the work was done: the command did not finish, a rerun after the alarm
// will.
func blockedGaveUp(err error, timeout time.Duration) (error, bool) {
	var be *broker.BlockedError
	if !errors.As(err, &be) {
		return err, false
	}
	return fail.Wrap(fail.Operational, fmt.Errorf("%w (gave up after --blocked-timeout %s)", err, timeout)), true
}
