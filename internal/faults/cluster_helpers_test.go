package faults

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/mqctltest"
	"github.com/mqctl/mqctl/internal/registration"
)

// clusterConf is what every node of the fault cluster reads. net_ticktime
// 5 s (Erlang's default is 60) declares a frozen node down in 5–7 s, so a
// freeze past it stays quick. Partition handling is autoheal: a node
// frozen past the tick time and resumed sees the others down and back at
// once, so under pause_minority no node pauses and every node goes on
// reporting the partition (still after two minutes here) until an
// operator restarts one; autoheal restarts the losing side and the
// cluster is whole again about 20 s after the resume.
const (
	netTickTime      = 5 * time.Second
	partitionHandled = "autoheal"
	clusterConf      = "net_ticktime = 5\ncluster_partition_handling = " + partitionHandled + "\n"
)

// exampleTopology is the registration demo's topology file, applied by the
// real `mqctl topology apply`.
var exampleTopology = filepath.Join("..", "..", "examples", "registration", "topology.yaml")

// cluster is a three-node RabbitMQ cluster with management on every node.
type cluster struct {
	nodes []*brokertest.Node
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	return &cluster{nodes: brokertest.StartCluster(t, 3, brokertest.NodeOptions{Management: true, Config: clusterConf})}
}

// urls lists the nodes' AMQP URLs comma-separated, node first first and
// the others after it in order, as an operator passes --url.
func (c *cluster) urls(first int) string {
	var us []string
	for i := range c.nodes {
		us = append(us, c.nodes[(first+i)%len(c.nodes)].URL())
	}
	return strings.Join(us, ",")
}

// env points mqctl at the cluster: AMQP nodes starting with first, the
// management API of node mgmt.
func (c *cluster) env(first, mgmt int) map[string]string {
	return map[string]string{"MQCTL_URL": c.urls(first), "MQCTL_MGMT_URL": c.nodes[mgmt].MgmtURL()}
}

// index returns the position of the node named name, -1 if none.
func (c *cluster) index(name string) int {
	return slices.IndexFunc(c.nodes, func(n *brokertest.Node) bool { return n.Name == name })
}

// other returns a node that is neither of the given ones.
func (c *cluster) other(not ...int) int {
	for i := range c.nodes {
		if !slices.Contains(not, i) {
			return i
		}
	}
	return -1
}

// quorumState is what the management API says about a quorum queue.
type quorumState struct {
	Leader  string   `json:"leader"`
	Members []string `json:"members"`
	Online  []string `json:"online"`
}

// queueState reads a queue of the default vhost through node via's
// management API.
func (c *cluster) queueState(via int, queue string) (quorumState, error) {
	var st quorumState
	req, _ := http.NewRequest(http.MethodGet, c.nodes[via].MgmtURL()+"/api/queues/%2F/"+queue, nil)
	req.SetBasicAuth("guest", "guest")
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET queue %s: %s", queue, resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// partitioned reads, through node via's management API, the nodes that
// report a network partition.
func (c *cluster) partitioned(via int) ([]string, error) {
	req, _ := http.NewRequest(http.MethodGet, c.nodes[via].MgmtURL()+"/api/nodes?columns=name,partitions", nil)
	req.SetBasicAuth("guest", "guest")
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var nodes []struct {
		Name       string   `json:"name"`
		Partitions []string `json:"partitions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&nodes); err != nil {
		return nil, err
	}
	var out []string
	for _, n := range nodes {
		if len(n.Partitions) > 0 {
			out = append(out, n.Name+" sees "+strings.Join(n.Partitions, ","))
		}
	}
	return out, nil
}

// leader waits until queue has a leader with every member online and
// returns the leading node.
func (c *cluster) leader(t *testing.T, via int, queue string) int {
	t.Helper()
	leader := -1
	brokertest.WaitFor(t, queue+" led with every member online", 90*time.Second, func() bool {
		st, err := c.queueState(via, queue)
		if err != nil || len(st.Online) != len(c.nodes) {
			return false
		}
		leader = c.index(st.Leader)
		return leader >= 0
	})
	return leader
}

// applyTopology applies the example file with the real binary, as an
// operator would (queues default to quorum).
func (c *cluster) applyTopology(t *testing.T, via int) {
	t.Helper()
	res := mqctltest.Run(t, 2*time.Minute, c.env(via, via), "topology", "apply", "-f", exampleTopology)
	if res.Code != 0 {
		t.Fatalf("topology apply exited %d: %s%s", res.Code, res.Stdout, res.Stderr)
	}
}

// distinct counts the distinct events among es.
func distinct(es []effect) int {
	seen := map[string]bool{}
	for _, e := range es {
		seen[e.EventID] = true
	}
	return len(seen)
}

// flowingAgain is how long after from the worker was doing new work: the
// time of the (inHand+1)-th effect after from. At most inHand deliveries
// (the prefetch) were in the worker's hands at from, so that effect came
// from a delivery received after it. 0 means the work never resumed.
func flowingAgain(es []effect, from time.Time, inHand int) time.Duration {
	n := 0
	for _, e := range es {
		if e.At.After(from) {
			n++
			if n > inHand {
				return e.At.Sub(from)
			}
		}
	}
	return 0
}

var doneLine = regexp.MustCompile(`: done (\S+) \(attempt \d+\)`)

// deliveries counts, from a `consume -v` log, how often each message was
// acked after handling (a redelivery the ledger absorbed counts too).
func deliveries(stderr string) map[string]int {
	n := map[string]int{}
	for _, m := range doneLine.FindAllStringSubmatch(stderr, -1) {
		n[m[1]]++
	}
	return n
}

// worker is `mqctl consume EFFECT -v` running against the cluster.
type worker struct {
	effect, table, db string
	prefetch          int
	proc              *mqctltest.Proc
}

func startWorker(t *testing.T, env map[string]string, effect string, prefetch int) *worker {
	t.Helper()
	w := &worker{effect: effect, table: effectTables[effect], db: filepath.Join(t.TempDir(), effect+".db"), prefetch: prefetch}
	w.proc = mqctltest.Start(t, env, "consume", effect, "-v", "-o", "json", "--db", w.db,
		"--latency", "2ms", "--prefetch", fmt.Sprint(prefetch))
	brokertest.WaitFor(t, "consume "+effect+" connected", 60*time.Second, func() bool {
		return strings.Contains(w.proc.Stderr(), ": connected")
	})
	return w
}

func (w *worker) effects(t *testing.T) []effect { return readEffects(t, w.db, w.table) }

// stop sends SIGTERM and returns the worker's summary; the worker must
// finish the deliveries in hand and exit 0.
func (w *worker) stop(t *testing.T) consumeSummary {
	t.Helper()
	terminate(t, w.proc, "consume "+w.effect)
	var sum consumeSummary
	if err := json.Unmarshal([]byte(w.proc.Stdout()), &sum); err != nil {
		t.Errorf("consume %s -o json summary: %v: %q", w.effect, err, w.proc.Stdout())
	}
	return sum
}

// consumeSummary is the part of `consume -o json` the suite reads.
type consumeSummary struct {
	Acked      int `json:"acked"`
	Reconnects int `json:"reconnects"`
}

// figures counts a worker's run Jepsen-style against the confirmed
// events: every confirmed event must have its side effect, duplicates
// are deliveries of an event after its first.
func (w *worker) figures(t *testing.T, scenario string, confirmed int, fault time.Time) Figures {
	t.Helper()
	es := w.effects(t)
	processed := distinct(es)
	if len(es) != processed {
		t.Errorf("%s: %d side effects for %d events: the ledger let a duplicate through", w.effect, len(es), processed)
	}
	dups := 0
	for _, n := range deliveries(w.proc.Stderr()) {
		dups += n - 1
	}
	return Figures{
		Scenario: scenario, Confirmed: confirmed, Processed: processed,
		Lost: max(confirmed-processed, 0), Duplicated: dups,
		Recovery: flowingAgain(es, fault, w.prefetch),
	}
}

// produceSummary is the part of `produce -o json` the suite reads.
type produceSummary struct {
	Confirmed   int `json:"confirmed"`
	Republished int `json:"republished"`
	Reconnects  int `json:"reconnects"`
}

// waitProduce waits for `mqctl produce` to confirm all n and exit 0.
func waitProduce(t *testing.T, p *mqctltest.Proc, n int, within time.Duration) produceSummary {
	t.Helper()
	code := p.Wait(t, within)
	var sum produceSummary
	if err := json.Unmarshal([]byte(p.Stdout()), &sum); err != nil || code != 0 || sum.Confirmed != n {
		t.Fatalf("produce exited %d with %+v (%v), want all %d confirmed; stderr tail:\n%s", code, sum, err, n, tail(p.Stderr(), 3000))
	}
	return sum
}

// loadRate is the sign-ups per second of the cluster scenarios' load.
const loadRate = 250

// load is the registration story running against the cluster: `mqctl
// produce` and the e-mail worker connected to node faulty first (its URL
// first in --url), the points worker to a survivor.
type load struct {
	events        int
	email, points *worker
	produce       *mqctltest.Proc
}

// startLoad starts the workers and a producer of events sign-ups (at
// loadRate) and returns once 400 e-mails went out.
func startLoad(t *testing.T, c *cluster, faulty, survivor, events int) *load {
	t.Helper()
	l := &load{
		events: events,
		email:  startWorker(t, c.env(faulty, survivor), registration.Email, 20),
		points: startWorker(t, c.env(survivor, survivor), registration.Points, 20),
	}
	l.produce = mqctltest.Start(t, c.env(faulty, survivor), "produce", "--count", fmt.Sprint(events),
		"--rate", fmt.Sprint(loadRate), "--window", "100", "-o", "json", "-v")
	brokertest.WaitFor(t, "e-mails flowing before the fault", 60*time.Second, func() bool {
		return len(l.email.effects(t)) >= 400
	})
	return l
}

// finish waits for every event to be confirmed and processed by both
// workers, stops them, and returns the summaries.
func (l *load) finish(t *testing.T) (produced produceSummary, email, points consumeSummary) {
	t.Helper()
	produced = waitProduce(t, l.produce, l.events, 3*time.Minute)
	brokertest.WaitFor(t, "every event e-mailed and granted points", 2*time.Minute, func() bool {
		return distinct(l.email.effects(t)) >= l.events && distinct(l.points.effects(t)) >= l.events
	})
	email, points = l.email.stop(t), l.points.stop(t)
	if email.Reconnects < 1 {
		t.Errorf("the e-mail worker on the faulty node reports %d reconnects: it did not fail over", email.Reconnects)
	}
	return produced, email, points
}
