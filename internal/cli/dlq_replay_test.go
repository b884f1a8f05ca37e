package cli

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

func TestDLQReplayFlags(t *testing.T) {
	o := mustParse(t, "dlq replay", NewCmdDLQReplay, "email.dlq", "--all")
	if o.Queue != "email.dlq" || !o.Select.All || o.MaxReplays != 3 || o.Window != 1024 || o.BlockedTimeout != defaultBlockedTimeout ||
		o.DryRun || o.Yes || o.Limit != 0 || o.Rate != 0 {
		t.Errorf("defaults: %+v", o)
	}
	o = mustParse(t, "dlq replay", NewCmdDLQReplay, "email.dlq", "--id", "a", "--id", "b", "--to", "email-manual", "--max-replays", "5", "--force",
		"--dry-run", "--limit", "10", "--rate", "2.5", "--window", "8", "--journal", "j.jsonl", "-y", "--blocked-timeout", "10s", "-o", "json")
	if strings.Join(o.Select.IDs, ",") != "a,b" || o.To != "email-manual" || o.MaxReplays != 5 || !o.Force || !o.DryRun ||
		o.Limit != 10 || o.Rate != 2.5 || o.Window != 8 || o.Journal != "j.jsonl" || !o.Yes || o.BlockedTimeout != 10*time.Second || o.Format != output.JSON {
		t.Errorf("every flag: %+v", o)
	}
	refusesFlags(t, "dlq replay", NewCmdDLQReplay,
		[]string{"--all"},
		[]string{"email.dlq", "--all", "--max-replays", "-1"},
		[]string{"email.dlq", "--all", "--limit", "-1"},
		[]string{"email.dlq", "--all", "--rate", "-1"},
		[]string{"email.dlq", "--all", "--window", "0"},
		[]string{"email.dlq", "--all", "--blocked-timeout", "0s"},
	)
}

// replayOpts are a replay's options with no broker and no settings
// behind them: a test sets what its run may reach.
func replayOpts(t *testing.T, ios *iostreams.IOStreams) *DLQReplayOptions {
	return &DLQReplayOptions{
		IO: ios, Dial: noBroker(t), Queue: "email.dlq", MaxReplays: 3, Window: 16, BlockedTimeout: time.Minute,
		Env:   func(string) (string, bool) { return "", false },
		Audit: auditTrail{Path: filepath.Join(t.TempDir(), "audit.jsonl")},
		Settings: func() (config.Settings, error) {
			t.Error("settings read")
			return config.Settings{}, errors.New("no settings in this test")
		},
	}
}

func TestDLQReplayRefusesBeforeConnecting(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	settings := func() (config.Settings, error) { return config.Settings{Vhost: "/"}, nil }
	for _, c := range []struct {
		name, want string
		set        func(o *DLQReplayOptions)
	}{
		{"two selections", "give exactly one of", func(o *DLQReplayOptions) { o.Select.All, o.Select.IDs = true, []string{"a"} }},
		{"no selection", "give exactly one of", func(*DLQReplayOptions) {}},
		{"empty id", "--id: empty id", func(o *DLQReplayOptions) { o.Select.IDs = []string{" "} }},
		{"no such --from", "checked.jsonl", func(o *DLQReplayOptions) { o.Select.From = "/nonexistent/checked.jsonl" }},
		{"not confirmed", "without --yes", func(o *DLQReplayOptions) { o.Select.All = true }},
		{"journal nowhere", "cannot place the replay journal", func(o *DLQReplayOptions) {
			o.Select.All, o.Yes, o.Settings = true, true, settings
		}},
	} {
		o := replayOpts(t, ios)
		c.set(o)
		err := dlqReplayRun(context.Background(), o)
		if code := ExitCode(context.Background(), err, true); code != ExitUsage || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: exit %d (%v), want 2 and %q", c.name, code, err, c.want)
		}
	}
	if out.Len() != 0 {
		t.Errorf("printed %q", out)
	}
}

// A dry run moves nothing, so it needs no journal: without HOME it still
// gets as far as the broker.
func TestDLQReplayDryRunNeedsNoJournal(t *testing.T) {
	ios, _, _, _ := iostreams.Test()
	o := replayOpts(t, ios)
	o.Select.All, o.DryRun, o.Dial = true, true, brokerDown
	o.Settings = func() (config.Settings, error) { return config.Settings{Vhost: "/"}, nil }
	if err := dlqReplayRun(context.Background(), o); ExitCode(context.Background(), err, true) != ExitError {
		t.Errorf("err = %v, want the broker's", err)
	}
}
