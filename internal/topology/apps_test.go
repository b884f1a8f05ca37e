package topology_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/topology"
)

// repoRoot is where scripts/ and examples/ are; go test runs in the
// package's folder.
const repoRoot = "../.."

const pikaQueue = "new_user_tasks"

// The apps users really have, on a queue mqctl manages: the tutorials'
// pika producer declares new_user_tasks (durable=True, nothing else)
// before every publish while mqctl's policy gives the queue its retry and
// dead-letter settings, and a pika consumer keeps the retry contract. No
// declaration gets 406; every sign-up is confirmed; ids that fail once
// are done after one retry; ids that always fail go through both delay
// queues and are dead-lettered by the broker, through the policy, into
// new_user_tasks.dlq. The queue is classic: a quorum queue's type can't
// be in a policy, and a plain declaration of it gets 406 (on 4.x unless
// the vhost's default queue type is quorum).
//
// Runs against MQCTL_TEST_URL/MQCTL_TEST_MGMT_URL like every integration
// test (scripts/test-versions.sh points them at 4.0 and 4.3); a missing
// broker or pika fails it, MQCTL_SKIP_INTEGRATION=1 skips it.
func TestPikaAppsAgainstPolicyTopology(t *testing.T) {
	env := brokertest.New(t)
	py := pythonWithPika(t)
	if ov, err := env.Mgmt.Overview(); err == nil {
		t.Logf("RabbitMQ %s, %s", ov.RabbitMQVersion, py)
	}

	path := filepath.Join(t.TempDir(), "topology.yaml")
	yaml := `apiVersion: mqctl/v1
vhost: ` + env.Vhost + `
queues:
  - name: ` + pikaQueue + `
    type: classic
    durable: true
    retry:
      max_attempts: 3       # the first attempt and two retries
      backoff: [1s, 2s]     # new_user_tasks.retry.1, .2
    dead_letter: true       # new_user_tasks.dlx -> new_user_tasks.dlq
`
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := topology.Load(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, yaml)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b := &topology.MgmtBroker{Client: env.Mgmt}
	if _, err := topology.ApplyExpanded(ctx, b, topology.Expand(f)); err != nil {
		t.Fatal(err)
	}
	// The claim is about declarations while the policy is in force, so
	// wait until the broker applies it; the settings must not be arguments.
	policy := topology.PolicyPrefix + pikaQueue
	brokertest.WaitFor(t, "policy "+policy+" on "+pikaQueue, 30*time.Second, func() bool {
		q, err := env.Mgmt.GetQueue(env.Vhost, pikaQueue)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := q.Arguments["x-dead-letter-exchange"]; ok {
			t.Fatalf("%s has its dead-letter exchange as an argument, not in a policy: %v", pikaQueue, q.Arguments)
		}
		return q.Policy == policy
	})

	const n = 50
	var always, once []string
	for i := 3; i <= n; i += 10 {
		always = append(always, userID(i))
		once = append(once, userID(i+5))
	}

	produced := runApp(ctx, t, env, py, "producer.py", strconv.Itoa(n))
	var want []string
	for i := 1; i <= n; i++ {
		want = append(want, userID(i))
	}
	if got := strings.Fields(produced); !slices.Equal(got, want) {
		t.Fatalf("the producer confirmed %v, want user-0001 … user-%04d in order", got, n)
	}

	out := runApp(ctx, t, env, py, "consumer.py", "--expect", strconv.Itoa(n),
		"--fail-always", strings.Join(always, ","), "--fail-once", strings.Join(once, ","),
		"--max-attempts", "3", "--steps", "2", "--prefetch", "10", "--timeout", "150")
	events := map[string][]string{} // id -> "retry 1 new_user_tasks.retry.1", "done 2", …
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		w := strings.Fields(line)
		if len(w) < 3 {
			t.Fatalf("consumer printed %q", line)
		}
		events[w[1]] = append(events[w[1]], strings.Join(append(w[:1:1], w[2:]...), " "))
	}
	for i := 1; i <= n; i++ {
		id := userID(i)
		got := events[id]
		switch {
		case slices.Contains(always, id):
			want := []string{"retry 1 " + pikaQueue + ".retry.1", "retry 2 " + pikaQueue + ".retry.2", "dead 3"}
			if !slices.Equal(got, want) {
				t.Errorf("%s (fails always): %q, want %q", id, got, want)
			}
		case slices.Contains(once, id):
			if len(got) < 2 || got[0] != "retry 1 "+pikaQueue+".retry.1" || !onlyDone(got[1:], "done 2") {
				t.Errorf("%s (fails once): %q, want one retry then done at attempt 2", id, got)
			}
		default:
			if !onlyDone(got, "done 1") {
				t.Errorf("%s: %q, want done at attempt 1", id, got)
			}
		}
	}

	// The broker dead-letters the rejected messages asynchronously.
	dlq := pikaQueue + ".dlq"
	brokertest.WaitFor(t, fmt.Sprintf("%d dead letters in %s", len(always), dlq), time.Minute, func() bool {
		return brokertest.Depth(t, env, dlq) >= len(always)
	})
	var dead []string
	ch := env.Channel(t)
	for {
		d, ok, err := ch.Get(dlq, true)
		if err != nil {
			t.Fatalf("get from %s: %v", dlq, err)
		}
		if !ok {
			break
		}
		dead = append(dead, d.MessageId)
		if reason, queue := lastDeath(d.Headers); reason != "rejected" || queue != pikaQueue {
			t.Errorf("%s in %s: last death %q from %q, want rejected from %s (x-death %v)", d.MessageId, dlq, reason, queue, pikaQueue, d.Headers["x-death"])
		}
		if a := d.Headers["mqctl-attempt"]; fmt.Sprint(a) != "3" {
			t.Errorf("%s in %s: mqctl-attempt %v, want 3", d.MessageId, dlq, a)
		}
	}
	slices.Sort(dead)
	if !slices.Equal(dead, always) {
		t.Errorf("%s holds %v, want %v", dlq, dead, always)
	}
	for _, q := range []string{pikaQueue, pikaQueue + ".retry.1", pikaQueue + ".retry.2"} {
		if got := brokertest.Depth(t, env, q); got != 0 {
			t.Errorf("%s holds %d messages, want 0", q, got)
		}
	}
}

func userID(i int) string { return fmt.Sprintf("user-%04d", i) }

// onlyDone reports whether events are one or more copies of done: a
// redelivery may repeat an outcome, never change it.
func onlyDone(events []string, done string) bool {
	return len(events) > 0 && !slices.ContainsFunc(events, func(e string) bool { return e != done })
}

// lastDeath is the reason and queue of a message's most recent death:
// x-death lists them newest first on every version (3.10 also keeps the
// entries of a republished x-death, which is why x-first-death-* does not
// tell).
func lastDeath(h amqp.Table) (reason, queue string) {
	deaths, _ := h["x-death"].([]any)
	if len(deaths) == 0 {
		return "", ""
	}
	d, _ := deaths[0].(amqp.Table)
	reason, _ = d["reason"].(string)
	queue, _ = d["queue"].(string)
	return reason, queue
}

// pythonWithPika is a python3 that imports pika, installed by
// scripts/python-pika.sh when missing (it needs root for that).
func pythonWithPika(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot, "scripts", "python-pika.sh"), "--which")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/python-pika.sh: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// runApp runs one of examples/apps/python against env's vhost and returns
// what it printed; a non-zero exit fails the test with its stderr.
func runApp(ctx context.Context, t *testing.T, env *brokertest.Env, py, script string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, py, append([]string{filepath.Join(repoRoot, "examples", "apps", "python", script)}, args...)...)
	// The URL holds the password: the environment, not the command line.
	cmd.Env = append(os.Environ(), "AMQP_URL="+env.AMQPURL)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstderr:\n%s\nstdout:\n%s", script, strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	if strings.Contains(stderr.String(), "406") || strings.Contains(stderr.String(), "PRECONDITION_FAILED") {
		t.Errorf("%s: %s", script, stderr.String())
	}
	return stdout.String()
}
