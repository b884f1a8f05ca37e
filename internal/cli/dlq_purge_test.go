package cli

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/iostreams"
)

func TestDLQPurgeFlags(t *testing.T) {
	o := mustParse(t, "dlq purge", NewCmdDLQPurge, "email.dlq", "--from", "checked.jsonl")
	if o.Queue != "email.dlq" || o.Select.From != "checked.jsonl" || o.Archive != "" || o.NoArchive || o.DryRun || o.Yes || o.Limit != 0 {
		t.Errorf("defaults: %+v", o)
	}
	o = mustParse(t, "dlq purge", NewCmdDLQPurge, "email.dlq", "--all", "--archive", "a.jsonl", "--dry-run", "--limit", "4", "--yes")
	if !o.Select.All || o.Archive != "a.jsonl" || !o.DryRun || o.Limit != 4 || !o.Yes {
		t.Errorf("every flag: %+v", o)
	}
	refusesFlags(t, "dlq purge", NewCmdDLQPurge,
		[]string{"--all"},
		[]string{"email.dlq", "--all", "--archive", "a.jsonl", "--no-archive"},
		[]string{"email.dlq", "--all", "--limit", "-1"},
	)
}

func TestDLQPurgeRefusesBeforeArchivingOrConnecting(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "a.jsonl")
	for name, o := range map[string]*DLQPurgeOptions{
		"not confirmed":               {Select: selectionFlags{All: true}, Archive: archive},
		"not confirmed, --no-archive": {Select: selectionFlags{IDs: []string{"evt-1"}}, NoArchive: true},
		"two selections":              {Select: selectionFlags{All: true, From: "x.jsonl"}, Yes: true, Archive: archive},
	} {
		ios, _, out, errOut := iostreams.Test()
		o.IO, o.Dial, o.Queue, o.now = ios, noBroker(t), "email.dlq", time.Now
		err := dlqPurgeRun(context.Background(), o)
		if code := ExitCode(context.Background(), err, true); code != ExitUsage {
			t.Errorf("%s: exit %d (%v), want 2", name, code, err)
		}
		if out.Len() != 0 || errOut.Len() != 0 {
			t.Errorf("%s: printed %q %q", name, out, errOut)
		}
	}
	if _, err := os.Stat(archive); err == nil {
		t.Error("archive created by a refused purge")
	}
}

// Without --archive the archive is named after the queue and the start
// time, in the working directory; a dry run and --no-archive have none.
func TestDLQPurgeDefaultArchiveName(t *testing.T) {
	at := time.Date(2026, 5, 1, 10, 15, 0, 0, time.UTC)
	o := &DLQPurgeOptions{Queue: "email/dlq", now: func() time.Time { return at }}
	if got := purgeArchivePath(o); got != "email_dlq.purged.20260501T101500Z.jsonl" {
		t.Errorf("default archive %q", got)
	}
	o.Archive = "mine.jsonl"
	if got := purgeArchivePath(o); got != "mine.jsonl" {
		t.Errorf("--archive: %q", got)
	}
	o.DryRun = true
	if got := purgeArchivePath(o); got != "" {
		t.Errorf("dry run: %q", got)
	}
}

// An archive is opened only once the broker answered and the queue was
// checked: a purge that cannot start leaves no file behind.
func TestDLQPurgeBrokerDownWritesNoArchive(t *testing.T) {
	t.Chdir(t.TempDir())
	ios, _, _, _ := iostreams.Test()
	o := &DLQPurgeOptions{IO: ios, Dial: brokerDown, Queue: "email.dlq", Select: selectionFlags{All: true}, Yes: true,
		Settings: func() (config.Settings, error) { return config.Settings{Vhost: "/"}, nil },
		Audit:    auditTrail{Path: "audit.jsonl"}, now: time.Now}
	if err := dlqPurgeRun(context.Background(), o); ExitCode(context.Background(), err, true) != ExitError {
		t.Errorf("err = %v, want the broker's", err)
	}
	if m, _ := filepath.Glob("*.purged.*"); len(m) > 0 {
		t.Errorf("archive written: %v", m)
	}
}
