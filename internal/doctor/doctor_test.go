package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/mqctl/mqctl/internal/fail"
)

// fakeMgmt is a management API with canned answers. bodies maps a path
// to its JSON; a path it lacks answers 404, as a broker without that
// endpoint does.
type fakeMgmt struct {
	version    string
	flags      []rabbithole.FeatureFlag
	flagsErr   error
	bodies     map[string]string
	errs       map[string]error
	overviewOK bool
}

func (f *fakeMgmt) Overview() (*rabbithole.Overview, error) {
	if !f.overviewOK {
		return nil, errors.New("connection refused")
	}
	return &rabbithole.Overview{RabbitMQVersion: f.version, ManagementVersion: f.version, ErlangVersion: "27", Node: "rabbit@a"}, nil
}
func (f *fakeMgmt) Whoami() (*rabbithole.WhoamiInfo, error) {
	return &rabbithole.WhoamiInfo{Name: "guest", Tags: rabbithole.UserTags{"administrator"}}, nil
}
func (f *fakeMgmt) GetPermissionsIn(vhost, user string) (rabbithole.PermissionInfo, error) {
	return rabbithole.PermissionInfo{Configure: ".*", Write: ".*", Read: ".*"}, nil
}
func (f *fakeMgmt) ListFeatureFlags() ([]rabbithole.FeatureFlag, error) {
	return f.flags, f.flagsErr
}
func (f *fakeMgmt) GetJSON(_ context.Context, path string, _ url.Values, v any) error {
	if err := f.errs[path]; err != nil {
		return err
	}
	body, ok := f.bodies[path]
	if vhost, isVhost := strings.CutPrefix(path, "vhosts/"); isVhost && !ok {
		// Every vhost asked for exists unless a test says otherwise.
		body, ok = fmt.Sprintf(`{"name":%q}`, vhost), true
	}
	if !ok {
		return rabbithole.ErrorResponse{StatusCode: http.StatusNotFound, Message: "Object Not Found", Reason: "Not Found"}
	}
	return json.Unmarshal([]byte(body), v)
}

func describe(err error) (string, string, fail.Kind) {
	k, _ := fail.KindOf(err)
	return err.Error(), "", k
}

func probe(context.Context) (AMQPNode, error) {
	return AMQPNode{Version: "4.0.5", Node: "amqp://a/", Cluster: "rabbit@a"}, nil
}

var baseFlags = []rabbithole.FeatureFlag{{Name: "quorum_queue", State: "enabled"}, {Name: "stream_queue", State: "enabled"}}

func withKhepri(state string) []rabbithole.FeatureFlag {
	return append(append([]rabbithole.FeatureFlag(nil), baseFlags...), rabbithole.FeatureFlag{Name: "khepri_db", State: rabbithole.State(state)})
}

// queuesPage is /api/queues/v read whole, with counts (metrics on).
func queuesPage(items ...string) string {
	for i, it := range items {
		items[i] = `{"vhost":"v","messages_ready":0,"messages_unacknowledged":0,"consumers":0,` + it + `}`
	}
	return `[` + strings.Join(items, ",") + `]`
}

func check(t *testing.T, rep Report, name string) Check {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", name, rep.Checks)
	return Check{}
}

func TestDoctorBrokerChecksAcrossVersions(t *testing.T) {
	type want struct {
		status Status
		detail []string // substrings
		hint   []string
	}
	cases := []struct {
		name  string
		mgmt  *fakeMgmt
		wants map[string]want
	}{
		{
			name: "3.10, metrics on, no deprecated-features API",
			mgmt: &fakeMgmt{version: "3.10.8", flags: baseFlags, bodies: map[string]string{
				"overview": `{"disable_stats":false}`,
				"queues/v": queuesPage(
					`"name":"plain","type":"quorum","arguments":{"x-queue-type":"quorum"}`,
					`"name":"guarded","type":"quorum","arguments":{"x-dead-letter-exchange":"dlx"}`,
					`"name":"c","type":"classic","arguments":{}`),
			}},
			wants: map[string]want{
				"broker version":      {OK, []string{"RabbitMQ 3.10.8", "tested on 3.10, 4.0 and 4.3"}, []string{"only 3.13 upgrades in place"}},
				"metadata store":      {OK, []string{"Mnesia"}, nil},
				"deprecated features": {OK, []string{"not reported", "3.10.8"}, nil},
				"metrics collection":  {OK, []string{"on"}, nil},
				// 3.x sets no delivery limit: nothing dropped yet.
				"dead lettering": {OK, []string{"1 quorum queue", "plain", "nothing is dropped"}, []string{"4.x sets a delivery limit of 20"}},
			},
		},
		{
			name: "3.10, a quorum queue with a delivery limit and no DLX",
			mgmt: &fakeMgmt{version: "3.10.8", flags: baseFlags, bodies: map[string]string{
				"overview": `{"disable_stats":false}`,
				"queues/v": queuesPage(`"name":"limited","type":"quorum","arguments":{"x-delivery-limit":5}`),
			}},
			wants: map[string]want{
				"dead lettering": {Warn, []string{"1 quorum queue", "limited", "dropped"}, []string{"dead_letter: true", "dead-letter-exchange"}},
			},
		},
		{
			name: "4.0 on Mnesia, a deprecated feature in use, metrics off",
			mgmt: &fakeMgmt{version: "4.0.5", flags: withKhepri("disabled"), bodies: map[string]string{
				"deprecated-features/used": `[{"name":"transient_nonexcl_queues","deprecation_phase":"permitted_by_default"}]`,
				"overview":                 `{"disable_stats":true}`,
				// A node that has just booted sends cluster_state as a list.
				"vhosts/v": `{"name":"v","cluster_state":[]}`,
				// Metrics off: no counts, so the reader takes queue
				// totals (this fake serves the same page again) and
				// looks the policy up by name.
				"queues/v": `[
					{"vhost":"v","name":"drops","type":"quorum","arguments":{}},
					{"vhost":"v","name":"by-policy","type":"quorum","arguments":{},"policy":"dlx"},
					{"vhost":"v","name":"unlimited","type":"quorum","arguments":{"x-delivery-limit":-1}}]`,
				"policies/v": `[{"vhost":"v","name":"dlx","definition":{"dead-letter-exchange":"graveyard"}}]`,
			}},
			wants: map[string]want{
				"broker version":      {OK, []string{"RabbitMQ 4.0.5"}, nil},
				"vhost":               {OK, []string{`"v" exists`}, nil},
				"metadata store":      {OK, []string{"Mnesia", "khepri_db disabled"}, []string{"enable_feature_flag khepri_db", "4.3"}},
				"deprecated features": {Warn, []string{"transient_nonexcl_queues (permitted by default)"}, []string{"durable, or exclusive"}},
				"metrics collection":  {Warn, []string{"off", "unknown"}, []string{"deprecated feature", "Prometheus", "management_metrics_collection = false"}},
				"dead lettering":      {Warn, []string{"1 quorum queue", "drops", "limit of 20"}, []string{"dead_letter: true"}},
			},
		},
		{
			name: "4.0 on Khepri",
			mgmt: &fakeMgmt{version: "4.0.5", flags: withKhepri("enabled"), bodies: map[string]string{
				"deprecated-features/used": `[]`, "overview": `{"disable_stats":false}`, "queues/v": queuesPage(),
			}},
			wants: map[string]want{
				"metadata store":      {OK, []string{"Khepri (feature flag khepri_db enabled)", "majority"}, nil},
				"deprecated features": {OK, []string{"none in use"}, nil},
				"dead lettering":      {OK, []string{"no quorum queues"}, nil},
			},
		},
		{
			name: "4.3: Khepri only, flags not needed",
			mgmt: &fakeMgmt{version: "4.3.6", flagsErr: errors.New("401"), bodies: map[string]string{
				"deprecated-features/used": `[]`, "overview": `{"disable_stats":false}`,
				"queues/v": queuesPage(`"name":"q","type":"quorum","arguments":{},"effective_policy_definition":{"dead-letter-exchange":""}`),
			}},
			wants: map[string]want{
				"broker version": {OK, []string{"RabbitMQ 4.3.6"}, nil},
				"metadata store": {OK, []string{"Khepri (the only metadata store from RabbitMQ 4.3)"}, nil},
				"dead lettering": {OK, []string{"every quorum queue", "(1)"}, nil},
			},
		},
		{
			name: "4.1, feature flags unreadable",
			mgmt: &fakeMgmt{version: "4.1.2", flagsErr: errors.New("not administrator"), bodies: map[string]string{
				"deprecated-features/used": `[]`, "overview": `{"disable_stats":false}`, "queues/v": queuesPage(),
			}},
			wants: map[string]want{
				"metadata store": {Skip, []string{"cannot tell Khepri from Mnesia", "not administrator"}, nil},
			},
		},
		{
			name: "3.13 with experimental Khepri",
			mgmt: &fakeMgmt{version: "3.13.7", flags: withKhepri("enabled"), bodies: map[string]string{
				"deprecated-features/used": `[]`, "overview": `{}`, "queues/v": queuesPage(),
			}},
			wants: map[string]want{
				"broker version":     {OK, []string{"3.13 by design"}, []string{"4.0 upgrades in place from 3.13"}},
				"metadata store":     {Warn, []string{"experimental on 3.13"}, []string{"blue-green"}},
				"metrics collection": {OK, []string{"on"}, nil},
			},
		},
		{
			name: "newer than tested",
			mgmt: &fakeMgmt{version: "5.0.1", flags: withKhepri("enabled"), bodies: map[string]string{
				"deprecated-features/used": `[{"name":"something_new","deprecation_phase":"denied_by_default"}]`, "overview": `{}`, "queues/v": queuesPage(),
			}},
			wants: map[string]want{
				"broker version":      {Warn, []string{"newer than the versions tested on 3.10, 4.0 and 4.3"}, []string{"topology plan"}},
				"deprecated features": {Warn, []string{"something_new (denied by default)"}, []string{"list_deprecated_features_used"}},
			},
		},
		{
			name: "queues and stats unreadable",
			mgmt: &fakeMgmt{version: "4.0.5", flags: withKhepri("disabled"),
				bodies: map[string]string{"deprecated-features/used": `[]`},
				errs: map[string]error{
					"queues/v": fail.Authf("403 not authorised"),
					"overview": errors.New("timeout"),
				}},
			wants: map[string]want{
				"dead lettering":     {Warn, []string{`cannot list the queues of vhost "v"`, "403"}, nil},
				"metrics collection": {Warn, []string{"cannot tell", "timeout"}, nil},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.mgmt.overviewOK = true
			rep := Run(context.Background(), Target{Vhost: "v", MgmtURL: "http://a:15672"}, probe, c.mgmt, describe)
			for name, w := range c.wants {
				got := check(t, rep, name)
				if got.Status != w.status {
					t.Errorf("%s: status %s, want %s (%s — %s)", name, got.Status, w.status, got.Detail, got.Hint)
				}
				for _, d := range w.detail {
					if !strings.Contains(got.Detail, d) {
						t.Errorf("%s: detail %q lacks %q", name, got.Detail, d)
					}
				}
				for _, h := range w.hint {
					if !strings.Contains(got.Hint, h) {
						t.Errorf("%s: hint %q lacks %q", name, got.Hint, h)
					}
				}
			}
			// Warnings never fail doctor; nothing here is a failure.
			if !rep.OK() || rep.Err() != nil {
				t.Errorf("report failed: %v", rep.Err())
			}
		})
	}
}

func TestDoctorBrokerTooOldFails(t *testing.T) {
	m := &fakeMgmt{version: "3.9.29", flags: baseFlags, overviewOK: true,
		bodies: map[string]string{"overview": `{}`, "queues/v": queuesPage()}}
	rep := Run(context.Background(), Target{Vhost: "v"}, probe, m, describe)
	c := check(t, rep, "broker version")
	if c.Status != Fail || !strings.Contains(c.Hint, "3.10 or later") {
		t.Errorf("broker version %+v", c)
	}
	if k, _ := fail.KindOf(rep.Err()); rep.OK() || k != fail.Operational || !strings.Contains(rep.Err().Error(), "broker version") {
		t.Errorf("err %v (kind %v)", rep.Err(), k)
	}
}

func TestDoctorDeadLetteringNamesAFewQueues(t *testing.T) {
	var items []string
	for i := range 8 {
		items = append(items, fmt.Sprintf(`"name":"q%d","type":"quorum","arguments":{}`, i))
	}
	m := &fakeMgmt{version: "4.3.6", overviewOK: true, bodies: map[string]string{"queues/v": queuesPage(items...)}}
	c := deadLetterCheck(context.Background(), m, "v", parseVersion("4.3.6"), describe)
	if c.Status != Warn || !strings.Contains(c.Detail, "8 quorum queues") || !strings.Contains(c.Detail, "q0, q1, q2, q3, q4 and 3 more") {
		t.Errorf("%+v", c)
	}
}

func TestDoctorManagementDownSkipsEveryAPICheck(t *testing.T) {
	rep := Run(context.Background(), Target{Vhost: "v", MgmtURL: "http://a:15672"}, probe, &fakeMgmt{}, describe)
	if len(rep.Checks) != 2+len(mgmtChecks) {
		t.Fatalf("%d checks: %+v", len(rep.Checks), rep.Checks)
	}
	for _, c := range rep.Checks[2:] {
		if c.Status != Skip {
			t.Errorf("%s = %s, want skip", c.Name, c.Status)
		}
	}
}

// TestDoctorSameCluster: the AMQP node's cluster name against the
// management API's. Two clusters fail doctor (exit 1) naming both; a
// broker that names none cannot be compared and only warns.
func TestDoctorSameCluster(t *testing.T) {
	for _, c := range []struct {
		mgmtCluster, amqpCluster string
		status                   Status
		detail                   []string
	}{
		{"rabbit@a", "rabbit@a", OK, []string{`both reach cluster "rabbit@a"`}},
		{"rabbit@b", "rabbit@a", Fail, []string{"amqp://a/", `"rabbit@a"`, "http://a:15672", `"rabbit@b"`, "not the same broker"}},
		{"rabbit@b", "", Warn, []string{"no cluster name", "cannot compare"}},
	} {
		m := &fakeMgmt{version: "4.3.6", flags: baseFlags, overviewOK: true, bodies: map[string]string{
			"overview": `{}`, "queues/v": queuesPage(), "cluster-name": fmt.Sprintf(`{"name":%q}`, c.mgmtCluster)}}
		amqpProbe := func(context.Context) (AMQPNode, error) {
			return AMQPNode{Version: "4.3.6", Node: "amqp://a/", Cluster: c.amqpCluster}, nil
		}
		rep := Run(context.Background(), Target{Vhost: "v", MgmtURL: "http://a:15672"}, amqpProbe, m, describe)
		got := check(t, rep, "same cluster")
		if got.Status != c.status {
			t.Errorf("%s vs %s: %+v, want %s", c.amqpCluster, c.mgmtCluster, got, c.status)
		}
		for _, want := range c.detail {
			if !strings.Contains(got.Detail, want) {
				t.Errorf("%s vs %s: detail %q lacks %q", c.amqpCluster, c.mgmtCluster, got.Detail, want)
			}
		}
		if rep.OK() != (c.status != Fail) {
			t.Errorf("%s vs %s: report OK = %v", c.amqpCluster, c.mgmtCluster, rep.OK())
		}
		if rep.Checks[2].Name != "same cluster" {
			t.Errorf("same cluster is check %d, want right after management", slices.IndexFunc(rep.Checks, func(x Check) bool { return x.Name == "same cluster" }))
		}
	}
}
