package faults

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/mqctltest"
)

// unreachableTimeout is the --timeout the commands get; each must exit
// within it plus unreachableMargin (process start, a loaded machine).
// The margin is smaller than the timeout, so a command that waits out two
// network calls one after the other fails the bound.
const (
	unreachableTimeout = 4 * time.Second
	unreachableMargin  = 3 * time.Second
)

// blackHole listens on a free port and accepts connections without ever
// answering or closing them: a host whose service hangs, or a firewall
// that lets the SYN through.
func blackHole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// side is what a command needs of the broker.
type side int

const (
	needsMgmt side = 1 << iota
	needsAMQP
)

// unreachableCommand is one command line and the sides it needs.
type unreachableCommand struct {
	args  []string
	needs side
}

// unreachableCommands are the commands that talk to the broker; files
// they write go under dir.
func unreachableCommands(dir string) []unreachableCommand {
	both := needsMgmt | needsAMQP
	return []unreachableCommand{
		{[]string{"doctor"}, both},
		{[]string{"backlog"}, needsMgmt},
		{[]string{"backlog", "check", "--max-ready", "1000"}, needsMgmt},
		{[]string{"dlq", "ls"}, both},
		{[]string{"dlq", "show", "email.dlq"}, needsAMQP},
		{[]string{"dlq", "export", "email.dlq", "--out", filepath.Join(dir, "export.jsonl")}, needsAMQP},
		{[]string{"dlq", "replay", "email.dlq", "--all", "--yes"}, needsAMQP},
		{[]string{"dlq", "purge", "email.dlq", "--all", "--yes", "--archive", filepath.Join(dir, "purged.jsonl")}, needsAMQP},
		{[]string{"topology", "plan", "-f", exampleTopology}, needsMgmt},
		{[]string{"topology", "apply", "-f", exampleTopology}, needsMgmt},
		{[]string{"topology", "export"}, needsMgmt},
		{[]string{"produce", "--count", "10"}, needsAMQP},
		{[]string{"consume", "email", "--db", filepath.Join(dir, "effects.db")}, needsAMQP},
		{[]string{"bench", "-z", "2", "-C", "10"}, needsAMQP},
	}
}

// outcome is how one command ended.
type outcome struct {
	args         []string
	code         int
	stderr, out  string
	took         time.Duration
	exitedInTime bool
}

// runConcurrently starts every command at once (they mostly wait on the
// network) and gives each up to within to exit.
func runConcurrently(t *testing.T, env map[string]string, cmds [][]string, within time.Duration) []outcome {
	t.Helper()
	out := make([]outcome, len(cmds))
	var wg sync.WaitGroup
	for i, args := range cmds {
		start := time.Now()
		p := mqctltest.Start(t, env, args...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := outcome{args: args}
			select {
			case <-p.Done():
				o.exitedInTime, o.took, o.code = true, time.Since(start), p.Cmd.ProcessState.ExitCode()
			case <-time.After(within):
			}
			o.stderr, o.out = p.Stderr(), p.Stdout()
			out[i] = o
		}()
	}
	wg.Wait()
	return out
}

// TestUnreachable runs every broker command with one side of the broker
// missing: the management API refused (a dead port, then the plugin
// disabled on the running node), the management API a black hole, AMQP
// refused and AMQP a black hole. A command that needs the missing side
// must exit 1 within --timeout plus a margin, naming what it could not
// reach and what to try; with a wrong password every command exits 4.
func TestUnreachable(t *testing.T) {
	node := brokertest.StartNodeWith(t, brokertest.NodeOptions{Management: true})
	live := map[string]string{"MQCTL_URL": node.URL(), "MQCTL_MGMT_URL": node.MgmtURL()}
	if res := mqctltest.Run(t, 2*time.Minute, live, "topology", "apply", "-f", exampleTopology); res.Code != 0 {
		t.Fatalf("topology apply exited %d: %s%s", res.Code, res.Stdout, res.Stderr)
	}
	// A dead letter, so that dlq ls peeks and replay and purge have work.
	ch := node.Channel(t)
	if err := ch.Publish("", "email.dlq", false, false, amqp.Publishing{MessageId: "dead-1", Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}

	hole := blackHole(t)
	dead := fmt.Sprintf("127.0.0.1:%d", brokertest.FreePort(t))
	amqpAt := func(addr string) string { return "amqp://guest:guest@" + addr + "/" }
	with := func(url, mgmt string, extra ...string) map[string]string {
		env := map[string]string{"MQCTL_URL": url, "MQCTL_MGMT_URL": mgmt, "MQCTL_TIMEOUT": unreachableTimeout.String()}
		for i := 0; i+1 < len(extra); i += 2 {
			env[extra[i]] = extra[i+1]
		}
		return env
	}
	mgmtAddr := strings.TrimPrefix(node.MgmtURL(), "http://")

	type state struct {
		name    string
		missing side // the commands needing it run
		env     map[string]string
		code    int
		timeout time.Duration // the --timeout in env
		addr    string        // what must be named ("" for auth)
		hints   []string      // one of these must be offered
		before  func(t *testing.T)
		// after ends the fault and returns how long until work flowed again.
		after func(t *testing.T) time.Duration
	}
	states := []state{
		{name: "management API refused (dead port)", missing: needsMgmt, env: with(node.URL(), "http://"+dead), code: 1, addr: dead,
			hints: []string{"rabbitmq-plugins enable rabbitmq_management"}},
		{name: "management API black hole", missing: needsMgmt, env: with(node.URL(), "http://"+hole), code: 1, addr: hole,
			hints: []string{"raise --timeout"}},
		{name: "AMQP refused (dead port)", missing: needsAMQP, env: with(amqpAt(dead), node.MgmtURL()), code: 1, addr: dead,
			hints: []string{"is RabbitMQ running there?"}},
		{name: "AMQP black hole", missing: needsAMQP, env: with(amqpAt(hole), node.MgmtURL()), code: 1, addr: hole,
			hints: []string{"raise --timeout"}},
		// RabbitMQ answers a refused login only after a pause (seconds on
		// a loaded machine): the default timeout, not the short one.
		{name: "credentials refused", missing: needsAMQP | needsMgmt, code: 4, timeout: 10 * time.Second,
			env:   with(node.URL(), node.MgmtURL(), "MQCTL_PASSWORD", "not-the-password", "MQCTL_TIMEOUT", "10s"),
			hints: []string{"password", "credentials"}},
		{name: "management plugin disabled on the running node", missing: needsMgmt, env: with(node.URL(), node.MgmtURL()), code: 1, addr: mgmtAddr,
			hints: []string{"rabbitmq-plugins enable rabbitmq_management"},
			before: func(t *testing.T) {
				start := time.Now()
				node.Plugins(t, "disable", "rabbitmq_management")
				t.Logf("rabbitmq-plugins disable took %s", time.Since(start))
			},
			after: func(t *testing.T) time.Duration {
				start := time.Now()
				node.Plugins(t, "enable", "rabbitmq_management")
				brokertest.WaitFor(t, "backlog working again", 90*time.Second, func() bool {
					return mqctltest.Run(t, time.Minute, live, "backlog").Code == 0
				})
				return time.Since(start)
			}},
	}
	for _, st := range states {
		t.Run(strings.ReplaceAll(st.name, " ", "_"), func(t *testing.T) {
			if st.before != nil {
				st.before(t)
			}
			var cmds [][]string
			for _, c := range unreachableCommands(t.TempDir()) {
				if c.needs&st.missing != 0 {
					cmds = append(cmds, c.args)
				}
			}
			if st.timeout == 0 {
				st.timeout = unreachableTimeout
			}
			bound := st.timeout + unreachableMargin
			slowest := time.Duration(0)
			for _, o := range runConcurrently(t, st.env, cmds, bound) {
				line := strings.Join(o.args, " ")
				if !o.exitedInTime {
					t.Errorf("mqctl %s still running %s after it started (--timeout %s); stderr: %s", line, bound, st.timeout, tail(o.stderr, 600))
					continue
				}
				t.Logf("%s: exit %d in %s: %s", line, o.code, o.took.Round(10*time.Millisecond), strings.TrimSpace(tail(o.stderr, 400)))
				slowest = max(slowest, o.took)
				if o.code != st.code {
					t.Errorf("mqctl %s exited %d, want %d; stderr: %s", line, o.code, st.code, tail(o.stderr, 600))
				}
				if !strings.Contains(o.stderr, st.addr) {
					t.Errorf("mqctl %s does not name %s, which it could not reach; stderr: %s", line, st.addr, tail(o.stderr, 600))
				}
				if !containsAny(o.stderr, st.hints) {
					t.Errorf("mqctl %s offers none of %q; stderr: %s", line, st.hints, tail(o.stderr, 600))
				}
				if strings.Contains(o.stderr+o.out, "not-the-password") {
					t.Errorf("mqctl %s printed the password", line)
				}
			}
			f := Figures{Scenario: "unreachable: " + st.name,
				Note: fmt.Sprintf("%d commands needing it exit %d naming it, slowest %s with --timeout %s", len(cmds), st.code, slowest.Round(10*time.Millisecond), st.timeout)}
			if st.after != nil {
				f.Recovery = st.after(t)
				f.Note += "; recovery: from `rabbitmq-plugins enable` to `mqctl backlog` working"
			}
			Report(t, f)
		})
	}

	// With several --url nodes, a black hole first costs one timeout and
	// the command goes on to the next node.
	t.Run("black_hole_then_a_live_node", func(t *testing.T) {
		env := with(amqpAt(hole)+","+node.URL(), node.MgmtURL())
		res := mqctltest.Run(t, 2*unreachableTimeout+unreachableMargin, env, "dlq", "show", "email.dlq")
		if res.Code != 0 || !strings.Contains(res.Stdout, "dead-1") {
			t.Errorf("dlq show with a black hole first: exit %d in %s, want 0 and the dead letter; stdout %s stderr %s", res.Code, res.Took, res.Stdout, res.Stderr)
		}
		Report(t, Figures{Scenario: "unreachable: AMQP black hole first of two --url nodes", Confirmed: 1, Processed: 1,
			Note: fmt.Sprintf("dlq show failed over to the live node in %s with --timeout %s", res.Took.Round(10*time.Millisecond), unreachableTimeout)})
	})

	// The same for the management API: a node's API refusing or silent
	// costs at most one timeout per request, and the next node's answers.
	t.Run("management_black_hole_then_a_live_api", func(t *testing.T) {
		env := with(node.URL(), "http://"+dead+",http://"+hole+","+node.MgmtURL())
		res := mqctltest.Run(t, 3*unreachableTimeout+unreachableMargin, env, "dlq", "ls")
		if res.Code != 0 || !strings.Contains(res.Stdout, "email.dlq") {
			t.Errorf("dlq ls with a refused and a silent API first: exit %d in %s, want 0 and email.dlq; stdout %s stderr %s", res.Code, res.Took, res.Stdout, res.Stderr)
		}
		if res.Took > unreachableTimeout+unreachableMargin {
			t.Errorf("dlq ls took %s: more than one --timeout %s for the silent API (the answering API is tried first after that)", res.Took, unreachableTimeout)
		}
		Report(t, Figures{Scenario: "unreachable: management API refused, then black hole, then live", Confirmed: 1, Processed: 1,
			Note: fmt.Sprintf("dlq ls failed over to the live API in %s with --timeout %s", res.Took.Round(10*time.Millisecond), unreachableTimeout)})
	})
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
