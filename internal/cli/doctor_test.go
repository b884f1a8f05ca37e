package cli

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

func TestDoctorHealthyBroker(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	r := runCLI(t, env.Environ(), "doctor")
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if strings.Contains(r.Stdout, "\x1b") {
		t.Errorf("piped doctor output has escape codes: %q", r.Stdout)
	}
	for _, want := range []string{"amqp", "ok", "management", env.Vhost, "quorum_queue=enabled"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, r.Stdout)
		}
	}

	r = runCLI(t, env.Environ(), "doctor", "-o", "json")
	var v struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Name, Status string
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
		t.Fatalf("doctor -o json is not JSON: %v\n%s", err, r.Stdout)
	}
	if !v.OK || len(v.Checks) != 11 {
		t.Errorf("json = %+v", v)
	}
	for _, c := range v.Checks {
		// Deprecated features in use are the whole broker's: on a shared
		// 4.x node another test's transient queue may be one.
		if c.Status != "ok" && !(c.Name == "deprecated features" && c.Status == "warn") {
			t.Errorf("check %s = %s", c.Name, c.Status)
		}
	}

	tty := runCLIWith(t, func(s *iostreams.IOStreams) { s.SetTTY(false, true, false) }, env.Environ(), "doctor")
	if !strings.Contains(tty.Stdout, "\x1b[") {
		t.Errorf("terminal doctor output should be styled")
	}
}

func TestDoctorUnreachableBrokerExits1WithoutSecret(t *testing.T) {
	t.Parallel()
	r := runCLI(t, map[string]string{"MQCTL_URL": "amqp://guest:s3cret@127.0.0.1:1/"}, "doctor")
	if r.Code != ExitError {
		t.Errorf("exit %d, want 1\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if strings.Contains(r.Stdout+r.Stderr, "s3cret") {
		t.Errorf("password leaked:\n%s%s", r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "connection refused") {
		t.Errorf("reason missing:\n%s", r.Stdout)
	}
}

func TestDoctorWrongPasswordExits4WithoutSecret(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	url := env.CreateUser(t, "doctor-pw", "right-password", "monitoring")
	envv := map[string]string{"MQCTL_URL": url, "MQCTL_PASSWORD": "wr0ng-passw0rd", "MQCTL_MGMT_URL": env.MgmtURL}
	r := runCLI(t, envv, "doctor", "-v", "-o", "json")
	if r.Code != ExitAuth {
		t.Errorf("exit %d, want 4\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if strings.Contains(r.Stdout+r.Stderr, "wr0ng-passw0rd") || strings.Contains(r.Stdout+r.Stderr, "right-password") {
		t.Errorf("password leaked:\n%s%s", r.Stdout, r.Stderr)
	}
}

func TestDoctorUserWithoutManagementTagExits4(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	url := env.CreateUser(t, "doctor-notag", "pw-notag-123")
	r := runCLI(t, map[string]string{"MQCTL_URL": url, "MQCTL_MGMT_URL": env.MgmtURL}, "doctor")
	if r.Code != ExitAuth {
		t.Fatalf("exit %d, want 4\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	// AMQP works for this user; only the management API refuses.
	if !strings.Contains(r.Stdout, "connected to") || !strings.Contains(r.Stdout, "set_user_tags") {
		t.Errorf("want AMQP ok and a tag hint:\n%s", r.Stdout)
	}
	if strings.Contains(r.Stdout+r.Stderr, "pw-notag-123") {
		t.Error("password leaked")
	}
}

func TestDoctorManagementPluginOffHint(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	// Port 1 stands for a node whose management listener is not there.
	r := runCLI(t, map[string]string{"MQCTL_URL": env.AMQPURL, "MQCTL_MGMT_URL": "http://127.0.0.1:1"}, "doctor")
	if r.Code != ExitError {
		t.Fatalf("exit %d, want 1\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "management plugin not enabled") || !strings.Contains(r.Stdout, "rabbitmq-plugins enable rabbitmq_management") {
		t.Errorf("want the plugin hint:\n%s", r.Stdout)
	}
}

// A vhost that does not exist is one sentence and exit 2 everywhere,
// whichever protocol found out: AMQP (produce, consume, topology, doctor)
// or the management API (backlog, dlq ls).
func TestUnknownVhostIsOneMessageAndExit2Everywhere(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	u, err := amqp.ParseURI(env.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Vhost = "no-such-vhost-here"
	e := map[string]string{"MQCTL_URL": u.String(), "MQCTL_MGMT_URL": env.MgmtURL}
	file := writeFile(t, "t.yaml", "apiVersion: mqctl/v1\nqueues: [{name: q}]\n")
	want := `vhost "no-such-vhost-here" does not exist`
	for _, args := range [][]string{
		{"doctor"}, {"backlog"}, {"dlq", "ls"}, {"produce", "--count", "1"},
		{"consume", "email", "--db", filepath.Join(t.TempDir(), "c.db")},
		{"topology", "plan", "-f", file}, {"topology", "apply", "-f", file},
	} {
		r := runCLI(t, e, args...)
		if r.Code != ExitUsage || !strings.Contains(r.Stdout+r.Stderr, want) || !strings.Contains(r.Stdout+r.Stderr, "rabbitmqctl add_vhost no-such-vhost-here") {
			t.Errorf("%v: exit %d, want 2 and %q with the add_vhost hint\n%s%s", args, r.Code, want, r.Stdout, r.Stderr)
		}
	}
	// The vhost a topology file names, on a connection to one that exists.
	named := writeFile(t, "named.yaml", "apiVersion: mqctl/v1\nvhost: no-such-vhost-here\nqueues: [{name: q}]\n")
	r := runCLI(t, env.Environ(), "topology", "apply", "-f", named)
	if r.Code != ExitUsage || !strings.Contains(r.Stderr, want) {
		t.Errorf("apply of a file naming a missing vhost: exit %d\n%s", r.Code, r.Stderr)
	}
}

func TestDoctorFlags(t *testing.T) {
	f := noBrokerFactory(t)
	var got *DoctorOptions
	cmd := NewCmdDoctor(f, func(o *DoctorOptions) error { got = o; return nil })
	if err := execReplacing(t, f, "", cmd, "doctor", "-o", "json"); err != nil {
		t.Fatal(err)
	}
	if got.Format != output.JSON || got.IO != f.IO || got.Settings == nil || got.Dialer == nil {
		t.Errorf("options = %+v", got)
	}
	cmd = NewCmdDoctor(f, func(*DoctorOptions) error { t.Error("runF called"); return nil })
	if err := execReplacing(t, f, "", cmd, "doctor", "extra"); err == nil {
		t.Error("doctor with an argument: want an error")
	}
}

// Passwords that are English words (password, user, wrong): the error
// messages keep their words ("wrong user or password" is not turned into
// "wrong xxxxx or password", which would give the password away), and
// the password still never shows as a credential.
func TestDoctorWordPasswordsKeepTheMessageReadable(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	for _, pw := range []string{"password", "user", "wrong"} {
		u, err := url.Parse(env.CreateUser(t, "doctor-"+pw, "the-right-one-1", "monitoring"))
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(u.User.Username(), pw)
		r := runCLI(t, map[string]string{"MQCTL_URL": u.String(), "MQCTL_MGMT_URL": env.MgmtURL}, "doctor", "-v")
		out := r.Stdout + r.Stderr
		if r.Code != ExitAuth {
			t.Errorf("password %q: exit %d, want 4\n%s", pw, r.Code, out)
		}
		if strings.Contains(out, ":"+pw+"@") || regexp.MustCompile(`xxxxx[a-z]|[a-z]xxxxx`).MatchString(out) {
			t.Errorf("password %q: shown as a credential, or masked inside a word:\n%s", pw, out)
		}
	}
}

// Ports swapped: an AMQP URL on the management API's port, and a
// management URL on the AMQP port, each say which protocol the peer does
// not speak and which port to use, once.
func TestSwappedPortsSayWhichProtocolTheyReached(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	amqpURL, err := amqp.ParseURI(env.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	mgmt, err := url.Parse(env.MgmtURL)
	if err != nil {
		t.Fatal(err)
	}
	onMgmtPort := fmt.Sprintf("amqp://guest:guest@%s/", mgmt.Host)
	r := runCLI(t, map[string]string{"MQCTL_URL": onMgmtPort, "MQCTL_MGMT_URL": env.MgmtURL}, "doctor")
	if r.Code != ExitError || !strings.Contains(r.Stdout+r.Stderr, "does not speak AMQP 0-9-1") || strings.Contains(r.Stdout+r.Stderr, "Exception (501)") {
		t.Errorf("AMQP URL on the management port: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	onAMQPPort := fmt.Sprintf("http://%s:%d", amqpURL.Host, amqpURL.Port)
	r = runCLI(t, map[string]string{"MQCTL_URL": env.AMQPURL, "MQCTL_MGMT_URL": onAMQPPort}, "backlog")
	if r.Code != ExitError || !strings.Contains(r.Stderr, "does not speak HTTP") || !strings.Contains(r.Stderr, "15672") {
		t.Errorf("management URL on the AMQP port: exit %d\n%s", r.Code, r.Stderr)
	}
}
