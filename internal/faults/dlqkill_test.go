package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/mqctltest"
)

// Scenario 4: `mqctl dlq replay` and `mqctl dlq purge` killed with SIGKILL
// at several random points (seeded; the seed is logged), then run again to
// completion. After every kill no message may be missing from both the
// DLQ and its destination (the origin queue, or the purge archive: a
// message leaves the DLQ only after its copy is confirmed or fsynced);
// after the last run every message is in its destination, and duplicates
// are counted against what mqctl promises: replay's journal reports them,
// purge archives at most a batch twice per kill.

const dlqKills = 3

// allIDs are the fixture's ids evt-00001…evt-<n>.
func allIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("evt-%05d", i+1)
	}
	return ids
}

// killRun starts mqctl and kills it at a random point: right after the
// start, or once progress() (what has reached the destination) is a
// random share of the way from where it was to total. It returns whether
// the run finished before the kill.
func killRun(t *testing.T, rng *rand.Rand, env map[string]string, progress func() int, total int, args ...string) (finished bool, stdout string) {
	t.Helper()
	from := progress()
	p := mqctltest.Start(t, env, args...)
	if rng.IntN(4) == 0 {
		d := time.Duration(rng.IntN(300)) * time.Millisecond
		t.Logf("kill %v %s after the start", args[:2], d)
		time.Sleep(d)
	} else {
		target := from + 1 + rng.IntN(max(1, (total-from)*9/10))
		t.Logf("kill %v when progress reaches %d (from %d of %d)", args[:2], target, from, total)
		for progress() < target && !exited(p) {
			time.Sleep(time.Millisecond)
		}
	}
	if exited(p) {
		return true, p.Stdout()
	}
	p.Signal(syscall.SIGKILL)
	p.Wait(t, 30*time.Second)
	return false, ""
}

func exited(p *mqctltest.Proc) bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

// settled waits until the killed run's exclusive consumer is gone, so its
// unacked messages are back in the DLQ's ready count.
func settled(t *testing.T, env *brokertest.Env, queue string) {
	t.Helper()
	brokertest.WaitFor(t, "the killed run's consumer gone from "+queue, 30*time.Second, func() bool {
		ch := env.Channel(t)
		defer ch.Close()
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		return err == nil && q.Consumers == 0
	})
}

// missing returns the ids of want found in none of the sets.
func missing(want []string, sets ...map[string]int) []string {
	var out []string
	for _, id := range want {
		if !slices.ContainsFunc(sets, func(s map[string]int) bool { return s[id] > 0 }) {
			out = append(out, id)
		}
	}
	return out
}

func TestDLQReplayKilledAtRandomPointsLosesNothing(t *testing.T) {
	const n, window = 3000, 50
	rng := seeded(t)
	env := brokertest.New(t)
	brokertest.DLQFixture(t, env, n, 1000)
	probe := newProber(t, env.AMQPURL)
	want := allIDs(n)
	journal := filepath.Join(t.TempDir(), "journal.jsonl")
	args := []string{"dlq", "replay", "email.dlq", "--all", "--yes", "--window", fmt.Sprint(window), "--journal", journal, "-o", "json"}

	// A run that finished before its kill printed its report: the
	// possible duplicates it names are reported, and the journal it
	// settled names them no more.
	reported := map[string]bool{}
	for k := range dlqKills {
		if done, out := killRun(t, rng, env.Environ(), func() int { return probe.depth("email") }, n, append(args, "--rate", "2500")...); done {
			t.Logf("run %d finished before its kill", k+1)
			var rep dlq.Report
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("run %d's report: %v\n%s", k+1, err, out)
			}
			for _, id := range rep.PossibleDuplicates {
				reported[id] = true
			}
		}
		settled(t, env, "email.dlq")
		inDLQ, _, _ := tally(brokertest.PeekIDs(t, env, "email.dlq"))
		inOrigin, _, _ := tally(brokertest.PeekIDs(t, env, "email"))
		if lost := missing(want, inDLQ, inOrigin); len(lost) > 0 {
			t.Fatalf("after kill %d, %d messages are neither in email.dlq nor in email: %v", k+1, len(lost), lost[:min(10, len(lost))])
		}
	}
	start := time.Now()
	final := mqctltest.Run(t, 2*time.Minute, env.Environ(), args...)
	if final.Code != 0 {
		t.Fatalf("the run after the kills exited %d; stderr:\n%s", final.Code, tail(final.Stderr, 3000))
	}
	var rep dlq.Report
	if err := json.Unmarshal([]byte(final.Stdout), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, final.Stdout)
	}
	if d := brokertest.Depth(t, env, "email.dlq"); d != 0 {
		t.Errorf("%d messages left in email.dlq", d)
	}
	count, distinct, dups := tally(brokertest.DrainIDs(t, env, "email"))
	lost := missing(want, count)
	if len(lost) > 0 {
		t.Errorf("lost %d messages: %v", len(lost), lost[:min(10, len(lost))])
	}
	for _, id := range rep.PossibleDuplicates {
		reported[id] = true
	}
	var unreported []string
	for id, c := range count {
		if c > 1 && !reported[id] {
			unreported = append(unreported, id)
		}
	}
	if len(unreported) > 0 {
		slices.Sort(unreported)
		t.Errorf("%d duplicated messages not reported as possible duplicates: %v", len(unreported), unreported[:min(10, len(unreported))])
	}
	// Per kill, at most a confirm window published and not acked, plus the
	// acks the kill cut off on the wire (at most a window too).
	if dups > 2*window*dlqKills {
		t.Errorf("%d duplicates after %d kills, more than %d", dups, dlqKills, 2*window*dlqKills)
	}
	Report(t, Figures{Scenario: "kill -9 dlq replay at random points", Confirmed: n, Processed: distinct, Lost: len(lost),
		Duplicated: dups, Recovery: time.Since(start),
		Note: fmt.Sprintf("%d kills; the last run replayed %d and reported %d possible duplicates", dlqKills, rep.Replayed, len(rep.PossibleDuplicates))})
}

// archived reads the ids of the archive's complete lines; a torn last line
// (a kill in the middle of a write, after the last fsync) is left out when
// strict is false and is an error when it is true: after a run that
// finished, the archive must be whole, every line a record that `mqctl
// publish --from` accepts.
func archived(t *testing.T, path string, strict bool) map[string]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return map[string]int{}
	}
	if err != nil {
		t.Fatal(err)
	}
	if !strict {
		b = b[:bytes.LastIndexByte(b, '\n')+1]
	}
	ids := []string{}
	if err := dlq.ReadRecords(bytes.NewReader(b), path, func(_ int, r dlq.Record) error {
		ids = append(ids, r.ID)
		return nil
	}); err != nil {
		t.Fatalf("archive: %v", err)
	}
	count, _, _ := tally(ids)
	return count
}

func TestDLQPurgeKilledAtRandomPointsArchivesEverything(t *testing.T) {
	// Bodies large enough (records of 85 KB; a dozen fill the archive's
	// 1 MiB write buffer) that a batch between two fsyncs is written to the
	// file in pieces: kills leave records on disk that were never acked,
	// and before the fix some of them torn.
	const n, body, batch = 200, 64000, 512
	rng := seeded(t)
	env := brokertest.New(t)
	brokertest.DLQFixture(t, env, n, body)
	want := allIDs(n)
	archive := filepath.Join(t.TempDir(), "purged.jsonl")
	args := []string{"dlq", "purge", "email.dlq", "--all", "--yes", "--archive", archive, "-o", "json"}
	const recordSize = body * 4 / 3
	size := func() int {
		st, err := os.Stat(archive)
		if err != nil {
			return 0
		}
		return int(st.Size()) / recordSize
	}

	for k := range dlqKills {
		if done, _ := killRun(t, rng, env.Environ(), size, n, args...); done {
			t.Logf("run %d finished before its kill", k+1)
		}
		settled(t, env, "email.dlq")
		inDLQ, _, _ := tally(brokertest.PeekIDs(t, env, "email.dlq"))
		if lost := missing(want, inDLQ, archived(t, archive, false)); len(lost) > 0 {
			t.Fatalf("after kill %d, %d messages are neither in email.dlq nor in the archive (acked before their fsync?): %v", k+1, len(lost), lost[:min(10, len(lost))])
		}
	}
	start := time.Now()
	final := mqctltest.Run(t, 2*time.Minute, env.Environ(), args...)
	if final.Code != 0 {
		t.Fatalf("the run after the kills exited %d; stderr:\n%s", final.Code, tail(final.Stderr, 3000))
	}
	if d := brokertest.Depth(t, env, "email.dlq"); d != 0 {
		t.Errorf("%d messages left in email.dlq after purge --all", d)
	}
	count := archived(t, archive, true)
	lost := missing(want, count)
	if len(lost) > 0 {
		t.Errorf("%d purged messages are not in the archive: %v", len(lost), lost[:min(10, len(lost))])
	}
	dups := 0
	for _, c := range count {
		dups += c - 1
	}
	// A kill between a batch's fsync and its ack leaves that batch in the
	// DLQ and in the archive: the next run archives it again.
	if dups > batch*dlqKills {
		t.Errorf("%d records archived twice after %d kills, more than a batch (%d) per kill", dups, dlqKills, batch)
	}
	Report(t, Figures{Scenario: "kill -9 dlq purge at random points", Confirmed: n, Processed: len(count), Lost: len(lost),
		Duplicated: dups, Recovery: time.Since(start), Note: fmt.Sprintf("%d kills; duplicates are archive records", dlqKills)})
}
