package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/audit"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

func TestDLQHistoryFlags(t *testing.T) {
	o := mustParse(t, "dlq history", NewCmdDLQHistory)
	if o.Audit.Path != "" || o.Queue != "" || o.Vhost != "" || o.Since != 0 || o.Limit != 0 {
		t.Errorf("defaults: %+v", o)
	}
	o = mustParse(t, "dlq history", NewCmdDLQHistory, "--audit-log", "a.jsonl", "--queue", "email.dlq", "--vhost", "prod",
		"--since", "24h", "--limit", "5", "-o", "json")
	if o.Audit.Path != "a.jsonl" || o.Queue != "email.dlq" || o.Vhost != "prod" || o.Since != 24*time.Hour || o.Limit != 5 || o.Format != output.JSON {
		t.Errorf("every flag: %+v", o)
	}
	refusesFlags(t, "dlq history", NewCmdDLQHistory,
		[]string{"email.dlq"},
		[]string{"--limit", "-1"},
		[]string{"--since", "yesterday"},
	)
}

// historyTrail writes a trail of four entries, an hour apart, the newest
// at now.
func historyTrail(t *testing.T, now time.Time) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	for i, e := range []audit.Entry{
		{Command: "dlq replay", Vhost: "prod", Queue: "email.dlq", Selection: "--all", Outcome: audit.OK, Counts: map[string]int{"replayed": 3}},
		{Command: "dlq purge", Vhost: "prod", Queue: "points.dlq", Selection: "--id 7f3a --id 9b2c", Outcome: audit.Partial, Counts: map[string]int{"purged": 1, "not_found": 1}},
		{Command: "publish", Vhost: "staging", Selection: "--from a.jsonl", Outcome: audit.OK, Counts: map[string]int{"published": 2}},
		{Command: "dlq replay", Vhost: "prod", Queue: "email.dlq", Selection: `--where 'error contains "x"' --limit 10`, Outcome: audit.Failed,
			Items: []audit.Item{{ID: "evt-1", BodySHA256: audit.BodyHash([]byte("b")), Destination: "email", Status: "failed"}}},
	} {
		e.Time, e.User, e.Broker = now.Add(time.Duration(i-3)*time.Hour), "ops", "amqp://rabbit:5672"
		if err := audit.Append(path, e); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestDLQHistoryShowsAndFilters(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	path := historyTrail(t, now)
	run := func(o DLQHistoryOptions) string {
		t.Helper()
		ios, _, out, _ := iostreams.Test()
		o.IO, o.Audit.Path, o.Now = ios, path, func() time.Time { return now }
		if err := dlqHistoryRun(&o); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	table := run(DLQHistoryOptions{Format: output.Table})
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) < 5 || !strings.Contains(strings.ToLower(lines[0]), "selection") || !strings.Contains(lines[1], "2026-05-01T09:00:00Z") ||
		!strings.Contains(lines[4], "2026-05-01T12:00:00Z") || !strings.Contains(table, "--id 7f3a --id 9b2c") ||
		!strings.Contains(table, "not_found 1, purged 1") || !strings.Contains(table, "partial") {
		t.Errorf("table, newest last:\n%s", table)
	}
	var v struct {
		Entries []audit.Entry `json:"entries"`
	}
	decode := func(s string) []audit.Entry {
		t.Helper()
		v.Entries = nil
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatalf("%v: %s", err, s)
		}
		return v.Entries
	}
	all := decode(run(DLQHistoryOptions{Format: output.JSON}))
	if len(all) != 4 || all[3].Items[0].BodySHA256 != audit.BodyHash([]byte("b")) || all[3].Selection != `--where 'error contains "x"' --limit 10` {
		t.Errorf("json: %+v", all)
	}
	for _, c := range []struct {
		o    DLQHistoryOptions
		want []string // commands, oldest first
	}{
		{DLQHistoryOptions{Queue: "email.dlq"}, []string{"dlq replay", "dlq replay"}},
		{DLQHistoryOptions{Vhost: "staging"}, []string{"publish"}},
		{DLQHistoryOptions{Since: 90 * time.Minute}, []string{"publish", "dlq replay"}},
		{DLQHistoryOptions{Limit: 2}, []string{"publish", "dlq replay"}},
		{DLQHistoryOptions{Vhost: "prod", Limit: 2}, []string{"dlq purge", "dlq replay"}},
		{DLQHistoryOptions{Queue: "nope"}, nil},
	} {
		c.o.Format = output.JSON
		var got []string
		for _, e := range decode(run(c.o)) {
			got = append(got, e.Command)
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%+v: %v, want %v", c.o, got, c.want)
		}
	}
}

// A missing trail is an empty history; a torn line is exit 2 naming it
// (an unterminated last line is one still being written: left out).
func TestDLQHistoryMissingAndBrokenTrail(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	o := &DLQHistoryOptions{IO: ios, Format: output.JSON, Audit: auditTrail{Path: filepath.Join(t.TempDir(), "none.jsonl")}}
	if err := dlqHistoryRun(o); err != nil || strings.TrimSpace(out.String()) != `{
  "entries": []
}` {
		t.Errorf("missing trail: %v %q", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(bad, []byte("{\"command\":\"dlq replay\"}\n{torn\n{\"command\":\"dlq purge\"}\n"), 0o600)
	o.Audit.Path = bad
	err := dlqHistoryRun(o)
	if ExitCode(context.Background(), err, true) != ExitUsage || !strings.Contains(err.Error(), "bad.jsonl:2") {
		t.Errorf("torn line: %v", err)
	}
	// Without --audit-log the default under XDG_STATE_HOME is read.
	state := t.TempDir()
	path := historyTrail(t, time.Now())
	os.MkdirAll(filepath.Join(state, "mqctl"), 0o700)
	b, _ := os.ReadFile(path)
	os.WriteFile(filepath.Join(state, "mqctl", "audit.jsonl"), b, 0o600)
	r := runCLI(t, map[string]string{"XDG_STATE_HOME": state}, "dlq", "history", "--limit", "1")
	if r.Code != 0 || !strings.Contains(r.Stdout, "--where") || strings.Contains(r.Stdout, "--all") {
		t.Errorf("default trail: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}
