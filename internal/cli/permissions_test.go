package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/mqctltest"
)

// readOnlyUser creates a user with the monitoring tag and only read
// permission on env's vhost (configure and write match nothing), deleted
// when t ends, and returns mqctl's environment for it.
func readOnlyUser(t *testing.T, env *brokertest.Env) map[string]string {
	t.Helper()
	name, password := randomSecret("readonly-"), randomSecret("pw-")
	if _, err := env.Mgmt.PutUser(name, rabbithole.UserSettings{Password: password, Tags: rabbithole.UserTags{"monitoring"}}); err != nil {
		t.Fatalf("create user: %v", err)
	}
	t.Cleanup(func() { _, _ = env.Mgmt.DeleteUser(name) })
	if _, err := env.Mgmt.UpdatePermissionsIn(env.Vhost, name, rabbithole.Permissions{Configure: "", Write: "", Read: ".*"}); err != nil {
		t.Fatalf("grant read: %v", err)
	}
	u, _ := amqp.ParseURI(env.AMQPURL)
	u.Username, u.Password = name, password
	return map[string]string{"MQCTL_URL": u.String(), "MQCTL_MGMT_URL": env.MgmtURL, "MQCTL_TIMEOUT": "10s"}
}

// TestLeastPermissions runs mqctl as a user with the monitoring tag and
// only read permission on the vhost, the least the read-only commands
// document: every read-only command works and changes nothing on the
// broker; every command that needs more (write, configure, the
// administrator tag) refuses with exit 4 and a message naming what is
// missing, and changes nothing either. Last, dlq purge: removing a
// message is a read in RabbitMQ's model, so this user can purge, and the
// archive keeps every purged message.
func TestLeastPermissions(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	mustRun(t, env.Environ(), 0, "topology", "apply", "-f", exampleTopology)
	fillDLQ(t, env, "email.dlq", 5)
	// One message for consume, whose first failure must publish a retry.
	if err := env.Channel(t).PublishWithContext(context.Background(), "", "email", false, false,
		amqp.Publishing{MessageId: "to-consume", DeliveryMode: 2, Body: []byte(`{"event_id":"to-consume"}`)}); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, "the message in email", 10*time.Second, func() bool { return env.QueueDepth(t, "email") == 1 })
	ro := readOnlyUser(t, env)
	ro["XDG_STATE_HOME"] = t.TempDir()
	dir := t.TempDir()
	before := brokerState(t, env)

	for _, args := range [][]string{
		{"doctor"},
		{"backlog"},
		{"backlog", "--all-vhosts"},
		{"backlog", "check", "--max-dlq", "100", "--max-ready", "100"},
		{"dlq", "ls"},
		{"dlq", "show", "email.dlq"},
		{"dlq", "export", "email.dlq", "--out", filepath.Join(dir, "export.jsonl")},
		{"dlq", "replay", "email.dlq", "--all", "--dry-run"},
		{"dlq", "purge", "email.dlq", "--all", "--dry-run"},
		{"topology", "validate", "-f", exampleTopology},
		{"topology", "plan", "-f", exampleTopology, "--exit-code"},
		{"topology", "export", "--out", filepath.Join(dir, "export.yaml")},
		{"topology", "show", "-f", exampleTopology},
	} {
		r := runCLI(t, ro, append(args, "-o", "json")...)
		if r.Code != 0 {
			t.Errorf("read-only %v: exit %d, want 0\nstdout: %.800s\nstderr: %.800s", args, r.Code, r.Stdout, r.Stderr)
		}
	}
	if n := len(readLines(t, filepath.Join(dir, "export.jsonl"))); n != 5 {
		t.Errorf("dlq export as the read-only user wrote %d records, want 5", n)
	}
	if after := brokerState(t, env); after != before {
		t.Errorf("read-only commands changed the broker:\nbefore %s\nafter  %s", before, after)
	}

	// A file that adds a queue and, with --prune, removes the coupon ones:
	// apply has something to do.
	example, err := os.ReadFile(exampleTopology)
	if err != nil {
		t.Fatal(err)
	}
	changed := filepath.Join(dir, "changed.yaml")
	if err := os.WriteFile(changed, []byte(string(example)+"  - name: extra-queue\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	records := filepath.Join(dir, "records.jsonl")
	if err := os.WriteFile(records, []byte(`{"id":"r1","death":{"origin_queue":"email"},"body":"aGk="}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string // what the message must name
	}{
		{[]string{"topology", "apply", "-f", changed}, `needs a user with the administrator tag`},
		{[]string{"topology", "apply", "-f", changed, "--prune", "--yes"}, `needs a user with the administrator tag`},
		{[]string{"dlq", "replay", "email.dlq", "--all", "--yes", "--journal", filepath.Join(dir, "journal.jsonl")}, `access to exchange 'amq\.default' .* refused .*; publishing needs write permission`},
		{[]string{"dlq", "replay", "email.dlq", "--id", "evt-01", "--to", "points", "--yes", "--journal", filepath.Join(dir, "journal2.jsonl")}, `access to exchange 'amq\.default' .* refused .*; publishing needs write permission`},
		{[]string{"publish", "--from", records}, `access to exchange 'amq\.default' .* refused .*; publishing needs write permission`},
		{[]string{"produce", "--count", "1"}, `access to exchange 'user\.events' .* refused .*; publishing needs write permission`},
		{[]string{"bench", "-C", "10", "-D", "10"}, `declare benchmark queue mqctl-bench-.*ACCESS_REFUSED.*declaring or deleting an object needs configure permission`},
		{[]string{"demo"}, `administrator tag`},
		// Its retry is refused: the worker stops instead of cycling the
		// message, which stays in the queue (the broker state below).
		{[]string{"consume", "email", "--fail-rate", "1", "--db", filepath.Join(dir, "consume.db")}, `publishing the retry of to-consume was refused, so the worker stops \(the message stays in email\).*publishing needs write permission`},
	} {
		// The real binary: a command that retried a refusal forever would
		// hang the test process if run in it.
		r := mqctltest.Run(t, 60*time.Second, ro, tc.args...)
		if r.Code != ExitAuth || !regexp.MustCompile(tc.want).MatchString(r.Stderr) {
			t.Errorf("%v as a read-only user: exit %d, want 4 and a message naming %s\nstdout: %.800s\nstderr: %.800s", tc.args, r.Code, tc.want, r.Stdout, r.Stderr)
		}
	}
	if after := brokerState(t, env); after != before {
		t.Errorf("refused commands changed the broker:\nbefore %s\nafter  %s", before, after)
	}

	archive := filepath.Join(dir, "purged.jsonl")
	r := runCLI(t, ro, "dlq", "purge", "email.dlq", "--all", "--yes", "--archive", archive)
	if r.Code != 0 || env.QueueDepth(t, "email.dlq") != 0 || len(readLines(t, archive)) != 5 {
		t.Errorf("purge with read permission: exit %d, email.dlq holds %d, archive %d records; want 0, 0, 5\n%s", r.Code, env.QueueDepth(t, "email.dlq"), len(readLines(t, archive)), r.Stderr)
	}
}
