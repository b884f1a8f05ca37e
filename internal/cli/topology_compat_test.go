package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/topology"
)

// brokerVersion is the test broker's version, read as a user's broker is.
func brokerVersion(t *testing.T, env *brokertest.Env) topology.Version {
	t.Helper()
	ov, err := env.Mgmt.Overview()
	if err != nil {
		t.Fatal(err)
	}
	v, ok := topology.ParseVersion(ov.RabbitMQVersion)
	if !ok {
		t.Fatalf("broker version %q", ov.RabbitMQVersion)
	}
	return v
}

// featureState is the deprecated feature's state as the broker reports
// it (4.3+), "" when it does not.
func featureState(t *testing.T, env *brokertest.Env, name string) string {
	t.Helper()
	var list []topology.DeprecatedFeature
	if err := mgmtDo(env, http.MethodGet, "/api/deprecated-features", nil, &list); err != nil {
		return ""
	}
	for _, f := range list {
		if f.Name == name {
			return f.State
		}
	}
	return ""
}

// mgmtDo sends one request to the test broker's management API as the
// broker's own admin, decoding a JSON answer into out when given.
func mgmtDo(env *brokertest.Env, method, path string, body any, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, env.MgmtURL+path, r)
	if err != nil {
		return err
	}
	req.SetBasicAuth(env.User, env.Password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func vhostObjects(t *testing.T, env *brokertest.Env) (queues, policies []string) {
	t.Helper()
	defs, err := env.Mgmt.ListVhostDefinitions(env.Vhost)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range *defs.Queues {
		queues = append(queues, q.Name)
	}
	if defs.Policies != nil {
		for _, p := range *defs.Policies {
			policies = append(policies, fmt.Sprint(p["name"]))
		}
	}
	return queues, policies
}

// Each setting whose fate depends on the version: plan and apply refuse
// it (exit 2, file:line:column, nothing changed) exactly where the broker
// would refuse or skip it, and otherwise apply it with a warning when it
// is deprecated. Both halves are checked against the broker itself: what
// mqctl refuses, a raw definitions import of the same object really fails
// to create; what mqctl lets through, the broker really creates.
func TestTopologyVersionRulesMatchTheBroker(t *testing.T) {
	t.Parallel()
	probe := brokertest.New(t)
	v := brokerVersion(t, probe)
	atLeast := func(major, minor int) bool { return !v.Less(topology.Version{Major: major, Minor: minor}) }
	transientDenied := featureState(t, probe, "transient_nonexcl_queues") == "denied" ||
		(atLeast(4, 3) && featureState(t, probe, "transient_nonexcl_queues") == "")
	cases := []struct {
		name    string
		file    string
		at      string // file:line:column suffix of the problem
		refused bool
		warns   bool
		queue   string // the object to find on the broker, or
		policy  string
	}{
		{"x-queue-master-locator", "apiVersion: mqctl/v1\nqueues:\n  - name: q\n    type: classic\n    arguments: {x-queue-master-locator: min-masters}\n",
			":5:17:", atLeast(4, 3), true, "q", ""},
		{"x-queue-version 1", "apiVersion: mqctl/v1\nqueues:\n  - name: q\n    type: classic\n    arguments:\n      x-queue-version: 1\n",
			":6:7:", atLeast(4, 3), true, "q", ""},
		{"x-queue-mode", "apiVersion: mqctl/v1\nqueues:\n  - name: q\n    type: classic\n    arguments: {x-queue-mode: lazy}\n",
			":5:17:", false, true, "q", ""},
		{"x-queue-leader-locator on a classic queue", "apiVersion: mqctl/v1\nqueues:\n  - name: q\n    type: classic\n    arguments: {x-queue-leader-locator: balanced}\n",
			":5:17:", !atLeast(4, 0), false, "q", ""},
		{"transient queue", "apiVersion: mqctl/v1\nqueues:\n  - name: q\n    type: classic\n    durable: false\n",
			":5:14:", transientDenied, true, "q", ""},
		{"ha-* policy keys", "apiVersion: mqctl/v1\nqueues: [{name: q}]\npolicies:\n  - name: p\n    pattern: ^nothing$\n    definition: {ha-mode: all}\n",
			":6:18:", atLeast(4, 0), true, "", "p"},
		{"policy queue-master-locator", "apiVersion: mqctl/v1\nqueues: [{name: q}]\npolicies:\n  - name: p\n    pattern: ^nothing$\n    definition: {queue-master-locator: client-local}\n",
			":6:18:", atLeast(4, 3), true, "", "p"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := brokertest.New(t)
			e := env.Environ()
			file := writeFile(t, "t.yaml", c.file)

			r := runCLI(t, nil, "topology", "validate", "-f", file)
			if r.Code != 0 || strings.Contains(r.Stderr, "warning:") != c.warns {
				t.Errorf("validate: exit %d, stderr %q (want a warning: %t)", r.Code, r.Stderr, c.warns)
			}
			if c.warns && !strings.Contains(r.Stderr, file+c.at+" warning:") {
				t.Errorf("validate warning not at %s: %s", c.at, r.Stderr)
			}

			if c.refused {
				for _, args := range [][]string{{"plan"}, {"apply", "--yes"}} {
					cmd := args[0]
					r := mustRun(t, e, ExitUsage, append([]string{"topology", cmd, "-f", file}, args[1:]...)...)
					if !strings.Contains(r.Stderr, file+c.at) || !strings.Contains(r.Stderr, "refuses") {
						t.Errorf("%s: stderr lacks the refusal at %s:\n%s", cmd, c.at, r.Stderr)
					}
				}
				if qs, ps := vhostObjects(t, env); len(qs)+len(ps) != 0 {
					t.Fatalf("a refused apply changed the broker: queues %v, policies %v", qs, ps)
				}
				// The broker really refuses or skips it.
				x := mustExpand(t, file, env.Vhost)
				err := mgmtDo(env, http.MethodPost, "/api/definitions", x.Defs.ForVhost(env.Vhost), nil)
				qs, ps := vhostObjects(t, env)
				if err == nil && ((c.queue != "" && contains(qs, c.queue)) || (c.policy != "" && contains(ps, c.policy))) {
					t.Errorf("RabbitMQ %s accepts what mqctl refuses: queues %v, policies %v", v, qs, ps)
				}
				return
			}
			r = mustRun(t, e, 0, "topology", "apply", "-f", file)
			if strings.Contains(r.Stderr, "warning:") != c.warns {
				t.Errorf("apply: stderr %q (want a warning: %t)", r.Stderr, c.warns)
			}
			qs, ps := vhostObjects(t, env)
			if (c.queue != "" && !contains(qs, c.queue)) || (c.policy != "" && !contains(ps, c.policy)) {
				t.Errorf("RabbitMQ %s: apply said yes, but the broker has queues %v, policies %v", v, qs, ps)
			}
		})
	}
}

func mustExpand(t *testing.T, path, vhost string) *topology.Expanded {
	t.Helper()
	f, err := topology.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Vhost = vhost
	return topology.Expand(f)
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// The definitions import answers success and skips a queue whose name
// another connection holds as an exclusive queue (every version), and on
// 4.3 one with the denied x-queue-master-locator (that one plan and apply
// refuse beforehand; internal/topology's broker test covers the
// read-back for it). apply reads back, fails with exit 1 and names it.
func TestTopologyApplyNamesWhatTheImportSkipped(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	e := env.Environ()
	ch := env.Channel(t)
	if _, err := ch.QueueDeclare("orders", false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, "t.yaml", "apiVersion: mqctl/v1\nexchanges: [{name: shop, type: topic}]\nqueues:\n  - {name: audit, type: classic}\n  - {name: orders, type: classic}\n")
	r := mustRun(t, e, ExitError, "topology", "apply", "-f", file)
	for _, want := range []string{
		"with success but did not create 1 of them",
		"queue orders: a queue of that name exists as another connection's exclusive queue",
		"created in the same import: queue audit",
		"1 object(s) were applied by earlier imports",
	} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("apply stderr lacks %q:\n%s", want, r.Stderr)
		}
	}
	if strings.Contains(r.Stdout, "applied") {
		t.Errorf("apply claims success:\n%s", r.Stdout)
	}
	// What was created stays; the plan still wants the skipped queue.
	p, _ := planOf(t, e, file)
	if p.Summary["create"] != 1 || p.Changes[0].Name != "orders" {
		t.Errorf("plan after the failed apply: %+v", p)
	}
}

// A batch the broker refuses half-way (HTTP 400 on one policy): apply
// says which of the batch the broker created anyway and which not, with
// the broker's reason readable (4.0 and 3.10 HTML-escape it).
func TestTopologyApplyReportsAFailedBatch(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	file := writeFile(t, "t.yaml", `apiVersion: mqctl/v1
queues: [{name: q}]
policies:
  - {name: p1, pattern: ^a$, definition: {max-length: 1}}
  - {name: p2, pattern: ^b$, definition: {max-length: lots}}
  - {name: p3, pattern: ^c$, definition: {max-length: 3}}
`)
	r := mustRun(t, env.Environ(), ExitError, "topology", "apply", "-f", file)
	if !strings.Contains(r.Stderr, "import of 3 policy definition(s) into vhost "+env.Vhost+" failed: HTTP 400") ||
		!strings.Contains(r.Stderr, "not created: policy p2") || !strings.Contains(r.Stderr, "0 object(s) were applied by earlier imports") {
		t.Errorf("apply stderr:\n%s", r.Stderr)
	}
	if strings.Contains(r.Stderr, "&lt;") || strings.Contains(r.Stderr, "&#39;") || strings.Contains(r.Stderr, "&gt;") {
		t.Errorf("the broker's text is still HTML-escaped:\n%s", r.Stderr)
	}
	if v := brokerVersion(t, env); !v.Less(topology.Version{Major: 4}) && !strings.Contains(r.Stderr, `"lots" is not a valid maximum length`) {
		t.Errorf("the broker's reason is not readable:\n%s", r.Stderr)
	}
	// Whatever the broker created of the batch, the error names it.
	_, ps := vhostObjects(t, env)
	for _, p := range ps {
		if !strings.Contains(r.Stderr, "policy "+p) {
			t.Errorf("the broker holds policy %s, the error does not name it:\n%s", p, r.Stderr)
		}
	}
	if contains(ps, "p2") {
		t.Errorf("p2 was created: %v", ps)
	}
}

// export --from-definitions carries a 3.x definitions file to 4.x: what
// has a translation is translated, one stderr line per change, and the
// result applies to every supported version.
func TestTopologyConvertCarriesLegacySettings(t *testing.T) {
	t.Parallel()
	dst := brokertest.New(t)
	defs := `{"rabbit_version": "3.13.7", "rabbitmq_version": "3.13.7",
 "queues": [
  {"name": "legacy", "durable": true, "auto_delete": false, "arguments": {"x-queue-mode": "lazy", "x-queue-version": 1, "x-max-length": 10}},
  {"name": "located", "durable": true, "auto_delete": false, "arguments": {"x-queue-type": "quorum", "x-queue-leader-locator": "client-local"}}
 ],
 "exchanges": [], "bindings": [],
 "policies": [
  {"name": "ha-all", "pattern": "^legacy$", "apply-to": "queues", "priority": 0, "definition": {"ha-mode": "all", "ha-sync-mode": "automatic"}},
  {"name": "limits", "pattern": "^legacy$", "apply-to": "queues", "priority": 1, "definition": {"ha-mode": "exactly", "ha-params": 2, "max-length": 5, "queue-mode": "lazy"}}
 ]}`
	in := writeFile(t, "definitions.json", defs)
	out := filepath.Join(t.TempDir(), "converted.yaml")
	r := mustRun(t, nil, 0, "topology", "export", "--from-definitions", in, "--vhost", dst.Vhost, "--out", out)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
		if strings.HasPrefix(l, "converted: ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 6 || !strings.Contains(r.Stderr, `converted: policy "ha-all" (vhost `+dst.Vhost+`): dropped the policy`) ||
		!strings.Contains(r.Stderr, `converted: queue "legacy" (vhost `+dst.Vhost+`): dropped x-queue-mode lazy`) {
		t.Errorf("conversion lines:\n%s", r.Stderr)
	}
	data, _ := os.ReadFile(out)
	for _, gone := range []string{"ha-", "x-queue-mode", "x-queue-version", "queue-mode"} {
		if strings.Contains(string(data), gone) {
			t.Errorf("converted file keeps %s:\n%s", gone, data)
		}
	}
	if r := mustRun(t, nil, 0, "topology", "validate", "-f", out); strings.Contains(r.Stderr, "warning") {
		t.Errorf("converted file has warnings: %s", r.Stderr)
	}
	mustRun(t, dst.Environ(), 0, "topology", "apply", "-f", out)
	if p, r := planOf(t, dst.Environ(), out, "--exit-code"); r.Code != 0 || len(p.Changes) != 0 {
		t.Fatalf("plan after applying the converted file: %+v", p)
	}
}

// validate shows warnings with their severity in -o json and stays valid.
func TestTopologyValidateWarnsWithSeverity(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "t.yaml", "apiVersion: mqctl/v1\nqueues:\n  - name: q\n    type: classic\n    arguments: {x-queue-master-locator: random}\n  - {name: bad, colour: red}\n")
	r := runCLI(t, nil, "topology", "validate", "-f", file, "-o", "json")
	var v struct {
		Valid    bool `json:"valid"`
		Problems []struct {
			Line     int    `json:"line"`
			Column   int    `json:"column"`
			Message  string `json:"message"`
			Severity string `json:"severity"`
		} `json:"problems"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil || r.Code != ExitUsage || v.Valid || len(v.Problems) != 2 {
		t.Fatalf("validate -o json: %v exit %d\n%s", err, r.Code, r.Stdout)
	}
	if p := v.Problems[0]; p.Severity != "warning" || p.Line != 5 || p.Column != 17 || !strings.Contains(p.Message, "x-queue-leader-locator: balanced") {
		t.Errorf("first problem: %+v", p)
	}
	if p := v.Problems[1]; p.Severity != "error" || p.Line != 6 {
		t.Errorf("second problem: %+v", p)
	}
	// Text: errors and warnings in file order on stderr, exit 2.
	r = runCLI(t, nil, "topology", "validate", "-f", file)
	if r.Code != ExitUsage || !strings.Contains(r.Stderr, file+":5:17: warning: queue \"q\"") || !strings.Contains(r.Stderr, file+":6:") {
		t.Errorf("validate: exit %d\n%s", r.Code, r.Stderr)
	}
	// Without the error the file is valid: exit 0, the warning on stderr.
	file = writeFile(t, "ok.yaml", "apiVersion: mqctl/v1\nqueues:\n  - name: q\n    type: classic\n    arguments: {x-queue-master-locator: random}\n")
	r = runCLI(t, nil, "topology", "validate", "-f", file)
	if r.Code != 0 || !strings.Contains(r.Stdout, "is valid (1 warning(s) on stderr)") || !strings.Contains(r.Stderr, file+":5:17: warning:") {
		t.Errorf("validate: exit %d\nstdout %s\nstderr %s", r.Code, r.Stdout, r.Stderr)
	}
}
