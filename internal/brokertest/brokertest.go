// Package brokertest gives integration tests a real RabbitMQ node to talk
// to, with a private vhost per test so tests run in parallel and never see
// each other's objects. There is no mock here: a missing broker fails the
// test (run `make broker`), unless MQCTL_SKIP_INTEGRATION=1 says to skip.
package brokertest

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/config"
)

// Env is one test's private vhost on the test broker.
type Env struct {
	Vhost    string
	AMQPURL  string // with credentials and the vhost
	MgmtURL  string
	User     string
	Password string
	// Mgmt is an administrator client for setting up and checking state.
	Mgmt *rabbithole.Client
}

// BaseURL is the test broker's AMQP URL (MQCTL_TEST_URL, default the local node).
func BaseURL() string {
	if u := os.Getenv("MQCTL_TEST_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@localhost:5672/"
}

// BaseMgmtURL is the test broker's management API (MQCTL_TEST_MGMT_URL).
func BaseMgmtURL() string {
	if u := os.Getenv("MQCTL_TEST_MGMT_URL"); u != "" {
		return u
	}
	return "http://localhost:15672"
}

var unsafe = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// New creates a fresh vhost for t, gives the test user full permissions on
// it, and deletes it when t ends.
func New(t testing.TB) *Env {
	t.Helper()
	if os.Getenv("MQCTL_SKIP_INTEGRATION") == "1" {
		t.Skip("MQCTL_SKIP_INTEGRATION=1: integration test skipped")
	}
	base, err := amqp.ParseURI(BaseURL())
	if err != nil {
		t.Fatalf("MQCTL_TEST_URL: %v", err)
	}
	mgmt, err := rabbithole.NewClient(BaseMgmtURL(), base.Username, base.Password)
	if err != nil {
		t.Fatalf("MQCTL_TEST_MGMT_URL: %v", err)
	}
	mgmt.SetTimeout(10 * time.Second)
	if _, err := mgmt.Overview(); err != nil {
		t.Fatalf("no RabbitMQ management API at %s (%v): run `make broker` (or set MQCTL_TEST_URL/MQCTL_TEST_MGMT_URL)", BaseMgmtURL(), err)
	}

	name := strings.ToLower(unsafe.ReplaceAllString(t.Name(), "-"))
	if len(name) > 60 {
		name = name[:60]
	}
	vhost := "mqctl-test-" + name + "-" + randHex(4)
	if _, err := mgmt.PutVhost(vhost, rabbithole.VhostSettings{Description: "mqctl test " + t.Name()}); err != nil {
		t.Fatalf("create vhost %s: %v", vhost, err)
	}
	t.Cleanup(func() {
		if _, err := mgmt.DeleteVhost(vhost); err != nil {
			t.Errorf("delete vhost %s: %v", vhost, err)
		}
	})
	if _, err := mgmt.UpdatePermissionsIn(vhost, base.Username, rabbithole.Permissions{Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatalf("grant permissions on %s: %v", vhost, err)
	}
	u := base
	u.Vhost = vhost
	return &Env{Vhost: vhost, AMQPURL: u.String(), MgmtURL: BaseMgmtURL(), User: base.Username, Password: base.Password, Mgmt: mgmt}
}

// Settings returns connection settings for the env's vhost, as a user
// would get them from flags.
func (e *Env) Settings(t testing.TB) config.Settings {
	t.Helper()
	s, err := config.Resolve(config.Flags{URLs: []string{e.AMQPURL}, MgmtURL: e.MgmtURL}, func(string) (string, bool) { return "", false }, nil)
	if err != nil {
		t.Fatalf("settings: %v", err)
	}
	return s
}

// Environ returns MQCTL_* variables that point mqctl at the env's vhost.
func (e *Env) Environ() map[string]string {
	return map[string]string{"MQCTL_URL": e.AMQPURL, "MQCTL_MGMT_URL": e.MgmtURL}
}

// Dial opens an AMQP connection to the env's vhost, closed when t ends.
func (e *Env) Dial(t testing.TB) *amqp.Connection {
	t.Helper()
	conn, err := amqp.DialConfig(e.AMQPURL, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		t.Fatalf("dial %s: %v", e.Vhost, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Channel opens a channel on a fresh connection.
func (e *Env) Channel(t testing.TB) *amqp.Channel {
	t.Helper()
	ch, err := e.Dial(t).Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	return ch
}

// CreateUser adds a user with the given tags and full permissions on the
// env's vhost, deleted when t ends. It returns the AMQP URL for that user.
func (e *Env) CreateUser(t testing.TB, name, password string, tags ...string) string {
	t.Helper()
	name = name + "-" + randHex(3)
	if _, err := e.Mgmt.PutUser(name, rabbithole.UserSettings{Password: password, Tags: tags}); err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	t.Cleanup(func() { _, _ = e.Mgmt.DeleteUser(name) })
	if _, err := e.Mgmt.UpdatePermissionsIn(e.Vhost, name, rabbithole.Permissions{Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatalf("grant %s: %v", name, err)
	}
	u, _ := amqp.ParseURI(e.AMQPURL)
	u.Username, u.Password = name, password
	return u.String()
}

// QueueDepth returns a queue's ready message count, exact (a passive
// declare, not the management API's 5-second sample).
func (e *Env) QueueDepth(t testing.TB, queue string) int {
	t.Helper()
	return Depth(t, e, queue)
}

// VhostPath is the vhost escaped for a URL path.
func (e *Env) VhostPath() string { return url.PathEscape(e.Vhost) }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// WaitFor polls cond every 50 ms until it holds, failing the test after
// within. Broker state (deliveries, dead letters, management figures)
// arrives asynchronously; tests wait for the promised state, not a time.
func WaitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
