package faults

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/ledger"
	"github.com/mqctl/mqctl/internal/mqctltest"
	"github.com/mqctl/mqctl/internal/registration"
)

// TestCrashBrokerKilledMidProduceAndMidServeConsume is scenario 1: the
// broker is killed with SIGKILL (no clean shutdown, no flush) in the
// middle of `mqctl produce`, then in the middle of `mqctl serve` and the
// three `mqctl consume` workers under sign-up load, and restarted on the
// same data. Every event the producer or the relay had confirmed must
// come out the other end, each side effect exactly once. mqctl is given a
// second node URL that never answers, so its reconnects go through the
// fail-over path too.
func TestCrashBrokerKilledMidProduceAndMidServeConsume(t *testing.T) {
	node := startRegistrationNode(t)
	env := mqctlEnv(node.URL(), deadURL(t))
	probe := newProber(t, node.URL())
	t.Run("produce", func(t *testing.T) { crashMidProduce(t, node, env, probe) })
	t.Run("serve+consume", func(t *testing.T) { crashMidServeConsume(t, node, env, probe) })
}

func crashMidProduce(t *testing.T, node *brokertest.Node, env map[string]string, probe *prober) {
	const n = 4000
	p := mqctltest.Start(t, env, "produce", "--count", fmt.Sprint(n), "--rate", "800", "--vip-ratio", "0.25", "-o", "json", "-v")
	brokertest.WaitFor(t, "a third of the events confirmed", 60*time.Second, func() bool { return probe.depth(registration.Email) >= n/3 })
	node.Kill(t)
	killed := time.Now()
	select {
	case <-p.Done():
		t.Fatalf("produce exited when the broker died; stderr:\n%s", tail(p.Stderr(), 3000))
	default:
	}
	node.Start(t)
	up := time.Now()
	if code := p.Wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("produce exited %d after the crash, want 0; stderr:\n%s", code, tail(p.Stderr(), 3000))
	}
	// Recovery: from the node answering again to produce connected again.
	recovery := time.Duration(-1)
	if at := logTimes(p.Stderr(), "produce: connected"); len(at) >= 2 {
		recovery = max(0, at[len(at)-1].Sub(up))
	}
	t.Logf("broker down for %s", up.Sub(killed).Round(time.Millisecond))
	var sum registration.ProduceSummary
	if err := json.Unmarshal([]byte(p.Stdout()), &sum); err != nil {
		t.Fatalf("produce -o json: %v: %q", err, p.Stdout())
	}
	if sum.Confirmed != n || sum.Reconnects < 1 {
		t.Errorf("produce summary %+v: want %d confirmed after at least one reconnect", sum, n)
	}
	// produce makes exactly n events and exits 0 only once all n are
	// confirmed, so n distinct ids in a queue means none was lost.
	ids := brokertest.DrainIDs(t, node, registration.Email)
	_, distinct, dups := tally(ids)
	for _, q := range []string{registration.Points, registration.Coupon} {
		_, d, _ := tally(brokertest.DrainIDs(t, node, q))
		want := n
		if q == registration.Coupon {
			want = sum.VIP
		}
		if d != want {
			t.Errorf("%s holds %d distinct events, want %d", q, d, want)
		}
	}
	Report(t, Figures{Scenario: "kill -9 broker mid produce", Confirmed: sum.Confirmed, Processed: distinct,
		Lost: sum.Confirmed - distinct, Duplicated: dups, Recovery: recovery,
		Note: fmt.Sprintf("%d republished, %d reconnects", sum.Republished, sum.Reconnects)})
}

// logTimes returns the times of mqctl's stderr lines (lineLog: "15:04:05.000
// what: message") that contain what, on today's date.
func logTimes(stderr, what string) []time.Time {
	var out []time.Time
	now := time.Now()
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.Contains(line, what) || len(line) < 12 {
			continue
		}
		c, err := time.ParseInLocation("15:04:05.000", line[:12], time.Local)
		if err != nil {
			continue
		}
		out = append(out, time.Date(now.Year(), now.Month(), now.Day(), c.Hour(), c.Minute(), c.Second(), c.Nanosecond(), time.Local))
	}
	return out
}

func crashMidServeConsume(t *testing.T, node *brokertest.Node, env map[string]string, probe *prober) {
	dir := t.TempDir()
	appDB := filepath.Join(dir, "app.db")
	srv, base := startServe(t, env, appDB)
	workers := startConsumers(t, env, dir)
	load := startSignUps(base, 10*time.Millisecond)
	brokertest.WaitFor(t, "e-mails sent before the crash", 60*time.Second, func() bool { return len(effectCounts(t, dir, registration.Email)) >= 150 })
	node.Kill(t)
	killed := time.Now()
	sentAtCrash := outboxSent(t, appDB)
	node.Start(t)
	up := time.Now()
	before := len(effectCounts(t, dir, registration.Email))
	brokertest.WaitFor(t, "e-mails flowing after the restart", 90*time.Second, func() bool { return len(effectCounts(t, dir, registration.Email)) > before })
	recovery := time.Since(up)
	time.Sleep(time.Second) // sign-ups go on a little after the restart
	users := load.finish(t)
	t.Logf("broker down for %s; %d events confirmed by the relay before the crash", up.Sub(killed).Round(time.Millisecond), len(sentAtCrash))

	vips := 0
	for _, u := range users {
		if u.VIP {
			vips++
		}
	}
	brokertest.WaitFor(t, "every side effect of every sign-up", 2*time.Minute, func() bool {
		return len(effectCounts(t, dir, registration.Email)) >= len(users) && len(effectCounts(t, dir, registration.Points)) >= len(users) &&
			len(effectCounts(t, dir, registration.Coupon)) >= vips
	})
	terminate(t, srv, "serve")
	for e, w := range workers {
		terminate(t, w, "consume "+e)
	}

	sent := outboxSent(t, appDB)
	for id := range sentAtCrash {
		if !sent[id] {
			t.Errorf("event %s was confirmed before the crash but is not marked sent after it", id)
		}
	}
	if len(sent) != len(users) {
		t.Errorf("outbox has %d events sent, want one per sign-up (%d)", len(sent), len(users))
	}
	// Each side effect exactly once: for every confirmed event one e-mail,
	// one points grant, and for VIPs one coupon; nothing for anything else.
	got := map[string]map[string]int{}
	for _, e := range registration.SideEffects {
		got[e] = effectCounts(t, dir, e)
	}
	lost, dup := 0, 0
	processed := 0
	for _, u := range users {
		want := map[string]int{registration.Email: 1, registration.Points: 1, registration.Coupon: 0}
		if u.VIP {
			want[registration.Coupon] = 1
		}
		ok := true
		for e, w := range want {
			switch n := got[e][u.EventID]; {
			case n < w:
				ok = false
				t.Errorf("event %s (vip %v, confirmed before the crash %v): %s %d times, want %d", u.EventID, u.VIP, sentAtCrash[u.EventID], e, n, w)
			case n > w:
				dup += n - w
				t.Errorf("event %s: %s %d times, want %d: a side effect happened twice", u.EventID, e, n, w)
			}
		}
		if ok {
			processed++
		} else {
			lost++
		}
	}
	for e, m := range got {
		if len(m) > len(users) {
			t.Errorf("%s recorded for %d events, more than the %d sign-ups", e, len(m), len(users))
		}
	}
	Report(t, Figures{Scenario: "kill -9 broker mid serve+consume", Confirmed: len(sent), Processed: processed,
		Lost: lost, Duplicated: dup, Recovery: recovery,
		Note: fmt.Sprintf("%d sign-ups (%d VIP), %d confirmed before the crash, broker down %s", len(users), vips, len(sentAtCrash), up.Sub(killed).Round(100*time.Millisecond))})
}

// outboxSent is the set of event ids the relay has marked sent (confirmed
// by the broker).
func outboxSent(t *testing.T, path string) map[string]bool {
	t.Helper()
	db, err := ledger.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT event_id FROM outbox WHERE sent_at IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out[id] = true
	}
	return out
}
