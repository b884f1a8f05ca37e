package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/ledger"
	"github.com/mqctl/mqctl/internal/mqctltest"
	"github.com/mqctl/mqctl/internal/registration"
	"github.com/mqctl/mqctl/internal/registration/registrationtest"
)

// declareRegistration applies the registration topology as `mqctl
// topology apply` does, with the policy the consumers here are given
// (--max-attempts 3 --backoff 200ms,400ms).
func declareRegistration(t *testing.T, env *brokertest.Env) {
	t.Helper()
	registrationtest.Apply(t, env.Mgmt, env.Vhost)
}

// emails counts rows and distinct events in the simulated e-mail provider.
func emails(t *testing.T, db string) (rows, distinct int) {
	t.Helper()
	d, err := ledger.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.QueryRow(`SELECT count(*), count(DISTINCT event_id) FROM sent_emails`).Scan(&rows, &distinct); err != nil {
		return 0, 0 // table not created yet
	}
	return rows, distinct
}

func TestConsumeKilledMidBatchLosesNothingAndDuplicatesNothing(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	declareRegistration(t, env)
	const n = 400
	res := runCLI(t, env.Environ(), "produce", "--count", fmt.Sprint(n), "--vip-ratio", "0.25", "-o", "json")
	var sum registration.ProduceSummary
	if err := json.Unmarshal([]byte(res.Stdout), &sum); err != nil || res.Code != 0 || sum.Confirmed != n {
		t.Fatalf("produce: code %d, %+v, %v; stderr %s", res.Code, sum, err, res.Stderr)
	}
	if d := env.QueueDepth(t, "email"); d != n {
		t.Fatalf("email holds %d after produce, want %d", d, n)
	}

	db := filepath.Join(t.TempDir(), "effects.db")
	// 100ms a call, 20 at a time: the last three quarters take at least
	// 1.5 s, however fast the machine, so the kill lands mid-run.
	args := []string{"consume", "email", "--db", db, "--latency", "100ms", "--prefetch", "20",
		"--max-attempts", "3", "--backoff", "200ms,400ms", "-o", "json"}
	first := mqctltest.Start(t, env.Environ(), args...)
	brokertest.WaitFor(t, "the first worker halfway", 60*time.Second, func() bool { r, _ := emails(t, db); return r >= n/4 })
	first.Signal(syscall.SIGKILL)
	first.Wait(t, 60*time.Second)
	before, _ := emails(t, db)
	if before >= n {
		t.Fatalf("the worker finished everything (%d) before it was killed; the test proves nothing", before)
	}

	second := mqctltest.Start(t, env.Environ(), args...)
	brokertest.WaitFor(t, "every e-mail sent", 60*time.Second, func() bool { r, _ := emails(t, db); return r >= n })
	brokertest.WaitFor(t, "the queue drained", 30*time.Second, func() bool { return env.QueueDepth(t, "email") == 0 })
	second.Signal(syscall.SIGTERM)
	if code := second.Wait(t, 60*time.Second); code != 0 {
		t.Errorf("consume exited %d on SIGTERM, want 0; stderr:\n%s", code, second.Stderr())
	}
	rows, distinct := emails(t, db)
	if rows != n || distinct != n {
		t.Errorf("sent %d e-mails for %d distinct events, want exactly %d each (killed after %d)", rows, distinct, n, before)
	}
	var cs consumeSummary
	if err := json.Unmarshal([]byte(second.Stdout()), &cs); err != nil {
		t.Errorf("consume -o json summary: %v: %q", err, second.Stdout())
	}
	if cs.Queue != "email" || cs.DeadLettered != 0 || cs.Acked == 0 {
		t.Errorf("summary = %+v", cs)
	}
	if d := env.QueueDepth(t, "email.dlq"); d != 0 {
		t.Errorf("email.dlq holds %d, want 0", d)
	}
}

var listening = regexp.MustCompile(`listening on (http://[0-9.:]+)`)

func TestServeAnswersAndRelaysEveryRegistration(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	declareRegistration(t, env)
	srv := mqctltest.Start(t, env.Environ(), "serve", "--listen", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "app.db"))
	var base string
	brokertest.WaitFor(t, "serve listening", 30*time.Second, func() bool {
		m := listening.FindStringSubmatch(srv.Stderr())
		if m != nil {
			base = m[1]
		}
		return m != nil
	})
	vips := 0
	for i := range 20 {
		vip := i%4 == 0
		if vip {
			vips++
		}
		body := fmt.Sprintf(`{"name":"u%d","email":"u%d@example.com","vip":%v}`, i, i, vip)
		resp, err := http.Post(base+"/register", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("register: %d", resp.StatusCode)
		}
	}
	resp, err := http.Post(base+"/register", "application/json", strings.NewReader(`{"name":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("register without email: %d, want 400", resp.StatusCode)
	}
	brokertest.WaitFor(t, "every event in the queues", 30*time.Second, func() bool {
		return env.QueueDepth(t, "email") == 20 && env.QueueDepth(t, "points") == 20 && env.QueueDepth(t, "coupon") == vips
	})
	hz, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var health map[string]any
	_ = json.NewDecoder(hz.Body).Decode(&health)
	hz.Body.Close()
	relay, _ := health["relay"].(map[string]any)
	if health["status"] != "ok" || health["outbox_pending"] != float64(0) || health["outbox_sent"] != float64(20) || relay["state"] != "connected" || relay["last_published"] == nil {
		t.Errorf("healthz = %v", health)
	}
	srv.Signal(syscall.SIGTERM)
	if code := srv.Wait(t, 60*time.Second); code != 0 {
		t.Errorf("serve exited %d on SIGTERM; stderr:\n%s", code, srv.Stderr())
	}
	if !strings.Contains(srv.Stderr(), "shutting down") || !strings.Contains(srv.Stderr(), "stopped: 20 outbox rows sent, 0 pending") {
		t.Errorf("serve said nothing of its shutdown:\n%s", srv.Stderr())
	}
}

func TestRegistrationCommandsRejectBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"consume", "sms"},
		{"consume", "email", "--fail-rate", "2"},
		{"consume", "email", "--backoff", "0s"},
		{"consume", "email", "--prefetch", "0"},
		{"produce"},
		{"produce", "--count", "5", "--vip-ratio", "1.5"},
		{"serve", "--listen", "nonsense"},
	} {
		res := runCLI(t, nil, args...)
		if res.Code != 2 {
			t.Errorf("mqctl %v exited %d, want 2; stderr %s", args, res.Code, res.Stderr)
		}
	}
}

func TestConsumeWithoutItsQueueSaysWhatToDo(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	res := runCLI(t, env.Environ(), "consume", "email", "--db", filepath.Join(t.TempDir(), "x.db"))
	if res.Code != 1 || !strings.Contains(res.Stderr, "topology apply") {
		t.Errorf("consume without the queue: exit %d, stderr %q; want 1 and a hint", res.Code, res.Stderr)
	}
}

func TestConsumeFailRateOneDeadLettersEveryEmailAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	declareRegistration(t, env) // max_attempts 3, backoff 200ms,400ms
	const n = 20
	if res := runCLI(t, env.Environ(), "produce", "--count", fmt.Sprint(n), "--vip-ratio", "0.5"); res.Code != 0 {
		t.Fatalf("produce: %d %s", res.Code, res.Stderr)
	}
	c := mqctltest.Start(t, env.Environ(), "consume", "email", "--fail-rate", "1", "--max-attempts", "3",
		"--backoff", "200ms,400ms", "--db", filepath.Join(t.TempDir(), "fx.db"), "-o", "json")
	brokertest.WaitFor(t, "every e-mail in email.dlq", 30*time.Second, func() bool { return env.QueueDepth(t, "email.dlq") == n })
	c.Signal(syscall.SIGTERM)
	if code := c.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("consume exited %d; stderr:\n%s", code, c.Stderr())
	}
	var sum consumeSummary
	if err := json.Unmarshal([]byte(c.Stdout()), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.DeadLettered != n || sum.Retried != 2*n || sum.Acked != 0 {
		t.Errorf("summary %+v; want %d dead-lettered after %d retries, none acked", sum, n, 2*n)
	}
	for q, want := range map[string]int{"email": 0, "email.retry.1": 0, "email.retry.2": 0, "email.dlq": n, "points.dlq": 0, "coupon.dlq": 0} {
		if got := env.QueueDepth(t, q); got != want {
			t.Errorf("%s holds %d, want %d", q, got, want)
		}
	}
	if !strings.Contains(c.Stderr(), "attempt 3 of") || !strings.Contains(c.Stderr(), "dead-lettered") {
		t.Errorf("stderr does not tell the story:\n%s", c.Stderr())
	}
}
