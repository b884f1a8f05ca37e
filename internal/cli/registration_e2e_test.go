package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/ledger"
	"github.com/mqctl/mqctl/internal/pattern"
	"github.com/mqctl/mqctl/internal/registration"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// mqctlBinary builds mqctl once per test run, for tests that must run it
// as a separate process (to kill it).
func mqctlBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		// One fixed place per checkout, overwritten by each run, so runs
		// don't pile up binaries in the temp directory.
		wd, _ := os.Getwd()
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("mqctl-e2e-%x", sha256.Sum256([]byte(wd)))[:24])
		if err := os.MkdirAll(dir, 0o700); err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "mqctl")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/mqctl/mqctl/cmd/mqctl").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// proc is mqctl running as a child process.
type proc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr *syncBuffer
	done   chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func startMqctl(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(mqctlBinary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "MQCTL_CONFIG=" + filepath.Join(t.TempDir(), "none.yaml")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &proc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.signal(syscall.SIGKILL); <-p.done })
	return p
}

func (p *proc) signal(s syscall.Signal) { _ = p.cmd.Process.Signal(s) }

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("mqctl %v did not exit; stderr:\n%s", p.cmd.Args[1:], p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

func declareRegistration(t *testing.T, env *brokertest.Env) {
	t.Helper()
	policies := map[string]pattern.Retry{}
	for _, e := range registration.SideEffects {
		policies[e] = pattern.Retry{Queue: e, MaxAttempts: 3, Backoff: []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}, DLQ: e + ".dlq"}
	}
	if err := registration.DeclareTopology(env.Channel(t), policies); err != nil {
		t.Fatal(err)
	}
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
	args := []string{"consume", "email", "--db", db, "--latency", "10ms", "--prefetch", "20",
		"--max-attempts", "3", "--backoff", "200ms,400ms", "-o", "json"}
	first := startMqctl(t, env.Environ(), args...)
	brokertest.WaitFor(t, "the first worker halfway", 60*time.Second, func() bool { r, _ := emails(t, db); return r >= n/4 })
	first.signal(syscall.SIGKILL)
	first.wait(t)
	before, _ := emails(t, db)
	if before >= n {
		t.Fatalf("the worker finished everything (%d) before it was killed; the test proves nothing", before)
	}

	second := startMqctl(t, env.Environ(), args...)
	brokertest.WaitFor(t, "every e-mail sent", 60*time.Second, func() bool { r, _ := emails(t, db); return r >= n })
	brokertest.WaitFor(t, "the queue drained", 30*time.Second, func() bool { return env.QueueDepth(t, "email") == 0 })
	second.signal(syscall.SIGTERM)
	if code := second.wait(t); code != 0 {
		t.Errorf("consume exited %d on SIGTERM, want 0; stderr:\n%s", code, second.stderr.String())
	}
	rows, distinct := emails(t, db)
	if rows != n || distinct != n {
		t.Errorf("sent %d e-mails for %d distinct events, want exactly %d each (killed after %d)", rows, distinct, n, before)
	}
	var cs consumeSummary
	if err := json.Unmarshal(second.stdout.Bytes(), &cs); err != nil {
		t.Errorf("consume -o json summary: %v: %q", err, second.stdout.String())
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
	srv := startMqctl(t, env.Environ(), "serve", "--listen", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "app.db"))
	var base string
	brokertest.WaitFor(t, "serve listening", 30*time.Second, func() bool {
		m := listening.FindStringSubmatch(srv.stderr.String())
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
	if health["status"] != "ok" || health["outbox_pending"] != float64(0) || health["outbox_sent"] != float64(20) {
		t.Errorf("healthz = %v", health)
	}
	srv.signal(syscall.SIGTERM)
	if code := srv.wait(t); code != 0 {
		t.Errorf("serve exited %d on SIGTERM; stderr:\n%s", code, srv.stderr.String())
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
	c := startMqctl(t, env.Environ(), "consume", "email", "--fail-rate", "1", "--max-attempts", "3",
		"--backoff", "200ms,400ms", "--db", filepath.Join(t.TempDir(), "fx.db"), "-o", "json")
	brokertest.WaitFor(t, "every e-mail in email.dlq", 30*time.Second, func() bool { return env.QueueDepth(t, "email.dlq") == n })
	c.signal(syscall.SIGTERM)
	if code := c.wait(t); code != 0 {
		t.Fatalf("consume exited %d; stderr:\n%s", code, c.stderr.String())
	}
	var sum consumeSummary
	if err := json.Unmarshal(c.stdout.Bytes(), &sum); err != nil {
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
	if !strings.Contains(c.stderr.String(), "attempt 3 of") || !strings.Contains(c.stderr.String(), "dead-lettered") {
		t.Errorf("stderr does not tell the story:\n%s", c.stderr.String())
	}
}
