package faults

import (
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/ledger"
	"github.com/mqctl/mqctl/internal/mqctltest"
	"github.com/mqctl/mqctl/internal/registration"
)

// Helpers every scenario shares.

// effectTables is where the simulated provider of each side effect
// records what it did.
var effectTables = map[string]string{registration.Email: "sent_emails", registration.Points: "granted_points", registration.Coupon: "issued_coupons"}

// effect is one side effect a worker recorded.
type effect struct {
	EventID string
	At      time.Time
}

// readEffects reads what a worker's simulated provider recorded in its
// database (sent_emails, granted_points, issued_coupons), oldest first.
func readEffects(t *testing.T, db, table string) []effect {
	t.Helper()
	d, err := ledger.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rows, err := d.Query(`SELECT event_id, at FROM ` + table)
	if err != nil {
		return nil // the worker has not created its tables yet
	}
	defer rows.Close()
	var out []effect
	for rows.Next() {
		var e effect
		var at string
		if err := rows.Scan(&e.EventID, &at); err != nil {
			t.Fatal(err)
		}
		e.At, _ = time.Parse(time.RFC3339Nano, at)
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// effectCounts counts, per event id, the side effects a consumer whose
// database is effectsDB(dir, effect) recorded (empty while its table does
// not exist yet).
func effectCounts(t *testing.T, dir, effect string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, e := range readEffects(t, effectsDB(dir, effect), effectTables[effect]) {
		out[e.EventID]++
	}
	return out
}

// terminate sends SIGTERM and expects a clean exit 0.
func terminate(t *testing.T, p *mqctltest.Proc, what string) {
	t.Helper()
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(t, 60*time.Second); code != 0 {
		t.Errorf("%s exited %d on SIGTERM, want 0; stderr:\n%s", what, code, tail(p.Stderr(), 3000))
	}
}

// tail is the end of a long output, for failure messages.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
