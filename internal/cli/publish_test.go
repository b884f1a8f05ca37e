package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

func TestPublishFlags(t *testing.T) {
	o := mustParse(t, "publish", NewCmdPublish, "--from", "a.jsonl")
	if o.From != "a.jsonl" || o.To != "" || o.Window != 256 || o.BlockedTimeout != defaultBlockedTimeout {
		t.Errorf("defaults: %+v", o)
	}
	o = mustParse(t, "publish", NewCmdPublish, "--from", "a.jsonl", "--to", "email-staging", "--window", "4", "--blocked-timeout", "5s", "-o", "yaml")
	if o.Format != output.YAML || o.To != "email-staging" || o.Window != 4 || o.BlockedTimeout != 5*time.Second {
		t.Errorf("every flag: %+v", o)
	}
	refusesFlags(t, "publish", NewCmdPublish,
		[]string{},
		[]string{"--from", "a.jsonl", "queue"},
		[]string{"--from", "a.jsonl", "--window", "0"},
		[]string{"--from", "a.jsonl", "--blocked-timeout", "-1s"},
	)
}

// A bad file is refused (exit 2, file:line) whether or not a broker is up:
// it is checked before anything connects.
func TestPublishChecksTheFileBeforeConnecting(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct{ file, to, want string }{
		{write("bad.jsonl", `{"id":"a","death":{"origin_queue":"email"}}`+"\n{not json\n"), "", "bad.jsonl:2:"},
		{write("empty.jsonl", "\n"), "", "holds no record"},
		{write("nowhere.jsonl", `{"id":"a"}`+"\n"), "", "nowhere.jsonl:1: record a has no origin queue; pass --to QUEUE"},
		{filepath.Join(dir, "missing.jsonl"), "q", "missing.jsonl"},
	} {
		ios, _, out, _ := iostreams.Test()
		err := publishRun(context.Background(), &PublishOptions{IO: ios, Dial: noBroker(t), From: c.file, To: c.to, Window: 1})
		if code := ExitCode(context.Background(), err, true); code != ExitUsage || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: exit %d, %v; want 2 and %q", c.file, code, err, c.want)
		}
		if out.Len() != 0 {
			t.Errorf("%s: printed %q", c.file, out)
		}
	}
}
