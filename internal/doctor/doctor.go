// Package doctor checks that mqctl can do its work against a broker: AMQP
// reachable, management API up, recent enough and of the same cluster, the
// user's tags and permissions, the feature flags later commands rely on,
// and what changes between RabbitMQ 3.x and 4.x: the broker version, the metadata store,
// deprecated features in use, management metrics collection, and quorum
// queues that drop messages at their delivery limit.
//
// A check fails only where mqctl cannot work; what an operator should look
// at is a warning, which does not fail doctor.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/fail"
)

// Status of one check.
type Status string

// Statuses, in increasing order of trouble.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Check is the outcome of one probe.
type Check struct {
	Name   string    `json:"name"`
	Status Status    `json:"status"`
	Detail string    `json:"detail"`
	Hint   string    `json:"hint,omitempty"`
	kind   fail.Kind // exit-code class when Status is Fail
	err    error
}

// Report is every check, in a fixed order.
type Report struct {
	Checks []Check `json:"checks"`
}

// OK reports whether no check failed.
func (r Report) OK() bool { return r.FirstFailure() == nil }

// FirstFailure returns the first failed check, whose kind decides the exit code.
func (r Report) FirstFailure() *Check {
	for i := range r.Checks {
		if r.Checks[i].Status == Fail {
			return &r.Checks[i]
		}
	}
	return nil
}

// Err summarises the failures as an error of the first failure's kind.
func (r Report) Err() error {
	first := r.FirstFailure()
	if first == nil {
		return nil
	}
	n := 0
	for _, c := range r.Checks {
		if c.Status == Fail {
			n++
		}
	}
	msg := fmt.Sprintf("%d check(s) failed; first: %s: %s", n, first.Name, first.Detail)
	if first.Hint != "" {
		msg += " — " + first.Hint
	}
	return fail.Wrap(first.kind, errors.New(msg))
}

// AMQPNode is what an AMQP connection tells of the node it reached.
type AMQPNode struct {
	Version string
	Node    string // the address reached
	Cluster string // cluster_name of the server properties ("" if none)
}

// AMQPProbe connects over AMQP and describes the node it reached.
type AMQPProbe func(ctx context.Context) (AMQPNode, error)

// Mgmt is the part of the management API doctor reads.
type Mgmt interface {
	Overview() (*rabbithole.Overview, error)
	Whoami() (*rabbithole.WhoamiInfo, error)
	GetPermissionsIn(vhost, user string) (rabbithole.PermissionInfo, error)
	ListFeatureFlags() ([]rabbithole.FeatureFlag, error)
	// GetJSON decodes GET /api/<path>?<query> (broker.MgmtReader): the
	// resources rabbit-hole does not model. HTTP errors are
	// rabbithole.ErrorResponse.
	GetJSON(ctx context.Context, path string, query url.Values, v any) error
}

// Target says what the checks are about.
type Target struct {
	Vhost   string
	MgmtURL string
	// Answered names the management API that took the last request, when
	// there are several to try (nil: MgmtURL).
	Answered func() string
}

func (t Target) api() string {
	if t.Answered != nil {
		return t.Answered()
	}
	return t.MgmtURL
}

// Describe turns an error into a password-free message, what to try when
// it knows (else ""), and the error's kind.
type Describe func(error) (msg, hint string, kind fail.Kind)

// Run performs the checks. AMQP and the management API are probed
// concurrently so the whole run is bounded by one timeout (per AMQP node),
// not the sum.
func Run(ctx context.Context, t Target, probe AMQPProbe, mgmt Mgmt, describe Describe) Report {
	var amqpCheck Check
	var node AMQPNode
	var mgmtChecks []Check
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		node, amqpCheck = checkAMQP(ctx, probe, describe)
	}()
	go func() {
		defer wg.Done()
		mgmtChecks = checkMgmt(ctx, t, mgmt, describe)
	}()
	wg.Wait()
	// The management plugin being off is the usual reason the API is
	// unreachable while AMQP works; say so.
	if amqpCheck.Status == OK && len(mgmtChecks) > 0 && mgmtChecks[0].Status == Fail && isRefused(mgmtChecks[0].err) {
		mgmtChecks[0].Detail = "management plugin not enabled (AMQP answers but " + t.MgmtURL + " refuses connections)"
		mgmtChecks[0].Hint = "run `rabbitmq-plugins enable rabbitmq_management`, or point --mgmt-url at the API"
	}
	checks := append([]Check{amqpCheck}, mgmtChecks...)
	if amqpCheck.Status == OK && mgmtChecks[0].Status == OK {
		// After "management": the checks below it read that API.
		checks = slices.Insert(checks, 2, sameClusterCheck(ctx, t, node, mgmt, describe))
	}
	return Report{Checks: checks}
}

func checkAMQP(ctx context.Context, probe AMQPProbe, describe Describe) (AMQPNode, Check) {
	node, err := probe(ctx)
	if err != nil {
		msg, hint, kind := describe(err)
		// Dial errors carry their own hint.
		return node, Check{Name: "amqp", Status: Fail, Detail: msg, Hint: hint, kind: kind, err: err}
	}
	return node, Check{Name: "amqp", Status: OK, Detail: fmt.Sprintf("connected to %s (RabbitMQ %s)", node.Node, node.Version)}
}

// sameClusterCheck compares the cluster name the AMQP node announced with
// the management API's: two brokers (a wrong --url port, the management
// URL's default of port 15672 on another node) make every other command
// that uses both refuse, and every check below describe the wrong broker.
func sameClusterCheck(ctx context.Context, t Target, node AMQPNode, m Mgmt, describe Describe) Check {
	c := Check{Name: "same cluster", Status: OK}
	name, err := broker.ReaderClusterName(m)(ctx)
	if err != nil {
		msg, _, _ := describe(err)
		c.Status, c.Detail = Warn, "cannot read the management API's cluster name: "+msg
		return c
	}
	switch {
	case broker.ClusterMismatch(node.Cluster, name):
		c.Status, c.kind = Fail, fail.Operational
		c.Detail = fmt.Sprintf("the AMQP node %s belongs to cluster %q, the management API %s to cluster %q: not the same broker", node.Node, node.Cluster, t.api(), name)
		c.Hint = "point --url and --mgmt-url at the same cluster; topology, dlq ls and demo refuse until then"
	case node.Cluster == "":
		c.Status, c.Detail = Warn, fmt.Sprintf("the AMQP node sends no cluster name; the management API's is %q: cannot compare", name)
	default:
		c.Detail = fmt.Sprintf("AMQP and the management API both reach cluster %q", name)
	}
	return c
}

// mgmtChecks name the checks after "management", in order.
var mgmtChecks = []string{"broker version", "user", "vhost", "feature flags", "metadata store",
	"deprecated features", "metrics collection", "dead lettering"}

func checkMgmt(ctx context.Context, t Target, m Mgmt, describe Describe) []Check {
	failed := func(name string, err error, hint string) Check {
		msg, known, kind := describe(err)
		if known != "" {
			hint = known
		}
		return Check{Name: name, Status: Fail, Detail: msg, Hint: hint, kind: kind, err: err}
	}
	skipped := func(names ...string) []Check {
		out := make([]Check, len(names))
		for i, n := range names {
			out[i] = Check{Name: n, Status: Skip, Detail: "management API unavailable"}
		}
		return out
	}
	ov, err := m.Overview()
	if err != nil {
		hint := "check --mgmt-url and that the management plugin is enabled"
		if k, _ := fail.KindOf(err); k == fail.Auth {
			hint = "the user needs the management, monitoring or administrator tag: `rabbitmqctl set_user_tags USER monitoring`"
		} else if advice := broker.TLSAdvice(err); advice != "" {
			hint = advice
		}
		return append([]Check{failed("management", err, hint)}, skipped(mgmtChecks...)...)
	}
	v := parseVersion(ov.RabbitMQVersion)
	checks := []Check{managementCheck(t, ov), brokerVersionCheck(ov.RabbitMQVersion, v)}

	who, err := m.Whoami()
	var user string
	var tags []string
	if err != nil {
		checks = append(checks, failed("user", err, ""))
	} else {
		user, tags = who.Name, who.Tags
		c := Check{Name: "user", Status: OK, Detail: fmt.Sprintf("%s, tags: %s", user, strings.Join(tags, ","))}
		if !hasAny(tags, "administrator", "monitoring", "management", "policymaker") {
			c.Status, c.Hint = Warn, "without a management tag backlog and dlq ls cannot read the API"
		}
		checks = append(checks, c)
	}
	checks = append(checks, vhostCheck(ctx, t, m, user, tags, describe))
	flags, flagsErr := m.ListFeatureFlags()
	checks = append(checks, featureCheck(flags, flagsErr, describe))
	checks = append(checks, metadataStoreCheck(v, flags, flagsErr, describe))
	checks = append(checks, deprecatedCheck(ctx, m, ov.RabbitMQVersion, describe))
	checks = append(checks, metricsCheck(ctx, m, v, describe))
	checks = append(checks, deadLetterCheck(ctx, m, t.Vhost, v, describe))
	return checks
}

func managementCheck(t Target, ov *rabbithole.Overview) Check {
	return Check{Name: "management", Status: OK,
		Detail: fmt.Sprintf("%s: RabbitMQ %s, management %s, Erlang %s, node %s", t.api(), ov.RabbitMQVersion, ov.ManagementVersion, ov.ErlangVersion, ov.Node)}
}

func vhostCheck(ctx context.Context, t Target, m Mgmt, user string, tags []string, describe Describe) Check {
	c := Check{Name: "vhost", Status: OK}
	vh, err := getVhost(ctx, m, t.Vhost)
	if k, _ := fail.KindOf(err); k == fail.Auth && !hasAny(tags, "administrator") {
		// GET /api/vhosts/{name} wants the administrator tag (3.10); the
		// list shows a monitoring or management user the vhosts it may use.
		vh, err = findVhost(ctx, m, t.Vhost)
	}
	if err != nil {
		msg, hint, kind := describe(err)
		c.Status, c.Detail, c.Hint, c.kind, c.err = Fail, fmt.Sprintf("vhost %q: %s", t.Vhost, msg), hint, kind, err
		if isStatus(err, http.StatusNotFound) {
			// The same sentence and exit code as every other command
			// (broker.VhostMissing): the URL names a vhost the broker lacks.
			c.kind = fail.Usage
			c.Detail = fmt.Sprintf("vhost %q does not exist", t.Vhost)
			c.Hint = fmt.Sprintf("create it with `rabbitmqctl add_vhost %s`, or fix the vhost named in the URL path or --vhost", t.Vhost)
		}
		return c
	}
	c.Detail = fmt.Sprintf("%q exists", vh)
	if user == "" {
		return c
	}
	p, err := m.GetPermissionsIn(t.Vhost, user)
	switch {
	case err == nil:
		c.Detail += fmt.Sprintf("; %s may configure %q, write %q, read %q", user, p.Configure, p.Write, p.Read)
		if p.Configure == "" || p.Write == "" || p.Read == "" {
			c.Status, c.Hint = Warn, "topology apply needs configure, produce needs write, consume and dlq need read"
		}
	case isStatus(err, http.StatusNotFound):
		c.Status, c.kind, c.err = Fail, fail.Auth, err
		c.Detail += fmt.Sprintf("; %s has no permissions on it", user)
		c.Hint = fmt.Sprintf("rabbitmqctl set_permissions -p %s %s '.*' '.*' '.*'", t.Vhost, user)
	default:
		// Reading permissions needs the administrator tag; AMQP access
		// already proves the vhost is usable.
		c.Detail += fmt.Sprintf("; permissions of %s not readable with tags [%s]", user, strings.Join(tags, ","))
	}
	return c
}

// nameOnly asks for a vhost's name alone: rabbit-hole's VhostInfo cannot
// decode every vhost object (broker.VhostNames).
var nameOnly = url.Values{"columns": {"name"}}

// getVhost reads GET /api/vhosts/{name}; it returns the name.
func getVhost(ctx context.Context, m Mgmt, name string) (string, error) {
	var vh struct {
		Name string `json:"name"`
	}
	err := m.GetJSON(ctx, "vhosts/"+url.PathEscape(name), nameOnly, &vh)
	return vh.Name, err
}

// findVhost looks name up in the vhosts the user may see; absent is a
// 404, as GET /api/vhosts/{name} answers.
func findVhost(ctx context.Context, m Mgmt, name string) (string, error) {
	all, err := broker.VhostNames(ctx, m)
	if err != nil {
		return "", err
	}
	if slices.Contains(all, name) {
		return name, nil
	}
	return "", rabbithole.ErrorResponse{StatusCode: http.StatusNotFound, Message: "not found", Reason: "no vhost " + name + " among the vhosts this user may use"}
}

func featureCheck(flags []rabbithole.FeatureFlag, err error, describe Describe) Check {
	c := Check{Name: "feature flags", Status: OK}
	if err != nil {
		msg, _, _ := describe(err)
		c.Status, c.Detail = Warn, "cannot read feature flags: "+msg
		return c
	}
	state := map[string]string{}
	for _, f := range flags {
		state[f.Name] = string(f.State)
	}
	var parts []string
	for _, name := range []string{"quorum_queue", "stream_queue"} {
		s, ok := state[name]
		if !ok {
			s = "absent"
		}
		parts = append(parts, name+"="+s)
		if name == "quorum_queue" && s != "enabled" {
			c.Status, c.kind = Fail, fail.Operational
			c.Hint = "enable it: `rabbitmqctl enable_feature_flag quorum_queue` (mqctl declares quorum queues by default)"
		}
	}
	c.Detail = strings.Join(parts, ", ")
	return c
}

// version is a RabbitMQ release series; 0.0 when unknown.
type version struct{ major, minor int }

func parseVersion(v string) version {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return version{}
	}
	major, _ := strconv.Atoi(parts[0])
	minor, _ := strconv.Atoi(parts[1])
	return version{major, minor}
}

func (v version) known() bool { return v.major > 0 }

// atLeast reports whether v is major.minor or later.
func (v version) atLeast(major, minor int) bool {
	return v.major > major || v.major == major && v.minor >= minor
}

func hasAny(tags []string, want ...string) bool {
	for _, t := range tags {
		for _, w := range want {
			if t == w {
				return true
			}
		}
	}
	return false
}

func isStatus(err error, code int) bool {
	var er rabbithole.ErrorResponse
	return errors.As(err, &er) && er.StatusCode == code
}

func isRefused(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection refused")
}
