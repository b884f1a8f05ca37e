package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/spf13/pflag"
)

// CompletionFiles maps each shell to its checked-in script.
var completionFiles = map[string]string{
	"bash":       "mqctl.bash",
	"zsh":        "_mqctl",
	"fish":       "mqctl.fish",
	"powershell": "mqctl.ps1",
}

// TestCompletionsAreCurrent fails when completions/ is stale: run
// `make completions` after changing commands or flags.
func TestCompletionsAreCurrent(t *testing.T) {
	ios, _, _, _ := iostreams.Test()
	root := NewCmdRoot(NewFactory(ios, func(string) (string, bool) { return "", false }))
	for _, shell := range Shells {
		var buf bytes.Buffer
		if err := WriteCompletion(root, shell, &buf); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("..", "..", "completions", completionFiles[shell])
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v (run `make completions`)", path, err)
		}
		if !bytes.Equal(got, buf.Bytes()) {
			t.Errorf("%s is stale: run `make completions` and commit the result", path)
		}
	}
}

// quotedProse is backquoted text that is not a VALUE name.
var quotedProse = regexp.MustCompile("`[^`]*[^A-Z_`][^`]*`")

func TestEveryCommandHasSummaryAndExample(t *testing.T) {
	ios, _, _, _ := iostreams.Test()
	root := NewCmdRoot(NewFactory(ios, func(string) (string, bool) { return "", false }))
	cmds := root.Commands()
	for len(cmds) > 0 {
		c := cmds[0]
		cmds = append(cmds[1:], c.Commands()...)
		if c.Hidden || c.Name() == "help" || c.Name() == "__complete" || c.Name() == "__completeNoDesc" {
			continue
		}
		if c.Short == "" {
			t.Errorf("%s has no one-line summary", c.CommandPath())
		}
		if c.Runnable() && c.Example == "" {
			t.Errorf("%s has no example", c.CommandPath())
		}
		if c.Parent() == root && c.GroupID == "" {
			t.Errorf("%s is in no help group", c.CommandPath())
		}
		// pflag reads `quoted` text in a flag's usage as the name of its
		// value: right for `KEY`, wrong for prose ("--prune apply --prune").
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if m := quotedProse.FindString(f.Usage); m != "" {
				t.Errorf("%s --%s: %s in the usage renders as the flag's value name", c.CommandPath(), f.Name, m)
			}
		})
	}
}

// The dlq commands complete QUEUE with the vhost's dead-letter queues
// (not its work queues), from the management API.
func TestDLQCommandsCompleteDeadLetterQueueNames(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	brokertest.DLQFixture(t, env, 1, 10)
	for _, cmd := range []string{"show", "export", "replay", "purge", "browse"} {
		r := runCLI(t, env.Environ(), "__complete", "dlq", cmd, "")
		lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
		if r.Code != 0 || !slices.Contains(lines, "email.dlq") || slices.Contains(lines, "email") || slices.Contains(lines, "audit") {
			t.Errorf("dlq %s completes %q (exit %d)", cmd, lines, r.Code)
		}
	}
	// A broker that does not answer completes nothing, within --timeout.
	r := runCLI(t, map[string]string{"MQCTL_URL": "amqp://guest:guest@127.0.0.1:1/", "MQCTL_TIMEOUT": "1s"}, "__complete", "dlq", "show", "")
	if r.Code != 0 || strings.Contains(r.Stdout, "email") {
		t.Errorf("completion against a dead broker: exit %d %q", r.Code, r.Stdout)
	}
}
