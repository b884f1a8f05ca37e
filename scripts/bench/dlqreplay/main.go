// Command dlqreplay measures `mqctl dlq replay` against the broker's own
// shovel-based move (what the management UI's "Move messages" creates: a
// dynamic shovel with src-delete-after: queue-length) on the same broker
// in the same run, and checks both moved every id exactly once.
//
// Each run uses a fresh vhost with two identical DLQs of n dead letters
// (dead-lettered by the broker from their work queues), moves one with
// mqctl and the other with a shovel, in alternating order, and drains the
// destinations to count ids. Run it through scripts/bench/dlq-replay-vs-shovel.sh.
//
// With -compare OLD it measures two mqctl binaries instead: OLD replays
// one DLQ ("before"), -mqctl the other ("after"), in alternating order,
// each with its CPU time per message and peak RSS. Run it through
// scripts/bench/dlq-replay-compare.sh.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	"github.com/mqctl/mqctl/scripts/bench/benchkit"
	amqp "github.com/rabbitmq/amqp091-go"
)

func main() {
	var (
		n      = flag.Int("n", 100000, "dead letters per DLQ")
		size   = flag.Int("size", 1024, "body size in bytes")
		runs   = flag.Int("runs", 3, "runs (order alternates)")
		bin    = flag.String("mqctl", "bin/mqctl", "mqctl binary")
		base   = flag.String("url", "amqp://guest:guest@localhost:5672/", "broker AMQP URL (vhost is replaced)")
		mgmtU  = flag.String("mgmt-url", "http://localhost:15672", "management API")
		extra  = flag.String("mqctl-args", "", "extra replay flags, e.g. --window 1024")
		asJSON = flag.Bool("json", false, "print results as JSON")
		otype  = flag.String("origin-type", "classic", "type of the origin (work) queues the dead letters return to: classic, or quorum as mqctl topologies declare them")
		bpid   = flag.Int("broker-pid", 0, "OS pid of the broker (beam.smp), to report its CPU per message and settle after filling")
		cmp    = flag.String("compare", "", "an older mqctl binary: replay with it (before) and with -mqctl (after) instead of the shovel")
	)
	flag.Parse()
	brokerPid = *bpid
	originType = *otype
	compareBin = *cmp
	if err := run(*n, *size, *runs, *bin, *base, *mgmtU, *extra, *asJSON); err != nil {
		fmt.Fprintln(os.Stderr, "dlqreplay:", err)
		os.Exit(1)
	}
}

type result struct {
	Run          int     `json:"run"`
	Method       string  `json:"method"`
	Messages     int     `json:"messages"`
	Seconds      float64 `json:"seconds"`
	MsgPerSecond float64 `json:"msg_per_second"`
	Lost         int     `json:"lost"`
	Duplicated   int     `json:"duplicated"`
	// BrokerCPUPerMsg and ClientCPUPerMsg are CPU microseconds per moved
	// message: the broker's whole OS process (0 without -broker-pid) and
	// mqctl's (0 for the shovel, which runs inside the broker).
	BrokerCPUPerMsg float64 `json:"broker_cpu_us_per_msg"`
	ClientCPUPerMsg float64 `json:"client_cpu_us_per_msg"`
	// ClientMaxRSSKB is mqctl's peak resident set size (0 for the shovel).
	ClientMaxRSSKB int64 `json:"client_max_rss_kb"`
}

// brokerPid is the broker's OS pid (0: unknown).
var brokerPid int

// originType is the x-queue-type of the work queues.
var originType string

// compareBin is the older mqctl binary of -compare ("": against the
// shovel).
var compareBin string

// methods are the ways a run moves its DLQs: mqctl as users run it (its
// own move), mqctl --via shovel (a checked broker shovel), and the UI's
// unchecked shovel move; or, with -compare, this mqctl and an older one, both
// moving every message themselves. The i-th moves orders-<a+i>.
func methods() []string {
	if compareBin != "" {
		return []string{"after", "before"}
	}
	return []string{"mqctl", "mqctl-shovel", "shovel"}
}

func run(n, size, runs int, bin, base, mgmtURL, extra string, asJSON bool) error {
	var results []result
	err := benchkit.EachRun(base, mgmtURL, "mqctl-bench-dlq", runs, func(r benchkit.Run) error {
		res, err := oneRun(r.N, n, size, bin, r.URL, mgmtURL, r.Vhost, r.Mgmt, extra)
		if err != nil {
			return err
		}
		results = append(results, res...)
		for _, x := range res {
			fmt.Fprintf(os.Stderr, "run %d %-7s %d msgs in %.2fs = %.0f msg/s, lost %d, duplicated %d, CPU per message: broker %.0f µs, mqctl %.1f µs; mqctl peak RSS %d KB\n",
				x.Run, x.Method, x.Messages, x.Seconds, x.MsgPerSecond, x.Lost, x.Duplicated, x.BrokerCPUPerMsg, x.ClientCPUPerMsg, x.ClientMaxRSSKB)
		}
		return nil
	})
	if err != nil {
		return err
	}
	median := func(m string, f func(result) float64) float64 {
		var xs []float64
		for _, x := range results {
			if x.Method == m {
				xs = append(xs, f(x))
			}
		}
		return benchkit.Median(xs)
	}
	med := map[string]float64{}
	for _, m := range methods() {
		med[m] = median(m, func(x result) float64 { return x.MsgPerSecond })
	}
	if compareBin != "" {
		return compareSummary(results, runs, n, size, median, asJSON)
	}
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{"runs": results, "median_msg_per_second": med,
			"ratio": med["mqctl"] / med["shovel"], "shovel_path_ratio": med["mqctl-shovel"] / med["shovel"]})
	}
	fmt.Printf("median over %d runs of %d x %d B dead letters back to %s queues: mqctl %.0f msg/s (%.2fx), mqctl --via shovel %.0f msg/s (%.2fx), UI shovel move %.0f msg/s\n",
		runs, n, size, originType, med["mqctl"], med["mqctl"]/med["shovel"], med["mqctl-shovel"], med["mqctl-shovel"]/med["shovel"], med["shovel"])
	for _, x := range results {
		if x.Lost > 0 || x.Duplicated > 0 {
			return fmt.Errorf("run %d %s lost %d and duplicated %d messages", x.Run, x.Method, x.Lost, x.Duplicated)
		}
	}
	return nil
}

// compareSummary prints the medians of a -compare run side by side:
// mqctl's CPU per message, wall time and peak RSS, before and after.
func compareSummary(results []result, runs, n, size int, median func(string, func(result) float64) float64, asJSON bool) error {
	type row struct {
		CPU     float64 `json:"client_cpu_us_per_msg"`
		Seconds float64 `json:"seconds"`
		RSSKB   float64 `json:"client_max_rss_kb"`
		Broker  float64 `json:"broker_cpu_us_per_msg"`
	}
	rows := map[string]row{}
	for _, m := range []string{"before", "after"} {
		rows[m] = row{
			CPU:     median(m, func(x result) float64 { return x.ClientCPUPerMsg }),
			Seconds: median(m, func(x result) float64 { return x.Seconds }),
			RSSKB:   median(m, func(x result) float64 { return float64(x.ClientMaxRSSKB) }),
			Broker:  median(m, func(x result) float64 { return x.BrokerCPUPerMsg }),
		}
	}
	change := rows["after"].CPU/rows["before"].CPU - 1
	for _, x := range results {
		if x.Lost > 0 || x.Duplicated > 0 {
			return fmt.Errorf("run %d %s lost %d and duplicated %d messages", x.Run, x.Method, x.Lost, x.Duplicated)
		}
	}
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{"runs": results, "median": rows, "client_cpu_change": change})
	}
	fmt.Printf("medians over %d runs of %d x %d B dead letters back to %s queues:\n", runs, n, size, originType)
	fmt.Printf("%-7s %14s %9s %13s %17s\n", "binary", "mqctl CPU µs/msg", "wall s", "peak RSS MB", "broker CPU µs/msg")
	for _, m := range []string{"before", "after"} {
		r := rows[m]
		fmt.Printf("%-7s %16.1f %9.2f %13.1f %17.0f\n", m, r.CPU, r.Seconds, r.RSSKB/1024, r.Broker)
	}
	fmt.Printf("mqctl CPU per message: %+.1f %%\n", 100*change)
	return nil
}

// replayWith runs bin's `dlq replay --all` of queue dlq and returns its
// wall time, CPU time (user+system) and peak RSS in KB.
func replayWith(bin, dlq, amqpURL, mgmtURL, journal, extra string, more ...string) (took, cpu time.Duration, rssKB int64, err error) {
	args := append([]string{"dlq", "replay", dlq, "--all", "--yes", "-o", "json", "--journal", journal}, more...)
	if extra != "" {
		args = append(args, splitArgs(extra)...)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "MQCTL_URL="+amqpURL, "MQCTL_MGMT_URL="+mgmtURL, "MQCTL_CONFIG=/nonexistent")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("%s: %v\n%s", bin, err, out)
	}
	took = time.Since(start)
	cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rssKB = ru.Maxrss // KB on Linux
	}
	return took, cpu, rssKB, nil
}

func oneRun(r, n, size int, bin, amqpURL, mgmtURL, vhost string, mgmt *rabbithole.Client, extra string) ([]result, error) {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ms := methods()
	queues := []string{"orders-a", "orders-b", "orders-c"}[:len(ms)]
	for _, q := range queues {
		if err := fill(conn, q, n, size); err != nil {
			return nil, err
		}
	}
	var clientCPU time.Duration
	var clientRSS int64
	withMqctl := func(bin, q string, more ...string) func() (time.Duration, error) {
		return func() (took time.Duration, err error) {
			journal := filepath.Join(os.TempDir(), vhost+"."+q+".journal")
			defer os.Remove(journal)
			took, clientCPU, clientRSS, err = replayWith(bin, q+".dlq", amqpURL, mgmtURL, journal, extra, more...)
			return took, err
		}
	}
	measure := map[string]func() (time.Duration, error){}
	if compareBin != "" {
		// The older build has no shovel path: this one moves every
		// message itself too.
		measure[ms[0]] = withMqctl(bin, "orders-a", "--via", "client")
		measure[ms[1]] = withMqctl(compareBin, "orders-b")
	} else {
		measure[ms[0]] = withMqctl(bin, "orders-a")
		measure[ms[1]] = withMqctl(bin, "orders-b", "--via", "shovel")
		measure[ms[2]] = func() (time.Duration, error) {
			// The shovel deletes itself once it moved the queue length.
			return benchkit.ShovelMove(mgmt, vhost, "orders-c.dlq", "orders-c")
		}
	}
	// The order rotates from run to run.
	order := slices.Clone(ms)
	for range r % len(order) {
		order = append(order[1:], order[0])
	}
	var out []result
	for _, m := range order {
		benchkit.Settle(brokerPid)
		clientCPU, clientRSS = 0, 0
		cpu0 := benchkit.CPUTime(brokerPid)
		took, err := measure[m]()
		if err != nil {
			return nil, err
		}
		brokerCPU := benchkit.CPUTime(brokerPid) - cpu0
		perMsg := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
		dest := queues[slices.Index(ms, m)]
		lost, dup, err := verify(conn, dest, n)
		if err != nil {
			return nil, err
		}
		out = append(out, result{Run: r, Method: m, Messages: n, Seconds: took.Seconds(), MsgPerSecond: float64(n) / took.Seconds(), Lost: lost, Duplicated: dup,
			BrokerCPUPerMsg: perMsg(brokerCPU), ClientCPUPerMsg: perMsg(clientCPU), ClientMaxRSSKB: clientRSS})
	}
	return out, nil
}

func splitArgs(s string) []string {
	var out []string
	cur := ""
	for _, c := range s + " " {
		if c == ' ' {
			if cur != "" {
				out = append(out, cur)
			}
			cur = ""
			continue
		}
		cur += string(c)
	}
	return out
}

// fill has the broker dead-letter n messages of size bytes from work
// queue q into q.dlq.
func fill(conn *amqp.Connection, q string, n, size int) error {
	body := make([]byte, size)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	return benchkit.FillDLQ(conn, q, originType, n, func(i int) amqp.Publishing {
		return amqp.Publishing{MessageId: benchkit.ID(q, i), DeliveryMode: amqp.Persistent, ContentType: "application/octet-stream", Body: body}
	})
}

// verify drains q and counts ids (see benchkit.Verify), and checks that
// its DLQ is empty.
func verify(conn *amqp.Connection, q string, n int) (lost, dup int, err error) {
	if lost, dup, err = benchkit.Verify(conn, q, q, n); err != nil {
		return lost, dup, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return lost, dup, err
	}
	defer ch.Close()
	qq, err := ch.QueueDeclarePassive(q+".dlq", true, false, false, false, nil)
	if err != nil {
		return lost, dup, err
	}
	if qq.Messages != 0 {
		return lost, dup, fmt.Errorf("%s.dlq still holds %d messages", q, qq.Messages)
	}
	return lost, dup, nil
}
