package doctor

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/mqctl/mqctl/internal/backlog"
	"github.com/mqctl/mqctl/internal/deadletter"
	"github.com/mqctl/mqctl/internal/fail"
)

// The checks of what changes between RabbitMQ 3.x and 4.x. Facts checked
// on 3.10.8, 4.0.5 and 4.3.6; see RABBITMQ-NOTES.md.

// testedVersions is said where a version is judged.
const testedVersions = "mqctl is tested on 3.10, 4.0 and 4.3"

func brokerVersionCheck(raw string, v version) Check {
	c := Check{Name: "broker version", Status: OK, Detail: "RabbitMQ " + raw}
	switch {
	case !v.known():
		c.Status, c.Detail = Warn, fmt.Sprintf("cannot tell the RabbitMQ version from %q", raw)
		c.Hint = testedVersions + "; check the broker with `rabbitmq-diagnostics server_version`"
	case !v.atLeast(3, 10):
		c.Status, c.kind = Fail, fail.Operational
		c.Hint = "mqctl needs RabbitMQ 3.10 or later (quorum queue delivery limits, at-least-once dead lettering): upgrade the broker"
	case v.major == 3 && v.minor < 13:
		c.Detail += " (" + testedVersions + ")"
		c.Hint = "on the way to 4.x: only 3.13 upgrades in place to 4.0, and classic mirrored queues must become quorum queues first"
	case v.major == 3:
		c.Detail += " (" + testedVersions + "; 3.13 by design)"
		c.Hint = "4.0 upgrades in place from 3.13 once classic mirrored queues have become quorum queues"
	case v.major == 4 && v.minor <= 3:
		c.Detail += " (" + testedVersions + ")"
	default:
		c.Status = Warn
		c.Detail += " is newer than the versions " + strings.TrimPrefix(testedVersions, "mqctl is ")
		c.Hint = "most commands should work; the checks below show what this broker denies, and `mqctl topology plan` what it would refuse"
	}
	return c
}

// majorityNote is what Khepri means for mqctl's own work.
const majorityNote = "; declaring queues, bindings and policies (topology apply) needs a majority of nodes up"

// metadataStoreCheck tells Khepri from Mnesia: 4.3 has Khepri only; 4.0 to
// 4.2 use it when the khepri_db feature flag is enabled; before 3.13 there
// is Mnesia only.
func metadataStoreCheck(v version, flags []rabbithole.FeatureFlag, flagsErr error, describe Describe) Check {
	c := Check{Name: "metadata store", Status: OK}
	switch {
	case v.atLeast(4, 3):
		c.Detail = "Khepri (the only metadata store from RabbitMQ 4.3)" + majorityNote
		return c
	case v.known() && !v.atLeast(3, 13):
		c.Detail = "Mnesia (the only metadata store before RabbitMQ 3.13)"
		return c
	case flagsErr != nil:
		msg, _, _ := describe(flagsErr)
		c.Status, c.Detail = Skip, "cannot tell Khepri from Mnesia: feature flags not readable: "+msg
		return c
	}
	state := "absent"
	for _, f := range flags {
		if f.Name == "khepri_db" {
			state = string(f.State)
		}
	}
	switch {
	case state == "enabled" && v.major == 3:
		c.Status, c.Detail = Warn, "Khepri (feature flag khepri_db enabled), experimental on 3.13"
		c.Hint = "a 3.13 node running Khepri cannot be upgraded in place to 4.x: move to a new 4.x cluster (blue-green) instead"
	case state == "enabled":
		c.Detail = "Khepri (feature flag khepri_db enabled)" + majorityNote
	case v.major == 3:
		c.Detail = fmt.Sprintf("Mnesia (feature flag khepri_db %s)", state)
	default:
		c.Detail = fmt.Sprintf("Mnesia (feature flag khepri_db %s)", state)
		c.Hint = "RabbitMQ 4.3 runs on Khepri only, and only 4.2 upgrades to it in place: after testing Khepri, enable it (`rabbitmqctl enable_feature_flag khepri_db`, every node up) before that upgrade"
	}
	return c
}

// deprecatedHints say what to do about a deprecated feature in use.
var deprecatedHints = map[string]string{
	"transient_nonexcl_queues":      "declare those queues durable, or exclusive (4.3 refuses transient non-exclusive queues by default)",
	"global_qos":                    "set prefetch per consumer (basic.qos with global=false)",
	"queue_master_locator":          "use x-queue-leader-locator / queue-leader-locator instead of x-queue-master-locator",
	"classic_queue_mirroring":       "move mirrored classic queues to quorum queues",
	"ram_node_type":                 "make RAM nodes disc nodes",
	"management_metrics_collection": "read rates and consumers from Prometheus (rabbitmq_prometheus)",
	"amqp_address_v1":               "have AMQP 1.0 clients use v2 addresses (/queues/…, /exchanges/…)",
}

// deprecatedCheck lists the deprecated features the broker sees in use
// (GET /api/deprecated-features/used; 4.0 and 4.3 have it). A broker without the
// endpoint has nothing to report, which is not a problem: 3.10 answers 404,
// or 406 to a request that accepts JSON only, as mqctl's do.
func deprecatedCheck(ctx context.Context, m Mgmt, raw string, describe Describe) Check {
	c := Check{Name: "deprecated features", Status: OK}
	var used []struct {
		Name  string `json:"name"`
		Phase string `json:"deprecation_phase"`
	}
	err := m.GetJSON(ctx, "deprecated-features/used", nil, &used)
	switch {
	case isStatus(err, http.StatusNotFound) || isStatus(err, http.StatusNotAcceptable):
		// Neutral: nothing is wrong, there is just nothing to read.
		c.Detail = fmt.Sprintf("not reported: RabbitMQ %s has no deprecated-features API (later releases have one)", raw)
		return c
	case err != nil:
		msg, _, _ := describe(err)
		c.Status, c.Detail = Warn, "cannot read the deprecated features in use: "+msg
		return c
	case len(used) == 0:
		c.Detail = "none in use"
		return c
	}
	var names, hints []string
	for _, u := range used {
		names = append(names, fmt.Sprintf("%s (%s)", u.Name, strings.ReplaceAll(u.Phase, "_", " ")))
		if h, ok := deprecatedHints[u.Name]; ok {
			hints = append(hints, u.Name+": "+h)
		} else {
			hints = append(hints, u.Name+": see `rabbitmq-diagnostics list_deprecated_features_used`")
		}
	}
	c.Status, c.Detail = Warn, "in use: "+strings.Join(names, ", ")
	c.Hint = "a later release denies or removes them; " + strings.Join(hints, "; ")
	return c
}

// metricsCheck reads whether management metrics collection is off: the
// overview's disable_stats, true when the node runs with
// management_agent.disable_metrics_collector = true (3.x and 4.x) or
// deprecated_features.permit.management_metrics_collection = false (4.x).
func metricsCheck(ctx context.Context, m Mgmt, v version, describe Describe) Check {
	c := Check{Name: "metrics collection", Status: OK}
	var ov struct {
		DisableStats *bool `json:"disable_stats"`
	}
	if err := m.GetJSON(ctx, "overview", url.Values{"columns": {"disable_stats"}}, &ov); err != nil {
		msg, _, _ := describe(err)
		c.Status, c.Detail = Warn, "cannot tell whether management metrics collection is on: "+msg
		return c
	}
	if ov.DisableStats == nil || !*ov.DisableStats {
		c.Detail = "on: the management API reports message counts, consumers and rates per queue"
		return c
	}
	c.Status = Warn
	c.Detail = "off: the management API lists queues without message counts, consumers or rates; " +
		"mqctl backlog and dlq ls read the counts as queue totals and show consumers, rates and message age as unknown, " +
		"so backlog check fails --min-consumers and --max-age as \"cannot evaluate\""
	if v.major >= 4 {
		c.Hint = "collection is a deprecated feature in 4.x (management_metrics_collection): gate on --max-ready, --max-unacked and --max-dlq, " +
			"and read consumers and rates from Prometheus (rabbitmq_prometheus); to turn it back on, remove " +
			"deprecated_features.permit.management_metrics_collection = false or management_agent.disable_metrics_collector = true from rabbitmq.conf"
	} else {
		c.Hint = "to turn it back on, remove management_agent.disable_metrics_collector = true from rabbitmq.conf and restart the node; " +
			"meanwhile gate on --max-ready, --max-unacked and --max-dlq"
	}
	return c
}

// defaultDeliveryLimit is the quorum queue delivery limit RabbitMQ 4.0 and
// later apply when none is set; 3.x sets none.
const defaultDeliveryLimit = 20

// maxNamed is how many queues a detail names before "and N more".
const maxNamed = 5

// deadLetterCheck finds the vhost's quorum queues that drop messages at
// their delivery limit: no dead-letter target (x-dead-letter-exchange
// argument or a policy's dead-letter-exchange) and a limit, set or 4.x's
// default of 20. A negative limit (4.x) means none.
func deadLetterCheck(ctx context.Context, m Mgmt, vhost string, v version, describe Describe) Check {
	c := Check{Name: "dead lettering", Status: OK}
	queues, err := backlog.FetchQueues(ctx, backlog.HTTPSource{API: m, NoRates: true}, vhost, 0)
	if err != nil {
		msg, _, _ := describe(err)
		c.Status, c.Detail = Warn, fmt.Sprintf("cannot list the queues of vhost %q: %s", vhost, msg)
		if isStatus(err, http.StatusNotFound) {
			c.Status, c.Detail = Skip, fmt.Sprintf("vhost %q not found", vhost)
		}
		return c
	}
	var quorum int
	var dropping, unguarded []string // with a limit; without one (3.x)
	for _, q := range queues {
		if q.Type != "quorum" {
			continue
		}
		quorum++
		if hasDeadLetterTarget(q) {
			continue
		}
		if limit, ok := deliveryLimit(q, v); ok && limit >= 0 {
			dropping = append(dropping, q.Name)
		} else {
			unguarded = append(unguarded, q.Name)
		}
	}
	slices.Sort(dropping)
	slices.Sort(unguarded)
	switch {
	case len(dropping) > 0:
		c.Status = Warn
		c.Detail = fmt.Sprintf("%s in vhost %q %s a delivery limit and no dead-letter target: a message redelivered that often is dropped: %s",
			plural(len(dropping), "quorum queue"), vhost, hasHave(len(dropping)), names(dropping))
		if v.major >= 4 {
			c.Detail += fmt.Sprintf(" (RabbitMQ 4.x sets a limit of %d where none is given)", defaultDeliveryLimit)
		}
		c.Hint = "give them a dead-letter exchange: `dead_letter: true` in the topology file (then `mqctl topology apply`), or a policy with dead-letter-exchange"
	case len(unguarded) > 0:
		c.Detail = fmt.Sprintf("%s in vhost %q %s no dead-letter target and no delivery limit, so nothing is dropped here: %s",
			plural(len(unguarded), "quorum queue"), vhost, hasHave(len(unguarded)), names(unguarded))
		c.Hint = fmt.Sprintf("RabbitMQ 4.x sets a delivery limit of %d by default and then drops the message: give them a dead-letter exchange before upgrading", defaultDeliveryLimit)
	case quorum == 0:
		c.Detail = fmt.Sprintf("no quorum queues in vhost %q", vhost)
	default:
		c.Detail = fmt.Sprintf("every quorum queue in vhost %q (%d) has a dead-letter target", vhost, quorum)
	}
	return c
}

func hasDeadLetterTarget(q backlog.QueueStat) bool {
	_, _, _, ok := (&deadletter.Queue{Arguments: q.Arguments, Policy: q.Policy}).Target()
	return ok
}

// deliveryLimit is the queue's effective delivery limit: the lower of its
// x-delivery-limit argument and its policy's delivery-limit, else the
// version's default; ok is false when there is none.
func deliveryLimit(q backlog.QueueStat, v version) (limit int, ok bool) {
	arg, argOK := number(q.Arguments["x-delivery-limit"])
	pol, polOK := number(q.Policy["delivery-limit"])
	switch {
	case argOK && polOK:
		return min(arg, pol), true
	case argOK:
		return arg, true
	case polOK:
		return pol, true
	case v.major >= 4:
		return defaultDeliveryLimit, true
	}
	return 0, false
}

func number(v any) (int, bool) {
	f, ok := v.(float64)
	return int(f), ok
}

func names(all []string) string {
	if len(all) <= maxNamed {
		return strings.Join(all, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(all[:maxNamed], ", "), len(all)-maxNamed)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func hasHave(n int) string {
	if n == 1 {
		return "has"
	}
	return "have"
}
