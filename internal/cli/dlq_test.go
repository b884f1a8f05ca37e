package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/audit"
	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/mqctltest"
)

// parseCmd runs `mqctl PATH ARGS…` with the command at path built by
// newCmd (see runWithF) and returns the options its runF got: flags,
// global ones included, and arguments parsed and validated, nothing run,
// no broker needed. got is nil when RunE refused before runF.
func parseCmd[O any](t *testing.T, path string, newCmd func(*Factory, func(*O) error) *cobra.Command, args ...string) (got *O, err error) {
	t.Helper()
	build := func(f *Factory) *cobra.Command { return newCmd(f, func(o *O) error { got = o; return nil }) }
	return got, runWithF(t, path, build, append(strings.Fields(path), args...)...)
}

// mustParse is parseCmd for arguments that must be accepted.
func mustParse[O any](t *testing.T, path string, newCmd func(*Factory, func(*O) error) *cobra.Command, args ...string) *O {
	t.Helper()
	got, err := parseCmd(t, path, newCmd, args...)
	if err != nil || got == nil {
		t.Fatalf("%v: %v", args, err)
	}
	return got
}

// refusesFlags checks that each set of arguments is refused as a usage
// error before runF.
func refusesFlags[O any](t *testing.T, path string, newCmd func(*Factory, func(*O) error) *cobra.Command, cases ...[]string) {
	t.Helper()
	for _, args := range cases {
		got, err := parseCmd(t, path, newCmd, args...)
		if got != nil || err == nil {
			t.Errorf("%v: accepted", args)
			continue
		}
		if k, ok := fail.KindOf(err); ok && k != fail.Usage {
			t.Errorf("%v: %v is not a usage error", args, err)
		}
	}
}

// noBroker is a dialer for run tests that must end before connecting.
func noBroker(t *testing.T) dialFunc {
	return func(context.Context, string) (*amqp.Connection, error) {
		t.Error("the command connected to a broker")
		return nil, errors.New("no broker in this test")
	}
}

// brokerDown is a dialer that finds no broker.
func brokerDown(context.Context, string) (*amqp.Connection, error) {
	return nil, fail.Wrap(fail.Operational, errors.New("connect: connection refused"))
}

// dlqFixture is brokertest.DLQFixture in a fresh vhost, with 1000-byte
// bodies.
func dlqFixture(t *testing.T, n int) *brokertest.Env {
	t.Helper()
	env := brokertest.New(t)
	brokertest.DLQFixture(t, env, n, 1000)
	return env
}

func TestDLQReplayAndPurgeRefuseWithoutYesWhenNotATerminal(t *testing.T) {
	t.Parallel()
	env := dlqFixture(t, 3)
	dir := t.TempDir()
	archive := filepath.Join(dir, "a.jsonl")
	for _, args := range [][]string{
		{"dlq", "replay", "email.dlq", "--all"},
		{"dlq", "purge", "email.dlq", "--all", "--archive", archive},
		{"dlq", "purge", "email.dlq", "--id", "evt-00001", "--no-archive"},
	} {
		r := runCLI(t, env.Environ(), args...)
		if r.Code != ExitUsage || !strings.Contains(r.Stderr, "--yes") || !strings.Contains(r.Stderr, "nothing was changed") {
			t.Errorf("%v: exit %d\n%s%s", args, r.Code, r.Stdout, r.Stderr)
		}
	}
	if n := env.QueueDepth(t, "email.dlq"); n != 3 {
		t.Errorf("dlq depth %d, want 3", n)
	}
	if n := env.QueueDepth(t, "email"); n != 0 {
		t.Errorf("email depth %d, want 0", n)
	}
	if _, err := os.Stat(archive); err == nil {
		t.Error("archive created by a refused purge")
	}
	// On a terminal, anything but yes is a refusal too.
	r := runCLIWith(t, func(s *iostreams.IOStreams) { s.SetTTY(true, false, true); s.In = strings.NewReader("n\n") },
		env.Environ(), "dlq", "replay", "email.dlq", "--all")
	if r.Code != ExitUsage || !strings.Contains(r.Stderr, "Replay 3 messages of email.dlq to email (3)? [y/N]") {
		t.Errorf("terminal refusal: exit %d\n%s", r.Code, r.Stderr)
	}
	if n := env.QueueDepth(t, "email.dlq"); n != 3 {
		t.Errorf("dlq depth %d after refusals, want 3", n)
	}
}

func TestDLQCommandsEndToEnd(t *testing.T) {
	t.Parallel()
	env := dlqFixture(t, 6)
	e := env.Environ()
	dir := t.TempDir()
	// One state directory for every run: the record of published files
	// and the audit trail carry over from run to run.
	e["XDG_STATE_HOME"] = filepath.Join(dir, "state")

	r := runCLI(t, e, "dlq", "ls", "-o", "json")
	var ls struct {
		DLQs []struct {
			Name       string   `json:"name"`
			Origins    []string `json:"origins"`
			Peeked     int      `json:"peeked"`
			TopReasons []struct {
				Reason string `json:"reason"`
				Count  int    `json:"count"`
			} `json:"top_reasons"`
			OldestDeath *string `json:"oldest_death"`
		} `json:"dlqs"`
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &ls) != nil {
		t.Fatalf("ls: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if len(ls.DLQs) != 1 || ls.DLQs[0].Name != "email.dlq" || ls.DLQs[0].Origins[0] != "email" || ls.DLQs[0].Peeked != 6 ||
		ls.DLQs[0].TopReasons[0].Reason != "rejected" || ls.DLQs[0].TopReasons[0].Count != 6 || ls.DLQs[0].OldestDeath == nil {
		t.Errorf("ls = %s", r.Stdout)
	}
	r = runCLI(t, e, "dlq", "ls")
	if r.Code != 0 || !strings.Contains(r.Stdout, "email.dlq") || !strings.Contains(r.Stdout, "rejected (6)") {
		t.Errorf("ls table:\n%s%s", r.Stdout, r.Stderr)
	}

	r = runCLI(t, e, "dlq", "show", "email.dlq", "--limit", "2")
	if r.Code != 0 || !strings.Contains(r.Stdout, "evt-00001") || strings.Contains(r.Stdout, "evt-00003") ||
		!strings.Contains(r.Stdout, "2 of 6 message(s) in email.dlq shown") || !strings.Contains(r.Stdout, "user.registered") {
		t.Errorf("show:\n%s%s", r.Stdout, r.Stderr)
	}

	out := filepath.Join(dir, "export.jsonl")
	r = runCLI(t, e, "dlq", "export", "email.dlq", "--out", out, "-o", "json")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"exported": 6`) {
		t.Fatalf("export: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r = runCLI(t, e, "dlq", "export", "email.dlq", "--out", out); r.Code != ExitUsage {
		t.Errorf("export over an existing file: exit %d", r.Code)
	}
	// The human keeps lines 2 and 4.
	lines := readLines(t, out)
	checked := filepath.Join(dir, "checked.jsonl")
	os.WriteFile(checked, []byte(lines[1]+"\n"+lines[3]+"\n"), 0o600)

	r = runCLI(t, e, "dlq", "replay", "email.dlq", "--from", checked, "--dry-run")
	if r.Code != 0 || !strings.Contains(r.Stdout, "dry run: would replay 2") || env.QueueDepth(t, "email") != 0 {
		t.Errorf("dry run: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	journal := filepath.Join(dir, "journal.jsonl")
	// --outcomes lists the replayed messages too.
	r = runCLI(t, e, "dlq", "replay", "email.dlq", "--from", checked, "--yes", "--journal", journal, "-o", "json", "--outcomes")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"replayed": 2`) || strings.Count(r.Stdout, `"status": "replayed"`) != 2 || strings.Contains(r.Stdout, "outcomes_omitted") {
		t.Fatalf("replay: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if got := brokertest.DrainIDs(t, env, "email"); strings.Join(got, ",") != "evt-00002,evt-00004" {
		t.Errorf("email got %v", got)
	}

	// Partial: an id that is not there → exit 3, the report says so.
	r = runCLI(t, e, "dlq", "replay", "email.dlq", "--id", "evt-00001", "--id", "nope", "--yes", "--journal", journal)
	if r.Code != ExitCondition || !strings.Contains(r.Stdout, "nope") || !strings.Contains(r.Stdout, "not_found") || !strings.Contains(r.Stdout, "replayed 1") {
		t.Errorf("partial replay: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if got := brokertest.DrainIDs(t, env, "email"); strings.Join(got, ",") != "evt-00001" {
		t.Errorf("email got %v", got)
	}

	archive := filepath.Join(dir, "purged.jsonl")
	r = runCLI(t, e, "dlq", "purge", "email.dlq", "--all", "--yes", "--archive", archive)
	if r.Code != 0 || !strings.Contains(r.Stdout, "purged 3") {
		t.Fatalf("purge: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if n := env.QueueDepth(t, "email.dlq"); n != 0 {
		t.Errorf("dlq depth %d after purge --all", n)
	}
	if n := len(readLines(t, archive)); n != 3 {
		t.Errorf("archive has %d lines", n)
	}
	r = runCLI(t, e, "publish", "--from", archive)
	if r.Code != 0 || !strings.Contains(r.Stdout, "published 3, failed 0") {
		t.Fatalf("publish: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if got := brokertest.DrainIDs(t, env, "email"); strings.Join(got, ",") != "evt-00003,evt-00005,evt-00006" {
		t.Errorf("email got %v", got)
	}
	// The same archive again is refused: it would put every message back
	// twice.
	r = runCLI(t, e, "publish", "--from", archive)
	if r.Code != ExitUsage || !strings.Contains(r.Stderr, "was published already on") || !strings.Contains(r.Stderr, "3 messages to their origin queues") {
		t.Errorf("second publish: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if n := env.QueueDepth(t, "email"); n != 0 {
		t.Errorf("a refused second publish published %d messages", n)
	}
	entries, err := audit.Read(filepath.Join(dir, "state", "mqctl", "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var commands []string
	for _, en := range entries {
		commands = append(commands, en.Command)
	}
	if strings.Join(commands, ",") != "dlq replay,dlq replay,dlq purge,publish" {
		t.Fatalf("audit trail commands %v", commands)
	}
	pub := entries[3]
	if pub.Selection != "--from "+archive || pub.Outcome != audit.OK || pub.Counts["published"] != 3 || len(pub.Items) != 3 ||
		strings.Join(pub.Destinations, ",") != "email" || pub.Items[0].BodySHA256 != entries[2].Items[0].BodySHA256 || pub.Items[0].BodySHA256 == "" {
		t.Errorf("publish entry %+v\npurge entry %+v", pub, entries[2])
	}
	os.WriteFile(checked, []byte(lines[0]+"\n{not json\n"), 0o600)
	if r = runCLI(t, e, "publish", "--from", checked); r.Code != ExitUsage || !strings.Contains(r.Stderr, "checked.jsonl:2:") {
		t.Errorf("bad file: exit %d\n%s", r.Code, r.Stderr)
	}
	if n := env.QueueDepth(t, "email"); n != 0 {
		t.Errorf("a bad file published %d messages", n)
	}
	if r = runCLI(t, e, "dlq", "replay", "email.dlq", "--all", "--id", "x"); r.Code != ExitUsage {
		t.Errorf("two selections: exit %d", r.Code)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// TestDLQReplayKilledMidRunLosesNothing kills a real mqctl process with
// SIGKILL in the middle of a replay, runs it again, and checks that every
// message reached the origin queue, that none is left in the DLQ, and that
// the only duplicates are ones the second run reported, at most the
// confirm window.
func TestDLQReplayKilledMidRunLosesNothing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	const n, window = 3000, 50
	env := dlqFixture(t, n)
	dir := t.TempDir()
	bin := mqctltest.Binary(t)
	journal := filepath.Join(dir, "journal.jsonl")
	cmdEnv := append(os.Environ(), "MQCTL_URL="+env.AMQPURL, "MQCTL_MGMT_URL="+env.MgmtURL, "MQCTL_CONFIG="+filepath.Join(dir, "none.yaml"),
		"XDG_STATE_HOME="+filepath.Join(dir, "state"))
	args := []string{"dlq", "replay", "email.dlq", "--all", "--yes", "--window", fmt.Sprint(window), "--journal", journal, "-o", "json"}

	// Kill once a quarter is journaled, read from the journal file itself:
	// a file read reacts within milliseconds even on a loaded machine,
	// where polling the broker's queue depth once let a run of 3 s finish
	// before the kill. At 1000/s the rest takes over 2 s more.
	first := exec.Command(bin, append(args, "--rate", "1000")...)
	first.Env = cmdEnv
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	for {
		b, _ := os.ReadFile(journal)
		if bytes.Count(b, []byte("\n")) >= n/4 {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the first run ended (%v) before a quarter was journaled", err)
		case <-time.After(2 * time.Millisecond):
		}
	}
	first.Process.Kill()
	<-exited
	if moved := env.QueueDepth(t, "email"); moved >= n {
		t.Fatalf("the first run finished before the kill (%d moved); slow it down", moved)
	}

	second := exec.Command(bin, args...)
	second.Env = cmdEnv
	out, err := second.Output()
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	var rep struct {
		Replayed           int      `json:"replayed"`
		PossibleDuplicates []string `json:"possible_duplicates"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	if d := env.QueueDepth(t, "email.dlq"); d != 0 {
		t.Errorf("%d messages left in the DLQ", d)
	}
	count := map[string]int{}
	for _, id := range brokertest.DrainIDs(t, env, "email") {
		count[id]++
	}
	var missing, dups []string
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("evt-%05d", i)
		switch c := count[id]; {
		case c == 0:
			missing = append(missing, id)
		case c > 1:
			dups = append(dups, id)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("lost %d messages: %v", len(missing), missing)
	}
	reported := map[string]bool{}
	for _, id := range rep.PossibleDuplicates {
		reported[id] = true
	}
	for _, id := range dups {
		if !reported[id] {
			t.Errorf("duplicate %s not reported", id)
		}
	}
	if len(dups) > window {
		t.Errorf("%d duplicates, more than the confirm window %d", len(dups), window)
	}
	sort.Strings(dups)
	t.Logf("killed after the first run moved part; second run replayed %d; duplicates %d (reported %d)", rep.Replayed, len(dups), len(rep.PossibleDuplicates))
}
