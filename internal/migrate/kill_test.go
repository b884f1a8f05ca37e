package migrate

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/mqctl/mqctl/internal/brokertest"
)

// The child process of TestMigrateResumesAfterKill reads what to migrate
// from these variables.
const (
	helperEnv      = "MQCTL_MIGRATE_HELPER"
	helperVhost    = "MQCTL_MIGRATE_VHOST"
	helperAMQP     = "MQCTL_MIGRATE_AMQP"
	helperMgmt     = "MQCTL_MIGRATE_MGMT"
	helperUser     = "MQCTL_MIGRATE_USER"
	helperPassword = "MQCTL_MIGRATE_PASSWORD"
	helperState    = "MQCTL_MIGRATE_STATE"
	// eventLine starts each progress line the child prints.
	eventLine = "mqctl-migrate-event"
)

// TestMigrateHelperProcess is not a test: it is the migration that
// TestMigrateResumesAfterKill runs in a child process and kills. It prints
// one line per progress event on stdout.
func TestMigrateHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("the child process of TestMigrateResumesAfterKill")
	}
	env := &brokertest.Env{Vhost: os.Getenv(helperVhost), AMQPURL: os.Getenv(helperAMQP), MgmtURL: os.Getenv(helperMgmt),
		User: os.Getenv(helperUser), Password: os.Getenv(helperPassword)}
	var err error
	if env.Mgmt, err = rabbithole.NewClient(env.MgmtURL, env.User, env.Password); err != nil {
		t.Fatal(err)
	}
	m := migration(t, env, "orders", os.Getenv(helperState), func(e Event) {
		fmt.Printf("%s %s %d\n", eventLine, e.Step, e.Moved)
	})
	// Small batches: more moments to be killed in.
	m.Prefetch = 50
	if _, err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// killAfter runs the migration in a child process and SIGKILLs it once
// it has made `at` units of progress (a step, or 100 messages moved). It
// reports whether the child finished before that.
func killAfter(t *testing.T, env *brokertest.Env, stateDir string, at int) (finished bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMigrateHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperVhost+"="+env.Vhost, helperAMQP+"="+env.AMQPURL,
		helperMgmt+"="+env.MgmtURL, helperUser+"="+env.User, helperPassword+"="+env.Password, helperState+"="+stateDir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	progress, moved := 0, 0
	sc := bufio.NewScanner(out)
	for progress < at && sc.Scan() {
		var step string
		var n int
		if _, err := fmt.Sscanf(sc.Text(), eventLine+" %s %d", &step, &n); err != nil {
			continue
		}
		if n == 0 {
			progress++
		} else if moved += n; moved >= 100 {
			progress, moved = progress+moved/100, moved%100
		}
	}
	if progress >= at {
		_ = cmd.Process.Kill() // SIGKILL
	}
	_, _ = io.Copy(io.Discard, out)
	err = cmd.Wait()
	if progress < at && err != nil {
		t.Fatalf("the migration child failed before it was killed: %v\n%s", err, stderr.String())
	}
	t.Logf("killed after %d units of progress: %t", at, progress >= at)
	return progress < at
}

// A migration killed (SIGKILL) at random points, twice, then run again
// finishes: every message is in the new quorum queue, none lost, the
// temporary queue and the journal are gone.
func TestMigrateResumesAfterKill(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			env := brokertest.New(t)
			ids := setupOrders(t, env, 2000, "m-")
			dir := t.TempDir()
			rng := rand.New(rand.NewPCG(seed, 42))
			// About 50 units in all: 12 steps, 20 out, 20 back.
			for range 2 {
				if killAfter(t, env, dir, 1+rng.IntN(45)) {
					break
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			if _, err := os.Stat(JournalPath(dir, env.Vhost, "orders")); err == nil {
				res, err := migration(t, env, "orders", dir, nil).Run(ctx)
				if err != nil {
					t.Fatalf("the run after the kills: %v", err)
				}
				t.Logf("resumed: runs %d, moved out %d, back %d, possible duplicates %d", res.Runs, res.MovedOut, res.MovedBack, res.PossibleDuplicates)
			}
			checkMigrated(t, env, dir)
			left := newIDSet()
			left.add(brokertest.DrainIDs(t, env, "orders")...)
			if lost := ids.missing(left); len(lost) > 0 {
				t.Errorf("%d messages lost, e.g. %v", len(lost), lost[:min(5, len(lost))])
			}
			t.Logf("%d messages in the new queue, %d duplicates", left.total(), duplicates(left))
		})
	}
}
