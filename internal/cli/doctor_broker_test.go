package cli

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/doctor"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// doctorCheck is one line of `doctor -o json`.
type doctorCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Hint   string `json:"hint"`
}

// doctorJSON runs `doctor -o json` and returns its checks by name.
func doctorJSON(t *testing.T, env map[string]string) (map[string]doctorCheck, cliResult) {
	t.Helper()
	r := runCLI(t, env, "doctor", "-o", "json")
	var v struct {
		OK     bool          `json:"ok"`
		Checks []doctorCheck `json:"checks"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
		t.Fatalf("doctor -o json (exit %d) is not JSON: %v\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	out := map[string]doctorCheck{}
	for _, c := range v.Checks {
		out[c.Name] = c
	}
	return out, r
}

// brokerSeries reads the test broker's version and khepri_db state.
func brokerSeries(t *testing.T, env *brokertest.Env) (version string, major, minor int, khepri bool) {
	t.Helper()
	ov, err := env.Mgmt.Overview()
	if err != nil {
		t.Fatal(err)
	}
	version = ov.RabbitMQVersion
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		t.Fatalf("version %q", version)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		t.Fatalf("version %q", version)
	}
	flags, err := env.Mgmt.ListFeatureFlags()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range flags {
		if f.Name == "khepri_db" && f.State == "enabled" {
			khepri = true
		}
	}
	return version, major, minor, khepri
}

// TestDoctorBrokerVersionChecks runs the 3.x/4.x checks against the test
// broker (3.10 by default; MQCTL_TEST_URL/MQCTL_TEST_MGMT_URL for 4.0 and
// 4.3): version, metadata store, deprecated features in use (a transient
// non-exclusive queue is one on 4.x), metrics collection, and quorum
// queues without a dead-letter target. Warnings leave the exit code 0.
func TestDoctorBrokerVersionChecks(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	version, major, minor, khepri := brokerSeries(t, env)
	ch := env.Channel(t)
	declare := func(name string, durable bool, args amqp.Table) error {
		_, err := ch.QueueDeclare(name, durable, false, false, false, args)
		return err
	}
	for name, args := range map[string]amqp.Table{
		"nodlx":    {"x-queue-type": "quorum"},
		"byarg":    {"x-queue-type": "quorum", "x-dead-letter-exchange": "graveyard"},
		"bypolicy": {"x-queue-type": "quorum"},
	} {
		if err := declare(name, true, args); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.Mgmt.PutPolicy(env.Vhost, "dlx", rabbithole.Policy{
		Pattern: "^bypolicy$", ApplyTo: "queues", Definition: rabbithole.PolicyDefinition{"dead-letter-exchange": "graveyard"}}); err != nil {
		t.Fatal(err)
	}
	// A deprecated feature in use on 4.x; 4.3 may deny it by default.
	transient := declare("transient", false, nil) == nil
	if !transient {
		ch = env.Channel(t)
	}

	var checks map[string]doctorCheck
	var r cliResult
	// The policy applies asynchronously.
	brokertest.WaitFor(t, "doctor to see bypolicy's dead-letter policy", 30*time.Second, func() bool {
		checks, r = doctorJSON(t, env.Environ())
		return strings.Contains(checks["dead lettering"].Detail, "nodlx") && !strings.Contains(checks["dead lettering"].Detail, "bypolicy")
	})
	if r.Code != 0 {
		t.Errorf("doctor exit %d, want 0 (warnings do not fail)\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	expect := func(name, status string, detail ...string) {
		t.Helper()
		c := checks[name]
		if c.Status != status {
			t.Errorf("%s: %s, want %s: %s — %s", name, c.Status, status, c.Detail, c.Hint)
		}
		for _, d := range detail {
			if !strings.Contains(c.Detail, d) {
				t.Errorf("%s: detail %q lacks %q", name, c.Detail, d)
			}
		}
	}
	expect("broker version", "ok", "RabbitMQ "+version)
	switch {
	case major == 4 && minor >= 3 || khepri:
		expect("metadata store", "ok", "Khepri", "majority")
	default:
		expect("metadata store", "ok", "Mnesia")
	}
	switch {
	case major < 4:
		expect("deprecated features", "ok", "not reported", version)
	case transient:
		expect("deprecated features", "warn", "transient_nonexcl_queues")
		if !strings.Contains(checks["deprecated features"].Hint, "durable") {
			t.Errorf("deprecated features: hint %q", checks["deprecated features"].Hint)
		}
	}
	expect("metrics collection", "ok", "on")
	dl := checks["dead lettering"]
	if strings.Contains(dl.Detail, "byarg") {
		t.Errorf("byarg has a dead-letter exchange: %s", dl.Detail)
	}
	if major >= 4 {
		// The default delivery limit of 20 drops messages at the limit.
		expect("dead lettering", "warn", "1 quorum queue", "nodlx", "limit of 20")
		if !strings.Contains(dl.Hint, "dead_letter: true") {
			t.Errorf("dead lettering: hint %q", dl.Hint)
		}
	} else {
		expect("dead lettering", "ok", "1 quorum queue", "nodlx", "nothing is dropped")
		if !strings.Contains(dl.Hint, "4.x sets a delivery limit of 20") {
			t.Errorf("dead lettering: hint %q", dl.Hint)
		}
	}

	// A quorum queue with its own delivery limit and no dead-letter
	// target drops messages on every version.
	limited := brokertest.New(t)
	if _, err := limited.Channel(t).QueueDeclare("limited", true, false, false, false,
		amqp.Table{"x-queue-type": "quorum", "x-delivery-limit": int32(3)}); err != nil {
		t.Fatal(err)
	}
	checks, r = doctorJSON(t, limited.Environ())
	if c := checks["dead lettering"]; r.Code != 0 || c.Status != "warn" || !strings.Contains(c.Detail, "limited") {
		t.Errorf("limited: exit %d, %+v", r.Code, c)
	}

	// The table shows each hint after the detail.
	r = runCLI(t, env.Environ(), "doctor")
	if r.Code != 0 || !strings.Contains(r.Stdout, "dead lettering") || !strings.Contains(r.Stdout, "nodlx") || !strings.Contains(r.Stdout, " — ") {
		t.Errorf("table: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// TestDoctorMetricsCollectionOff: on a node with management metrics
// collection off doctor warns, says what backlog can and cannot do, and
// still exits 0. The queue list then lacks effective policies (3.x, 4.0):
// a dead-letter exchange set by policy must still count.
func TestDoctorMetricsCollectionOff(t *testing.T) {
	t.Parallel()
	node := brokertest.StartNodeWith(t, brokertest.NodeOptions{Management: true, Config: metricsOffConfig})
	env := map[string]string{"MQCTL_URL": node.URL(), "MQCTL_MGMT_URL": node.MgmtURL()}
	if _, err := node.Channel(t).QueueDeclare("email", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	api, err := rabbithole.NewClient(node.MgmtURL(), "guest", "guest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.PutPolicy("/", "email-dlx", rabbithole.Policy{
		Pattern: "^email$", ApplyTo: "queues", Definition: rabbithole.PolicyDefinition{"dead-letter-exchange": "email.dlx"}}); err != nil {
		t.Fatal(err)
	}
	var checks map[string]doctorCheck
	var r cliResult
	brokertest.WaitFor(t, "doctor to see email's dead-letter policy", 30*time.Second, func() bool {
		checks, r = doctorJSON(t, env)
		return strings.Contains(checks["dead lettering"].Detail, "every quorum queue")
	})
	m := checks["metrics collection"]
	if r.Code != 0 || m.Status != "warn" || !strings.Contains(m.Detail, "off") || !strings.Contains(m.Detail, "cannot evaluate") ||
		!strings.Contains(m.Hint, "disable_metrics_collector") {
		t.Errorf("metrics collection: exit %d, %+v\nall checks: %+v\n%s", r.Code, m, checks, r.Stderr)
	}
}

// TestDoctorRendersWarningsWithoutFailing renders a report of fakes: each
// status with its hint, no escape codes when piped, and exit 0 while
// nothing fails.
func TestDoctorRendersWarningsWithoutFailing(t *testing.T) {
	rep := doctor.Report{Checks: []doctor.Check{
		{Name: "amqp", Status: doctor.OK, Detail: "connected to amqp://a/ (RabbitMQ 4.0.5)"},
		{Name: "metadata store", Status: doctor.OK, Detail: "Mnesia (feature flag khepri_db disabled)", Hint: "enable khepri_db before 4.3"},
		{Name: "deprecated features", Status: doctor.Warn, Detail: "in use: transient_nonexcl_queues (permitted by default)", Hint: "declare those queues durable"},
		{Name: "metrics collection", Status: doctor.Warn, Detail: "off: no counts", Hint: "use Prometheus"},
		{Name: "dead lettering", Status: doctor.Skip, Detail: `vhost "v" not found`},
	}}
	ios, _, out, _ := iostreams.Test()
	if err := doctorPrint(ios, output.Table, config.Public{}, rep); err != nil {
		t.Fatalf("warnings must not fail doctor: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 || strings.Contains(out.String(), "\x1b") {
		t.Fatalf("want a plain header and 5 rows:\n%q", out)
	}
	for i, want := range [][]string{
		{"metadata store", "ok", "Mnesia (feature flag khepri_db disabled) — enable khepri_db before 4.3"},
		{"deprecated features", "warn", "transient_nonexcl_queues (permitted by default) — declare those queues durable"},
		{"metrics collection", "warn", "off: no counts — use Prometheus"},
		{"dead lettering", "skip", `vhost "v" not found`},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+2], w) {
				t.Errorf("line %d lacks %q: %q", i+2, w, lines[i+2])
			}
		}
	}

	ios, _, out, _ = iostreams.Test()
	ios.SetTTY(false, true, false)
	if err := doctorPrint(ios, output.Table, config.Public{}, rep); err != nil || !strings.Contains(out.String(), "\x1b[") {
		t.Errorf("terminal: styled output expected (%v): %q", err, out)
	}

	ios, _, out, _ = iostreams.Test()
	if err := doctorPrint(ios, output.JSON, config.Public{}, rep); err != nil {
		t.Fatal(err)
	}
	var v struct {
		OK     bool          `json:"ok"`
		Checks []doctorCheck `json:"checks"`
	}
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || !v.OK || len(v.Checks) != 5 ||
		v.Checks[3].Status != "warn" || v.Checks[3].Hint != "use Prometheus" || v.Checks[4].Hint != "" {
		t.Errorf("json (%v): %s", err, out)
	}

	// A failure does decide the exit code.
	rep.Checks = append(rep.Checks, doctor.Check{Name: "broker version", Status: doctor.Fail, Detail: "RabbitMQ 3.9.29", Hint: "upgrade"})
	ios, _, _, _ = iostreams.Test()
	err := doctorPrint(ios, output.Table, config.Public{}, rep)
	if code := ExitCode(t.Context(), err, true); code != ExitError || !strings.Contains(err.Error(), "broker version") {
		t.Errorf("a failed check: exit %d, %v", code, err)
	}
}
