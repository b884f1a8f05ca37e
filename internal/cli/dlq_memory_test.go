package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/audit"
	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/dlq"
)

// spoolsLeft lists the files left in a run's $TMPDIR.
func spoolsLeft(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// onlyEntry is the one line of the trail at path.
func onlyEntry(t *testing.T, path string) audit.Entry {
	t.Helper()
	entries, err := audit.Read(path)
	if err != nil || len(entries) != 1 {
		t.Fatalf("audit trail: %d entries, %v", len(entries), err)
	}
	return entries[0]
}

// checkItems fails unless the entry lists exactly want, in order, each
// with status and destination and the SHA-256 of its body.
func checkItems(t *testing.T, e audit.Entry, want []string, bodies map[string][]byte, status, dest string) {
	t.Helper()
	var ids []string
	for _, it := range e.Items {
		ids = append(ids, it.ID)
		if it.Status != status || it.Destination != dest || it.BodySHA256 != audit.BodyHash(bodies[it.ID]) {
			t.Fatalf("audit item %+v: want %s to %q with the body's SHA-256", it, status, dest)
		}
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("audit lists %d items (%v…), want %d in queue order", len(ids), ids[:min(3, len(ids))], len(want))
	}
	if e.Counts[status] != len(want) || len(e.Counts) != 1 {
		t.Errorf("audit counts %v, want %s: %d", e.Counts, status, len(want))
	}
}

// A replay of thousands of messages, on mqctl's own path and through a
// shovel, and a purge, keep no per-message outcome for what moved (the
// report counts them), yet their audit line lists every message with
// its body hash, destination and status, in the one-line format `mqctl
// audit` reads. The outcomes wait in a spool in the command's $TMPDIR,
// which is gone afterwards.
func TestDLQReplayAndPurgeAuditEveryMessageWithoutKeepingThem(t *testing.T) {
	t.Parallel()
	const n = 3000
	env := dlqFixture(t, n)
	bodies := peekBodies(t, env, "email.dlq")
	if len(bodies) != n {
		t.Fatalf("peeked %d bodies", len(bodies))
	}
	e := env.Environ()
	tmp := t.TempDir()
	e["TMPDIR"] = tmp
	dir := t.TempDir()

	trail := filepath.Join(dir, "client.jsonl")
	r := runCLI(t, e, "dlq", "replay", "email.dlq", "--all", "--yes", "-o", "json", "--audit-log", trail, "--journal", filepath.Join(dir, "j"))
	var rep dlq.Report
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &rep) != nil {
		t.Fatalf("replay: exit %d\n%.500s%s", r.Code, r.Stdout, r.Stderr)
	}
	if rep.Replayed != n || len(rep.Outcomes) != 0 || rep.OutcomesOmitted != n || rep.Path != dlq.PathClient {
		t.Errorf("report: replayed %d, %d outcomes kept, %d omitted, path %s", rep.Replayed, len(rep.Outcomes), rep.OutcomesOmitted, rep.Path)
	}
	entry := onlyEntry(t, trail)
	checkItems(t, entry, evtIDs(1, n), bodies, dlq.StatusReplayed, "email")
	if !slices.Equal(entry.Destinations, []string{"email"}) || entry.Outcome != audit.OK {
		t.Errorf("audit destinations %v, outcome %s", entry.Destinations, entry.Outcome)
	}
	if left := spoolsLeft(t, tmp); len(left) != 0 {
		t.Errorf("spool files left after the replay: %v", left)
	}

	// Back into the DLQ, then through a broker shovel: the check's spool
	// gives the shovel's audit its ids.
	deadLetterAgain(t, env)
	trail = filepath.Join(dir, "shovel.jsonl")
	r = runCLI(t, e, "dlq", "replay", "email.dlq", "--all", "--via", "shovel", "--max-replays", "5", "--yes", "-o", "json", "--audit-log", trail, "--journal", filepath.Join(dir, "j"))
	rep = dlq.Report{}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &rep) != nil {
		t.Fatalf("shovel replay: exit %d\n%.500s%s", r.Code, r.Stdout, r.Stderr)
	}
	if rep.Path != dlq.PathShovel || rep.Replayed != n || len(rep.Outcomes) != 0 {
		t.Errorf("shovel report: path %s (%s), replayed %d, %d outcomes kept", rep.Path, rep.PathReason, rep.Replayed, len(rep.Outcomes))
	}
	checkItems(t, onlyEntry(t, trail), evtIDs(1, n), bodies, dlq.StatusReplayed, "email")
	noShovels(t, env)
	if left := spoolsLeft(t, tmp); len(left) != 0 {
		t.Errorf("spool files left after the shovel replay: %v", left)
	}

	deadLetterAgain(t, env)
	trail = filepath.Join(dir, "purge.jsonl")
	r = runCLI(t, e, "dlq", "purge", "email.dlq", "--all", "--no-archive", "--yes", "-o", "json", "--audit-log", trail)
	rep = dlq.Report{}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &rep) != nil {
		t.Fatalf("purge: exit %d\n%.500s%s", r.Code, r.Stdout, r.Stderr)
	}
	if rep.Purged != n || len(rep.Outcomes) != 0 || rep.OutcomesOmitted != n {
		t.Errorf("purge report: purged %d, %d outcomes kept, %d omitted", rep.Purged, len(rep.Outcomes), rep.OutcomesOmitted)
	}
	checkItems(t, onlyEntry(t, trail), evtIDs(1, n), bodies, dlq.StatusPurged, "")
	if left := spoolsLeft(t, tmp); len(left) != 0 {
		t.Errorf("spool files left after the purge: %v", left)
	}
}

// deadLetterAgain rejects every message of the fixture's email queue,
// in order, so the broker dead-letters them into email.dlq again.
func deadLetterAgain(t *testing.T, env *brokertest.Env) {
	t.Helper()
	ch := env.Channel(t)
	defer ch.Close()
	n := 0
	for {
		d, ok, err := ch.Get("email", false)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if err := d.Nack(false, false); err != nil {
			t.Fatal(err)
		}
		n++
	}
	brokertest.WaitFor(t, "the dead letters", 30*time.Second, func() bool { return env.QueueDepth(t, "email.dlq") == n })
}

// A run that fails still removes its spool; and the spool is where the
// command's $TMPDIR says: one that cannot be created there refuses the
// run before anything moves (exit 2), as an unwritable trail does.
func TestDLQSpoolGoneAfterAFailedRunAndRefusedWithoutATempDir(t *testing.T) {
	t.Parallel()
	env := dlqFixture(t, 5)
	e := env.Environ()
	tmp := t.TempDir()
	e["TMPDIR"] = tmp
	dir := t.TempDir()
	down := map[string]string{"TMPDIR": tmp, "MQCTL_URL": "amqp://guest:guest@127.0.0.1:1/", "MQCTL_MGMT_URL": "http://127.0.0.1:1"}
	for _, args := range [][]string{
		{"dlq", "replay", "email.dlq", "--all", "--yes", "--force", "--journal", filepath.Join(dir, "j")},
		{"dlq", "purge", "email.dlq", "--all", "--yes", "--force", "--no-archive"},
	} {
		r := runCLI(t, down, append(args, "--audit-log", filepath.Join(dir, "a.jsonl"))...)
		if r.Code != ExitError {
			t.Errorf("%v against no broker: exit %d, want 1\n%s", args, r.Code, r.Stderr)
		}
		if left := spoolsLeft(t, tmp); len(left) != 0 {
			t.Errorf("%v failed and left %v in $TMPDIR", args, left)
		}
	}
	e["TMPDIR"] = filepath.Join(dir, "no-such-dir")
	for _, args := range [][]string{
		{"dlq", "replay", "email.dlq", "--all", "--yes", "--journal", filepath.Join(dir, "j")},
		{"dlq", "purge", "email.dlq", "--all", "--yes", "--no-archive"},
	} {
		r := runCLI(t, e, append(args, "--audit-log", filepath.Join(dir, "a.jsonl"))...)
		if r.Code != ExitUsage || !strings.Contains(r.Stderr, "outcome spool") {
			t.Errorf("%v without a usable $TMPDIR: exit %d, want 2\n%s", args, r.Code, r.Stderr)
		}
	}
	if d := env.QueueDepth(t, "email.dlq"); d != 5 {
		t.Errorf("email.dlq holds %d, want all 5 still", d)
	}
	if r := runCLI(t, e, "dlq", "replay", "email.dlq", "--all", "--dry-run"); r.Code != 0 {
		t.Errorf("a dry run needs no spool: exit %d\n%s", r.Code, r.Stderr)
	}
}
