package faults

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/mqctltest"
	"github.com/mqctl/mqctl/internal/pattern"
	"github.com/mqctl/mqctl/internal/registration"
)

// Scenario 5: a memory or disk alarm blocks every publishing connection
// (connection.blocked) while `mqctl produce`, the `mqctl serve` relay and
// `mqctl dlq replay` run. They must notice, say so on stderr, wait, and
// resume by themselves when the alarm clears, every event confirmed
// exactly as counted; a block longer than --blocked-timeout ends produce
// and replay with exit 1 (never a hang), and serve still stops on SIGTERM.

// alarmHold is how long the memory alarm lasts: longer than the 30 s a
// publisher waits for a confirm from a broker that is not blocking it, so
// the test shows that blocked time does not count against that bound.
const alarmHold = 33 * time.Second

// alarmCtl are the rabbitmqctl commands that raise and clear an alarm:
// a memory watermark no node can stay under, a disk limit no disk meets.
var alarmCtl = map[string][2][]string{
	"memory": {{"set_vm_memory_high_watermark", "0.0000001"}, {"set_vm_memory_high_watermark", "0.4"}},
	"disk":   {{"set_disk_free_limit", "100000GB"}, {"set_disk_free_limit", "50MB"}},
}

// raiseAlarm raises a memory or disk alarm on node; it is cleared when t
// ends in any case, so that a failure leaves a broker that takes publishes.
func raiseAlarm(t *testing.T, node *brokertest.Node, kind string) {
	t.Helper()
	t.Cleanup(func() { _, _ = node.TryCtl(alarmCtl[kind][1]...) })
	node.Ctl(t, alarmCtl[kind][0]...)
}

func clearAlarm(t *testing.T, node *brokertest.Node, kind string) {
	t.Helper()
	node.Ctl(t, alarmCtl[kind][1]...)
}

// vhostURL is a vhost of a private node, for brokertest's helpers.
type vhostURL string

func (u vhostURL) Channel(t testing.TB) *amqp.Channel {
	t.Helper()
	conn, err := amqp.DialConfig(string(u), amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// waitStderr waits until p has printed what on stderr.
func waitStderr(t *testing.T, p *mqctltest.Proc, what, label string, within time.Duration) {
	t.Helper()
	brokertest.WaitFor(t, label+" to say "+what, within, func() bool {
		if exited(p) && !strings.Contains(p.Stderr(), what) {
			t.Fatalf("%s exited without saying %q; stderr:\n%s", label, what, tail(p.Stderr(), 3000))
		}
		return strings.Contains(p.Stderr(), what)
	})
}

// sinceOn is how long after at the last stderr line of p containing what
// was printed (-1 when there is none).
func sinceOn(p *mqctltest.Proc, what string, at time.Time) time.Duration {
	ts := logTimes(p.Stderr(), what)
	if len(ts) == 0 {
		return -1
	}
	return max(0, ts[len(ts)-1].Sub(at))
}

func outboxPending(t *testing.T, base string) int {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h registration.OutboxStats
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h.Pending
}

// splitIDs counts the ids of the email queue that belong to sign-ups and
// those that do not (produce's).
func splitIDs(ids []string, signUps []signUp) (ours, theirs []string) {
	mine := map[string]bool{}
	for _, s := range signUps {
		mine[s.EventID] = true
	}
	for _, id := range ids {
		if mine[id] {
			ours = append(ours, id)
		} else {
			theirs = append(theirs, id)
		}
	}
	return ours, theirs
}

func TestAlarmBlockedPublishersWaitReportAndResume(t *testing.T) {
	node := startRegistrationNode(t)
	node.Ctl(t, "add_vhost", "dlq")
	node.Ctl(t, "set_permissions", "-p", "dlq", "guest", ".*", ".*", ".*")
	dlqVhost := vhostURL(node.URL() + "dlq")
	env := mqctlEnv(node.URL())
	dlqEnv := mqctlEnv(string(dlqVhost))
	probe := newProber(t, node.URL())

	t.Run("memory alarm, then cleared", func(t *testing.T) {
		// Both would run about twenty seconds unblocked, so the alarm
		// (raised after a second or two, in effect at the node's next
		// memory check, later on a loaded machine) catches them in the
		// middle; with ten seconds a loaded run saw one finish first.
		const events, deadLetters = 8000, 3000
		brokertest.DLQFixture(t, dlqVhost, deadLetters, 1000)
		dir := t.TempDir()
		prod := mqctltest.Start(t, env, "produce", "--count", fmt.Sprint(events), "--rate", "400", "--blocked-timeout", "2m", "-o", "json", "-v")
		srv, base := startServe(t, env, filepath.Join(dir, "app.db"))
		load := startSignUps(base, 20*time.Millisecond)
		replay := mqctltest.Start(t, dlqEnv, "dlq", "replay", "email.dlq", "--all", "--yes", "--rate", "150", "--blocked-timeout", "2m",
			"--journal", filepath.Join(dir, "journal.jsonl"), "-o", "json")
		brokertest.WaitFor(t, "produce under way", 30*time.Second, func() bool { return probe.depth(registration.Email) >= 300 })

		raiseAlarm(t, node, "memory")
		alarmAt := time.Now()
		const blocked = "publishing blocked by the broker: memory alarm"
		waitStderr(t, prod, blocked, "produce", 30*time.Second)
		waitStderr(t, srv, blocked, "serve", 30*time.Second)
		waitStderr(t, replay, blocked, "dlq replay", 30*time.Second)
		time.Sleep(time.Until(alarmAt.Add(alarmHold)))
		for what, p := range map[string]*mqctltest.Proc{"produce": prod, "serve": srv, "dlq replay": replay} {
			if exited(p) {
				t.Fatalf("%s exited during the alarm; stderr:\n%s", what, tail(p.Stderr(), 3000))
			}
		}
		cleared := time.Now() // the alarm ends during the command
		clearAlarm(t, node, "memory")

		if code := prod.Wait(t, 2*time.Minute); code != 0 {
			t.Fatalf("produce exited %d after the alarm cleared; stderr:\n%s", code, tail(prod.Stderr(), 3000))
		}
		if code := replay.Wait(t, 2*time.Minute); code != 0 {
			t.Fatalf("dlq replay exited %d after the alarm cleared; stderr:\n%s", code, tail(replay.Stderr(), 3000))
		}
		users := load.finish(t)
		brokertest.WaitFor(t, "the outbox sent", time.Minute, func() bool { return outboxPending(t, base) == 0 })
		terminate(t, srv, "serve")

		var sum registration.ProduceSummary
		if err := json.Unmarshal([]byte(prod.Stdout()), &sum); err != nil {
			t.Fatalf("produce -o json: %v: %q", err, prod.Stdout())
		}
		// Waiting through the block means no reconnect and nothing
		// published twice: the count is exact.
		if sum.Confirmed != events || sum.Reconnects != 0 || sum.Republished != 0 {
			t.Errorf("produce summary %+v: want %d confirmed, no reconnect, nothing republished", sum, events)
		}
		ours, theirs := splitIDs(brokertest.DrainIDs(t, node, registration.Email), users)
		_, produced, prodDups := tally(theirs)
		Report(t, Figures{Scenario: "memory alarm: produce waits and resumes", Confirmed: sum.Confirmed, Processed: produced,
			Lost: sum.Confirmed - produced, Duplicated: prodDups, Recovery: sinceOn(prod, "publishing unblocked", cleared),
			Note: fmt.Sprintf("blocked %s; %d reconnects, %d republished", alarmHold, sum.Reconnects, sum.Republished)})
		_, relayed, relayDups := tally(ours)
		Report(t, Figures{Scenario: "memory alarm: serve relay waits and resumes", Confirmed: len(users), Processed: relayed,
			Lost: len(users) - relayed, Duplicated: relayDups, Recovery: sinceOn(srv, "publishing unblocked", cleared),
			Note: fmt.Sprintf("%d sign-ups accepted during the alarm too", len(users))})

		var rep dlq.Report
		if err := json.Unmarshal([]byte(replay.Stdout()), &rep); err != nil {
			t.Fatalf("replay report: %v: %q", err, replay.Stdout())
		}
		if d := brokertest.Depth(t, dlqVhost, "email.dlq"); d != 0 || rep.Replayed != deadLetters {
			t.Errorf("replay report %d replayed, %d left in email.dlq; want %d and 0", rep.Replayed, d, deadLetters)
		}
		count, moved, dups := tally(brokertest.DrainIDs(t, dlqVhost, "email"))
		lost := missing(allIDs(deadLetters), count)
		Report(t, Figures{Scenario: "memory alarm: dlq replay waits and resumes", Confirmed: rep.Replayed, Processed: moved,
			Lost: len(lost), Duplicated: dups, Recovery: sinceOn(replay, "publishing unblocked", cleared)})
	})

	t.Run("disk alarm past --blocked-timeout", func(t *testing.T) {
		const first, last, bound = 1501, 1800, 3 * time.Second
		brokertest.DeadLetter(t, dlqVhost, first, last, 1000)
		dir := t.TempDir()
		appDB := filepath.Join(dir, "app.db")
		srv, base := startServe(t, env, appDB)
		raiseAlarm(t, node, "disk")
		alarmAt := time.Now()
		load := startSignUps(base, 50*time.Millisecond)

		start := time.Now()
		prod := mqctltest.Start(t, env, "produce", "--count", "500", "--blocked-timeout", bound.String(), "-o", "json")
		replay := mqctltest.Start(t, dlqEnv, "dlq", "replay", "email.dlq", "--all", "--yes", "--blocked-timeout", bound.String(),
			"--journal", filepath.Join(dir, "journal.jsonl"), "-o", "json")
		const blocked = "publishing blocked by the broker: disk alarm"
		gaveUp := fmt.Sprintf("gave up after --blocked-timeout %s", bound)
		// The bound plus a generous margin for a loaded machine: what is
		// checked is that they do not hang, not how fast they are.
		for what, p := range map[string]*mqctltest.Proc{"produce": prod, "dlq replay": replay} {
			code := p.Wait(t, bound+45*time.Second)
			took := time.Since(start)
			if code != 1 || !strings.Contains(p.Stderr(), blocked) || !strings.Contains(p.Stderr(), gaveUp) {
				t.Errorf("%s under a disk alarm: exit %d after %s, want 1 after --blocked-timeout %s, saying so; stderr:\n%s", what, code, took.Round(time.Millisecond), bound, tail(p.Stderr(), 3000))
			}
			if took < bound {
				t.Errorf("%s gave up after %s, before --blocked-timeout %s", what, took, bound)
			}
		}
		exitedAfter := time.Since(start)
		waitStderr(t, srv, blocked, "serve", 30*time.Second)
		users := load.finish(t)
		stopAt := time.Now()
		terminate(t, srv, "serve (blocked)")
		stopped := time.Since(stopAt)
		clearAlarm(t, node, "disk")
		t.Logf("alarm on for %s", time.Since(alarmAt).Round(time.Millisecond))

		// Nothing lost: produce's confirmed events are in the queue, the
		// dead letters in the DLQ or their origin queue, and the sign-ups
		// go out when serve runs again on the same database.
		var sum registration.ProduceSummary
		if err := json.Unmarshal([]byte(prod.Stdout()), &sum); err != nil {
			t.Fatalf("produce -o json after giving up: %v: %q", err, prod.Stdout())
		}
		srv2, base2 := startServe(t, env, appDB)
		brokertest.WaitFor(t, "the outbox sent after the restart", time.Minute, func() bool { return outboxPending(t, base2) == 0 })
		terminate(t, srv2, "serve")
		ours, theirs := splitIDs(brokertest.DrainIDs(t, node, registration.Email), users)
		_, produced, prodDups := tally(theirs)
		Report(t, Figures{Scenario: "disk alarm past --blocked-timeout: produce exits 1", Confirmed: sum.Confirmed, Processed: produced,
			Lost: max(0, sum.Confirmed-produced), Duplicated: prodDups, Recovery: exitedAfter - bound,
			Note: fmt.Sprintf("exited %s after the start, bound %s; published but unconfirmed ones may be in the queue too", exitedAfter.Round(time.Millisecond), bound)})
		_, relayed, relayDups := tally(ours)
		Report(t, Figures{Scenario: "disk alarm: serve stops on SIGTERM while blocked, relays after restart", Confirmed: len(users), Processed: relayed,
			Lost: len(users) - relayed, Duplicated: relayDups, Recovery: stopped, Note: "recovery = time from SIGTERM to exit while blocked"})
		var want []string
		for i := first; i <= last; i++ {
			want = append(want, fmt.Sprintf("evt-%05d", i))
		}
		inDLQ, _, _ := tally(brokertest.DrainIDs(t, dlqVhost, "email.dlq"))
		inOrigin, moved, dups := tally(brokertest.DrainIDs(t, dlqVhost, "email"))
		lost := missing(want, inDLQ, inOrigin)
		Report(t, Figures{Scenario: "disk alarm past --blocked-timeout: dlq replay exits 1", Confirmed: len(want), Processed: len(want) - len(lost),
			Lost: len(lost), Duplicated: dups, Recovery: exitedAfter - bound,
			Note: fmt.Sprintf("%d moved, %d left in the DLQ", moved, len(inDLQ))})
	})

	t.Run("consume stopped while its retries are blocked", func(t *testing.T) {
		// Start clean: what earlier subtests left in the e-mail queues.
		emailQueues := []string{pattern.DelayQueue(registration.Email, 1), pattern.DelayQueue(registration.Email, 2), registration.Email, pattern.DefaultDLQ(registration.Email)}
		for _, q := range emailQueues {
			brokertest.DrainIDs(t, node, q)
		}
		const events = 30
		if r := mqctltest.Run(t, time.Minute, env, "produce", "--count", fmt.Sprint(events)); r.Code != 0 {
			t.Fatalf("produce: exit %d: %s", r.Code, r.Stderr)
		}
		raiseAlarm(t, node, "disk")
		// Every attempt fails, so the worker publishes retries at once: the
		// broker blocks its connection, and stops reading it.
		args := append([]string{"consume", registration.Email, "--fail-rate", "1", "--prefetch", "5", "--latency", "1ms",
			"--db", filepath.Join(t.TempDir(), "email.db")}, retryFlags...)
		worker := mqctltest.Start(t, env, args...)
		brokertest.WaitFor(t, "the worker's connection blocked", time.Minute, func() bool {
			out, _ := node.TryCtl("list_connections", "state")
			return strings.Contains(out, "blocked")
		})
		stopAt := time.Now()
		worker.Signal(syscall.SIGTERM)
		// Each broker round trip of the stop is bounded (5 s); the margin
		// is for a loaded machine. Without the bound it waits for the alarm.
		code := worker.Wait(t, 45*time.Second)
		stopped := time.Since(stopAt)
		if code != 0 {
			t.Errorf("consume stopped during the alarm: exit %d, want 0; stderr:\n%s", code, tail(worker.Stderr(), 3000))
		}
		clearAlarm(t, node, "disk")
		// Nothing lost: every event is in the work queue, a delay queue or
		// the DLQ (delay queues first: their messages move on to the work
		// queue when they expire).
		var ids []string
		for _, q := range emailQueues {
			ids = append(ids, brokertest.DrainIDs(t, node, q)...)
		}
		_, kept, dups := tally(ids)
		Report(t, Figures{Scenario: "disk alarm: consume stops on SIGTERM while its retries are blocked", Confirmed: events, Processed: kept,
			Lost: events - kept, Duplicated: dups, Recovery: stopped,
			Note: "recovery = time from SIGTERM to exit while blocked; processed = events still in the e-mail queues"})
	})
}
