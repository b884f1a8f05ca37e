package topology

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]Version{
		"3.10.8": {3, 10, 8}, "4.0.5": {4, 0, 5}, "4.3.6": {4, 3, 6}, "3.13": {3, 13, 0},
		"4.0.5+2.g1a2b3c": {4, 0, 5}, "4.3.0-rc.1": {4, 3, 0}, "4.1.x": {4, 1, 0},
	} {
		if got, ok := ParseVersion(in); !ok || got != want {
			t.Errorf("ParseVersion(%q) = %v %t, want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "4", "x.y", "4.x"} {
		if _, ok := ParseVersion(in); ok {
			t.Errorf("ParseVersion(%q) ok", in)
		}
	}
}

// The brokers as they answered here: GET /api/overview and GET
// /api/deprecated-features (404 on 3.10; phases only on 4.0; states from
// 4.3, where Debian's 4.3.6 permits transient non-exclusive queues).
var (
	broker310 = BrokerFacts{Version: "3.10.8"}
	broker313 = BrokerFacts{Version: "3.13.7", Features: features(
		"classic_queue_mirroring/permitted_by_default", "transient_nonexcl_queues/permitted_by_default", "global_qos/permitted_by_default")}
	broker40 = BrokerFacts{Version: "4.0.5", Features: features(
		"queue_master_locator/permitted_by_default", "transient_nonexcl_queues/permitted_by_default",
		"global_qos/permitted_by_default", "classic_queue_mirroring/removed")}
	broker43 = BrokerFacts{Version: "4.3.6", Features: features(
		"queue_master_locator/denied_by_default/denied", "transient_nonexcl_queues/permitted_by_default/permitted",
		"global_qos/denied_by_default/denied", "classic_queue_mirroring/removed/denied")}
	// 4.3 as upstream ships it: transient non-exclusive queues denied.
	broker43Upstream = BrokerFacts{Version: "4.3.0", Features: features(
		"queue_master_locator/denied_by_default/denied", "transient_nonexcl_queues/denied_by_default/denied", "classic_queue_mirroring/removed/denied")}
	// 4.3 configured with deprecated_features.permit.queue_master_locator = true.
	broker43Permit = BrokerFacts{Version: "4.3.6", Features: features(
		"queue_master_locator/denied_by_default/permitted", "classic_queue_mirroring/removed/denied")}
	// 4.3 whose list mqctl could not read: the version decides.
	broker43NoList = BrokerFacts{Version: "4.3.6"}
)

func features(specs ...string) map[string]DeprecatedFeature {
	m := map[string]DeprecatedFeature{}
	for _, s := range specs {
		p := strings.Split(s, "/")
		f := DeprecatedFeature{Name: p[0], Phase: p[1]}
		if len(p) > 2 {
			f.State = p[2]
		}
		m[f.Name] = f
	}
	return m
}

func TestVersionRules(t *testing.T) {
	type verdict struct {
		broker  BrokerFacts
		refused bool
	}
	cases := []struct {
		name    string
		queue   string // a queue entry, or
		policy  string // a policy definition
		warns   bool   // validate warns (a deprecated setting)
		setting string
		on      []verdict
	}{
		{name: "x-queue-master-locator", queue: "{name: q, type: classic, arguments: {x-queue-master-locator: min-masters}}", warns: true, setting: "x-queue-master-locator",
			on: []verdict{{broker310, false}, {broker313, false}, {broker40, false}, {broker43, true}, {broker43Permit, false}, {broker43NoList, true}}},
		{name: "x-queue-leader-locator on a classic queue", queue: "{name: q, type: classic, arguments: {x-queue-leader-locator: balanced}}", setting: "x-queue-leader-locator",
			on: []verdict{{broker310, true}, {broker313, true}, {broker40, false}, {broker43, false}}},
		{name: "x-queue-leader-locator on a quorum queue", queue: "{name: q, arguments: {x-queue-leader-locator: balanced}}",
			on: []verdict{{broker310, false}, {broker43, false}}},
		{name: "x-queue-version 1", queue: "{name: q, type: classic, arguments: {x-queue-version: 1}}", warns: true, setting: "x-queue-version: 1",
			on: []verdict{{broker310, false}, {broker40, false}, {broker43, true}, {broker43NoList, true}}},
		{name: "x-queue-version 2", queue: "{name: q, type: classic, arguments: {x-queue-version: 2}}",
			on: []verdict{{broker43, false}}},
		{name: "x-queue-mode", queue: "{name: q, type: classic, arguments: {x-queue-mode: lazy}}", warns: true, setting: "x-queue-mode",
			on: []verdict{{broker310, false}, {broker40, false}, {broker43, false}}},
		{name: "transient queue", queue: "{name: q, type: classic, durable: false}", warns: true, setting: "durable: false",
			on: []verdict{{broker310, false}, {broker40, false}, {broker43, false}, {broker43Upstream, true}, {broker43NoList, true}}},
		{name: "ha-* policy keys", policy: "{ha-mode: exactly, ha-params: 2, max-length: 5}", warns: true, setting: "ha-mode, ha-params",
			on: []verdict{{broker310, false}, {broker313, false}, {broker40, true}, {broker43, true}, {BrokerFacts{Version: "4.0.5"}, true}}},
		{name: "policy queue-master-locator", policy: "{queue-master-locator: client-local}", warns: true, setting: "queue-master-locator",
			on: []verdict{{broker310, false}, {broker40, false}, {broker43, true}, {broker43Permit, false}}},
		{name: "policy queue-mode", policy: "{queue-mode: lazy}", warns: true, setting: "queue-mode",
			on: []verdict{{broker310, false}, {broker43, false}}},
		{name: "policy queue-version 1", policy: "{queue-version: 1}", warns: true, setting: "queue-version: 1",
			on: []verdict{{broker43, false}}},
		{name: "durable classic queue", queue: "{name: q, type: classic}",
			on: []verdict{{broker43Upstream, false}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := "apiVersion: mqctl/v1\nqueues:\n  - " + c.queue + "\n"
			if c.policy != "" {
				src = "apiVersion: mqctl/v1\nqueues: [{name: q}]\npolicies:\n  - {name: p, pattern: ^q$, definition: " + c.policy + "}\n"
			}
			f := mustParse(t, src)
			if w := Warnings(f); (len(w) > 0) != c.warns {
				t.Errorf("validate warnings %v, want some: %t", w, c.warns)
			}
			if cs := Compats(f); c.setting != "" && (len(cs) != 1 || cs[0].Setting != c.setting) {
				t.Errorf("compats %+v, want one for %q", cs, c.setting)
			}
			for _, v := range c.on {
				refused, warnings := CheckBroker(f, v.broker)
				if (len(refused) > 0) != v.refused {
					t.Errorf("RabbitMQ %s (features %t): refused %v, want refused %t", v.broker.Version, v.broker.Features != nil, refused, v.refused)
				}
				if v.refused && len(warnings) > 0 {
					t.Errorf("RabbitMQ %s: a refused setting is also a warning: %v", v.broker.Version, warnings)
				}
				if !v.refused && c.warns && len(warnings) != 1 {
					t.Errorf("RabbitMQ %s: warnings %v, want one", v.broker.Version, warnings)
				}
			}
		})
	}
}

// Warnings and refusals point at the setting itself and say what to use.
func TestCompatProblemsArePositioned(t *testing.T) {
	src := `apiVersion: mqctl/v1
queues:
  - name: legacy
    type: classic
    durable: false
    arguments:
      x-max-length: 10
      x-queue-master-locator: min-masters
policies:
  - name: mirror
    pattern: ^legacy$
    definition:
      max-length: 5
      ha-sync-mode: automatic
      ha-mode: all
`
	f := mustParse(t, src)
	got := Warnings(f).Error()
	for _, want := range []string{
		`t.yaml:5:14: queue "legacy": a non-durable queue`,
		`t.yaml:8:7: queue "legacy": x-queue-master-locator is deprecated`,
		"use x-queue-leader-locator: balanced instead",
		`t.yaml:14:7: policy "mirror": ha-* keys (ha-mode, ha-sync-mode) configure classic queue mirroring`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
	refused, warnings := CheckBroker(f, broker43)
	if len(refused) != 2 || len(warnings) != 1 {
		t.Fatalf("4.3.6: refused %v, warnings %v", refused, warnings)
	}
	if r := refused[0].String(); !strings.HasPrefix(r, `t.yaml:8:7: queue "legacy": RabbitMQ 4.3.6 refuses x-queue-master-locator: its deprecated feature queue_master_locator is denied; its definitions import would skip the queue without an error; use x-queue-leader-locator: balanced`) {
		t.Errorf("refusal: %s", r)
	}
	if r := refused[1].String(); !strings.HasPrefix(r, `t.yaml:14:7: policy "mirror": RabbitMQ 4.3.6 refuses ha-mode, ha-sync-mode: its deprecated feature classic_queue_mirroring is denied`) {
		t.Errorf("refusal: %s", r)
	}
}

// A quorum queue never takes x-queue-master-locator: that is an error on
// every version, found offline.
func TestQuorumQueueWithMasterLocatorIsInvalid(t *testing.T) {
	ps := problemsOf(t, "apiVersion: mqctl/v1\nqueues:\n  - name: q\n    arguments: {x-queue-master-locator: client-local}\n")
	if len(ps) != 1 || !strings.Contains(ps[0].String(), "t.yaml:4:17: queue \"q\": quorum queues refuse x-queue-master-locator on every RabbitMQ version; use x-queue-leader-locator: client-local") {
		t.Errorf("problems: %v", ps)
	}
}

func TestModernize(t *testing.T) {
	doc := `{"rabbit_version": "3.13.7",
 "queues": [
  {"name": "legacy", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {"x-queue-master-locator": "min-masters", "x-queue-mode": "lazy", "x-queue-version": 1, "x-max-length": 10}},
  {"name": "local", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {"x-queue-master-locator": "client-local"}},
  {"name": "v2", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {"x-queue-version": 2}},
  {"name": "temp", "vhost": "/", "durable": false, "auto_delete": false, "arguments": {}}
 ],
 "policies": [
  {"name": "ha", "vhost": "/", "pattern": "^legacy$", "apply-to": "queues", "priority": 0, "definition": {"ha-mode": "all", "ha-sync-mode": "automatic"}},
  {"name": "mixed", "vhost": "/", "pattern": "^local$", "apply-to": "queues", "priority": 0, "definition": {"ha-mode": "exactly", "ha-params": 2, "max-length": 5, "queue-master-locator": "random", "queue-mode": "lazy", "queue-version": 1}},
  {"name": "plain", "vhost": "/", "pattern": "^v2$", "apply-to": "queues", "priority": 0, "definition": {"max-length": 1}}
 ]}`
	perVhost, err := ReadDefinitions("d.json", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	d := perVhost["/"]
	got := Modernize("/", d)
	var lines []string
	for _, c := range got {
		lines = append(lines, c.Kind+" "+c.Name+": "+c.Change)
	}
	want := []string{
		"queue legacy: x-queue-master-locator min-masters → x-queue-leader-locator balanced",
		"queue legacy: dropped x-queue-mode lazy",
		"queue legacy: dropped x-queue-version 1",
		"queue local: x-queue-master-locator client-local → x-queue-leader-locator client-local",
		"policy ha: dropped ha-mode, ha-sync-mode",
		"policy ha: dropped the policy",
		"policy mixed: dropped ha-mode, ha-params",
		"policy mixed: queue-master-locator random → queue-leader-locator balanced",
		"policy mixed: dropped queue-mode lazy",
		"policy mixed: dropped queue-version 1",
	}
	if len(lines) != len(want) {
		t.Fatalf("conversions:\n%s", strings.Join(lines, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("conversion %d = %q, want prefix %q", i, lines[i], want[i])
		}
	}
	args := map[string]map[string]any{}
	for _, q := range d.Queues {
		args[q.Name] = q.Arguments
	}
	if !reflect.DeepEqual(args["legacy"], map[string]any{"x-queue-leader-locator": "balanced", "x-max-length": 10.0}) ||
		!reflect.DeepEqual(args["local"], map[string]any{"x-queue-leader-locator": "client-local"}) ||
		!reflect.DeepEqual(args["v2"], map[string]any{"x-queue-version": 2.0}) {
		t.Errorf("arguments after conversion: %v", args)
	}
	var names []string
	for _, p := range d.Policies {
		names = append(names, p.Name)
		if p.Name == "mixed" && !reflect.DeepEqual(p.Definition, map[string]any{"max-length": 5.0, "queue-leader-locator": "balanced"}) {
			t.Errorf("mixed: %v", p.Definition)
		}
	}
	if !reflect.DeepEqual(names, []string{"mixed", "plain"}) {
		t.Errorf("policies left: %v", names)
	}
	// The converted file carries no deprecated setting but the transient
	// queue, which has no translation.
	data, err := Marshal(Export("/", d))
	if err != nil {
		t.Fatal(err)
	}
	_, warnings, err := ParseAndCheck("out.yaml", data)
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0].Message, `queue "temp"`) {
		t.Errorf("converted file: %v, warnings %v\n%s", err, warnings, data)
	}
	js, _ := json.Marshal(got[0])
	if !strings.Contains(string(js), `"vhost":"/","kind":"queue","name":"legacy","change":`) {
		t.Errorf("conversion JSON: %s", js)
	}
}

// The management API's error texts as the brokers sent them here.
func TestBrokerText(t *testing.T) {
	for in, want := range map[string]string{
		// 4.0.5, policy with ha-mode (JSON-decoded reason).
		`<<"Validation failed\n\n[{&lt;&lt;\"ha-mode\"&gt;&gt;,&lt;&lt;\"all\"&gt;&gt;}] are not recognised policy settings\n (v/pha)">>`: `Validation failed [{"ha-mode","all"}] are not recognised policy settings (v/pha)`,
		// 3.10.8, policy with a bad value.
		"Validation failed\n\n&lt;&lt;\"lots\"&gt;&gt; is not a valid maximum length\n (v/p1)": `Validation failed "lots" is not a valid maximum length (v/p1)`,
		// 4.3.6, the same.
		"Validation failed\n\n<<\"lots\">> is not a valid maximum length\n (vhost: \"v\" key: \"p1\")": `Validation failed "lots" is not a valid maximum length (vhost: "v" key: "p1")`,
		"precondition_failed: invalid arg &#39;x-max-priority&#39; for queue &#39;a2&#39;":             "precondition_failed: invalid arg 'x-max-priority' for queue 'a2'",
		`<<"a">> and <<"b">>`: `"a" and "b"`,
	} {
		if got := BrokerText(in); got != want {
			t.Errorf("BrokerText(%q)\n = %q\nwant %q", in, got, want)
		}
	}
}
