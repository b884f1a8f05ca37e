package dlq_test

import (
	"context"
	"testing"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/dlq"
)

// totalProgress records what a progress bar would show.
type totalProgress struct{ total, done int64 }

func (p *totalProgress) Add(n int)        { p.done += int64(n) }
func (p *totalProgress) SetTotal(n int64) { p.total = n }

// Replay and purge report every message read against the depth at the
// start (scanned/total, not selected/unknown), whatever the selection.
func TestSweepProgressIsScannedOfDepth(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	brokertest.DLQFixture(t, env, 7, 100)
	ctx := context.Background()
	p := &totalProgress{}
	if _, err := dlq.Replay(ctx, env.Dial(t), env.Dial(t), dlq.ReplayOptions{Queue: "email.dlq", Selection: dlq.SelectIDs([]string{"evt-00002"}),
		MaxReplays: 3, Window: 4, DryRun: true, Progress: p}); err != nil {
		t.Fatal(err)
	}
	if p.total != 7 || p.done != 7 {
		t.Errorf("replay progress %d/%d, want 7/7", p.done, p.total)
	}
	p = &totalProgress{}
	rep, err := dlq.Purge(ctx, env.Dial(t), dlq.PurgeOptions{Queue: "email.dlq", Selection: dlq.SelectAll(), Batch: 3, Progress: p})
	if err != nil || rep.Purged != 7 {
		t.Fatalf("purge: %v %+v", err, rep)
	}
	if p.total != 7 || p.done != 7 {
		t.Errorf("purge progress %d/%d, want 7/7", p.done, p.total)
	}
}
