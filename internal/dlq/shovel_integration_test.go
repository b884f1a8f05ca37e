package dlq_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/dlq"
)

// cancelOnProgress cancels once the shovel has moved something: progress
// comes from the DLQ's ready count, which also drops by the messages the
// shovel holds unacked (its prefetch, 1 here), so it waits for 10.
type cancelOnProgress struct {
	once   sync.Once
	cancel context.CancelFunc
	n      int
}

func (c *cancelOnProgress) Add(n int) {
	c.n += n
	if c.n >= 10 {
		c.once.Do(c.cancel)
	}
}

// An interrupted shovel replay removes its shovel, leaves the messages
// it had not moved in the DLQ in their order, and says exactly how many
// moved: nothing is lost, and a message in both queues is one it named a
// possible duplicate.
func TestShovelReplayInterruptedRemovesItsShovelAndLosesNothing(t *testing.T) {
	t.Parallel()
	const n = 3000
	env := brokertest.New(t)
	brokertest.DLQFixture(t, env, n, 100)
	conn := env.Dial(t)
	api, err := broker.NewMgmtReader(env.Settings(t))
	if err != nil {
		t.Fatal(err)
	}
	checkSpool, trail := newSpool(t), newSpool(t)
	checked, err := dlq.Replay(t.Context(), conn, conn, dlq.ReplayOptions{Queue: "email.dlq", Selection: dlq.SelectAll(), DryRun: true, MaxReplays: 3, Spool: checkSpool})
	if err != nil || checked.WouldReplay != n || checkSpool.Len() != n || len(checked.Outcomes) != 0 {
		t.Fatalf("check: %v, %d would replay, %d spooled, %d kept", err, checked.WouldReplay, checkSpool.Len(), len(checked.Outcomes))
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// A prefetch of 1 keeps the shovel slow enough to be caught moving.
	rep, err := dlq.ShovelReplay(ctx, api, conn, dlq.ShovelReplayOptions{
		Vhost: env.Vhost, Checked: checked, Dest: "email", Prefetch: 1, Poll: 20 * time.Millisecond,
		Progress: &cancelOnProgress{cancel: cancel}, Spool: trail,
	})
	if err == nil {
		t.Fatalf("an interrupted shovel replay returned no error: %+v", rep)
	}
	if rep.Replayed == 0 || rep.Replayed == n || rep.Replayed+rep.NotMoved != n || rep.Unknown != 0 {
		t.Fatalf("replayed %d, not moved %d, unknown %d of %d: the interrupt did not land mid-move", rep.Replayed, rep.NotMoved, rep.Unknown, n)
	}
	if params, err := env.Mgmt.ListShovelsIn(env.Vhost); err != nil || len(params) != 0 {
		t.Errorf("shovels left: %+v (%v)", params, err)
	}
	all := make([]string, n)
	for i := range all {
		all[i] = fmt.Sprintf("evt-%05d", i+1)
	}
	left := brokertest.DrainIDs(t, env, "email.dlq")
	if !slices.Equal(left, all[rep.Replayed:]) {
		t.Errorf("email.dlq holds %d messages from %v, want the %d not moved, in order", len(left), left[:min(3, len(left))], n-rep.Replayed)
	}
	moved := brokertest.DrainIDs(t, env, "email")
	if len(moved) < rep.Replayed || !slices.Equal(moved[:rep.Replayed], all[:rep.Replayed]) {
		t.Fatalf("email holds %d messages, want the %d moved first", len(moved), rep.Replayed)
	}
	for _, id := range moved[rep.Replayed:] {
		if !slices.Contains(rep.PossibleDuplicates, id) {
			t.Errorf("%s is in both queues but was not reported as a possible duplicate (%v)", id, rep.PossibleDuplicates)
		}
	}
	// The audit's spool holds exactly the moved ones, in order, hashed.
	var spooled []string
	err = trail.Each(func(o dlq.Outcome) error {
		if o.Status != dlq.StatusReplayed || o.Destination != "email" || len(o.BodySHA256) != 64 {
			t.Errorf("spooled %+v", o)
		}
		spooled = append(spooled, o.ID)
		return nil
	})
	if err != nil || !slices.Equal(spooled, all[:rep.Replayed]) || len(rep.Outcomes) != 0 {
		t.Errorf("spooled %d (%v), want the %d moved; report kept %d outcomes", len(spooled), err, rep.Replayed, len(rep.Outcomes))
	}
	t.Logf("interrupted after %d of %d; %d in both queues, %d reported possible", rep.Replayed, n, len(moved)-rep.Replayed, len(rep.PossibleDuplicates))
}

func newSpool(t *testing.T) *dlq.Spool {
	t.Helper()
	s, err := dlq.NewSpool("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Remove() })
	return s
}
