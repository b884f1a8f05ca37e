package faults

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/mqctltest"
)

const registrationTopology = "../../examples/registration/topology.yaml"

// TestTLSAgainstARealNode starts a private node with an AMQPS listener
// that requires client certificates and an HTTPS management listener,
// both with a server certificate from a CA the test generates, and runs
// the real binary over amqps:// and https:// only:
//   - with --tls-ca (and a client certificate for AMQPS) topology apply,
//     doctor, backlog and produce succeed; every produced event is
//     confirmed and in its queues;
//   - without --tls-ca each fails with exit 1 and a verification error
//     that says to pass --tls-ca: verification is on by default;
//   - with an explicit --insecure-skip-verify they succeed;
//   - a host the certificate does not name (127.0.0.2) is refused;
//   - without a client certificate, or with one another CA signed, the
//     node refuses the AMQPS handshake: exit 1 with a hint to pass
//     --tls-cert/--tls-key.
func TestTLSAgainstARealNode(t *testing.T) {
	dir := t.TempDir()
	pki := brokertest.WriteTLSFiles(t, dir, "node")
	stranger := brokertest.WriteTLSFiles(t, dir, "stranger") // a CA the node does not trust
	amqps, https := brokertest.FreePort(t), brokertest.FreePort(t)
	start := time.Now()
	node := brokertest.StartNodeWith(t, brokertest.NodeOptions{Management: true, Config: brokertest.NodeTLSConfig(pki, amqps, https, true)})
	t.Logf("node with TLS listeners up in %s", time.Since(start).Round(100*time.Millisecond))

	env := func(host string) map[string]string {
		return map[string]string{
			"MQCTL_URL":      fmt.Sprintf("amqps://guest:guest@%s:%d/", host, amqps),
			"MQCTL_MGMT_URL": fmt.Sprintf("https://%s:%d", host, https),
			"MQCTL_TIMEOUT":  "10s",
		}
	}
	good := env("127.0.0.1")
	ca := []string{"--tls-ca", pki.CA}
	client := []string{"--tls-cert", pki.ClientCert, "--tls-key", pki.ClientKey}
	run := func(e map[string]string, args ...string) mqctltest.Result {
		t.Helper()
		return mqctltest.Run(t, 60*time.Second, e, args...)
	}
	want := func(what string, r mqctltest.Result, code int, pattern string) {
		t.Helper()
		if i := strings.Index(r.Stderr, "Error: "); code != 0 && i >= 0 {
			t.Logf("%s: exit %d: %s", what, r.Code, strings.SplitN(r.Stderr[i:], "\n", 2)[0])
		}
		if r.Code != code || !regexp.MustCompile(pattern).MatchString(r.Stdout+r.Stderr) {
			t.Errorf("%s: exit %d, want %d and output matching %q\nstdout: %.1500s\nstderr: %.1500s", what, r.Code, code, pattern, r.Stdout, r.Stderr)
		}
	}
	cmd := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}

	// Verified: the CA given, the client certificate presented.
	want("topology apply over https with --tls-ca", run(good, cmd(ca, []string{"topology", "apply", "-f", registrationTopology})...), 0, `create`)
	r := run(good, cmd(ca, client, []string{"doctor", "-o", "json"})...)
	want("doctor over amqps+https with --tls-ca", r, 0, `"ok": true`)
	var doc struct {
		Checks []struct{ Name, Status, Detail string } `json:"checks"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err == nil {
		for _, c := range doc.Checks {
			if c.Status != "ok" {
				t.Errorf("doctor check %s = %s: %s", c.Name, c.Status, c.Detail)
			}
		}
	}
	want("backlog over https with --tls-ca", run(good, cmd(ca, []string{"backlog", "email"})...), 0, `email`)
	const n = 200
	r = run(good, cmd(ca, client, []string{"produce", "--count", fmt.Sprint(n), "-o", "json"})...)
	want("produce over amqps with --tls-ca and a client certificate", r, 0, `"confirmed": 200`)
	var sum struct {
		Confirmed int `json:"confirmed"`
	}
	_ = json.Unmarshal([]byte(r.Stdout), &sum)
	ch := node.Channel(t) // the node's plain listener, for counting
	q, err := ch.QueueDeclarePassive("email", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	Report(t, Figures{Scenario: "tls: produce over amqps with mutual TLS", Confirmed: sum.Confirmed, Processed: q.Messages, Lost: max(sum.Confirmed-q.Messages, 0), Duplicated: max(q.Messages-sum.Confirmed, 0)})

	// Verification is on by default: no --tls-ca, no connection.
	for _, tc := range []struct {
		what string
		args []string
	}{
		{"doctor without --tls-ca", cmd(client, []string{"doctor"})},
		{"backlog without --tls-ca", []string{"backlog"}},
		{"produce without --tls-ca", cmd(client, []string{"produce", "--count", "1"})},
	} {
		r := run(good, tc.args...)
		want(tc.what, r, 1, `certificate signed by unknown authority.*pass --tls-ca with the CA certificate that signed it`)
		if !strings.Contains(r.Stdout+r.Stderr, "unsafe") {
			t.Errorf("%s: the hint must call --insecure-skip-verify unsafe:\n%s%s", tc.what, r.Stdout, r.Stderr)
		}
	}
	// Only when asked explicitly.
	want("doctor with --insecure-skip-verify", run(good, cmd(client, []string{"--insecure-skip-verify", "doctor"})...), 0, `connected to`)
	want("produce with --insecure-skip-verify", run(good, cmd(client, []string{"--insecure-skip-verify", "produce", "--count", "5", "-o", "json"})...), 0, `"confirmed": 5`)
	want("backlog with --insecure-skip-verify", run(good, "--insecure-skip-verify", "backlog", "email"), 0, `email`)

	// The certificate names localhost and 127.0.0.1, not 127.0.0.2.
	other := env("127.0.0.2")
	want("doctor on a host the certificate does not name", run(other, cmd(ca, client, []string{"doctor"})...), 1, `not 127\.0\.0\.2; the broker.s certificate does not name this host`)

	// Mutual TLS: the node wants a certificate its CA signed.
	want("produce without a client certificate", run(good, cmd(ca, []string{"produce", "--count", "1"})...), 1, `certificate required.*pass --tls-cert and --tls-key`)
	want("produce with a stranger's client certificate", run(good, cmd(ca, []string{"--tls-cert", stranger.ClientCert, "--tls-key", stranger.ClientKey, "produce", "--count", "1"})...), 1, `refused this client's certificate`)
	want("a key that does not match the certificate", run(good, cmd(ca, []string{"--tls-cert", pki.ClientCert, "--tls-key", stranger.ClientKey, "doctor"})...), 2, `load --tls-cert/--tls-key: .*private key does not match`)
}
