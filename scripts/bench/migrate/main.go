// Command migrate measures `mqctl topology apply --migrate` turning a
// classic queue of n messages into a quorum queue, against the same
// migration done by hand with the management UI's "Move messages" (a
// dynamic shovel each way: to a temporary quorum queue, delete and
// re-declare, back), on the same broker in the same run, and checks that
// both kept every id exactly once. It also reports one shovel move alone,
// the UI's move of the same queue. Run it through
// scripts/bench/migrate-vs-shovel.sh.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/scripts/bench/benchkit"
)

type result struct {
	Run          int     `json:"run"`
	Method       string  `json:"method"`
	Messages     int     `json:"messages"`
	Seconds      float64 `json:"seconds"`
	MsgPerSecond float64 `json:"msg_per_second"`
	Lost         int     `json:"lost"`
	Duplicated   int     `json:"duplicated"`
	BrokerCPUUs  float64 `json:"broker_cpu_us_per_msg,omitempty"`
}

func main() {
	var (
		n     = flag.Int("n", 100000, "messages in the queue to migrate")
		size  = flag.Int("size", 1024, "body size in bytes")
		runs  = flag.Int("runs", 3, "runs (order alternates)")
		bin   = flag.String("mqctl", "bin/mqctl", "mqctl binary")
		base  = flag.String("url", "amqp://guest:guest@localhost:5672/", "broker AMQP URL (vhost is replaced)")
		mgmtU = flag.String("mgmt-url", "http://localhost:15672", "management API")
		pid   = flag.Int("broker-pid", 0, "OS pid of the broker (beam.smp), for its CPU per message")
		asJ   = flag.Bool("json", false, "print results as JSON")
	)
	flag.Parse()
	if err := run(*n, *size, *runs, *bin, *base, *mgmtU, *pid, *asJ); err != nil {
		fmt.Fprintln(os.Stderr, "migrate bench:", err)
		os.Exit(1)
	}
}

func run(n, size, runs int, bin, base, mgmtURL string, pid int, asJSON bool) error {
	var results []result
	err := benchkit.EachRun(base, mgmtURL, "mqctl-bench-migrate", runs, func(r benchkit.Run) error {
		res, err := oneRun(r.N, n, size, bin, r.URL, mgmtURL, r.Vhost, r.Mgmt, pid)
		if err != nil {
			return err
		}
		for _, x := range res {
			fmt.Fprintf(os.Stderr, "run %d %-15s %d msgs in %6.2fs = %6.0f msg/s, lost %d, duplicated %d, broker CPU %.0f µs/msg\n",
				x.Run, x.Method, x.Messages, x.Seconds, x.MsgPerSecond, x.Lost, x.Duplicated, x.BrokerCPUUs)
		}
		results = append(results, res...)
		return nil
	})
	if err != nil {
		return err
	}
	med := map[string]float64{}
	for _, m := range []string{"mqctl-migrate", "shovel-migrate", "shovel-move"} {
		var xs []float64
		for _, x := range results {
			if x.Method == m {
				xs = append(xs, x.MsgPerSecond)
			}
		}
		med[m] = benchkit.Median(xs)
	}
	ratio := med["mqctl-migrate"] / med["shovel-migrate"]
	if asJSON {
		if err := json.NewEncoder(os.Stdout).Encode(map[string]any{"runs": results, "median_msg_per_second": med, "ratio_vs_shovel_migration": ratio}); err != nil {
			return err
		}
	} else {
		fmt.Printf("median over %d runs, %d x %d B messages, classic → quorum: mqctl apply --migrate %.0f msg/s, the same by hand with two UI shovel moves %.0f msg/s (ratio %.2fx); one UI move alone %.0f msg/s\n",
			runs, n, size, med["mqctl-migrate"], med["shovel-migrate"], ratio, med["shovel-move"])
	}
	for _, x := range results {
		if x.Lost > 0 || x.Duplicated > 0 {
			return fmt.Errorf("run %d %s lost %d and duplicated %d messages", x.Run, x.Method, x.Lost, x.Duplicated)
		}
	}
	return nil
}

// oneRun fills three classic queues (orders-a, orders-b, orders-c) and
// migrates a with mqctl, b by hand with shovels, and moves c once with a
// shovel, in an order that alternates with the run.
func oneRun(r, n, size int, bin, amqpURL, mgmtURL, vhost string, mgmt *rabbithole.Client, pid int) ([]result, error) {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	dir, err := os.MkdirTemp("", "mqctl-bench-migrate")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	file := func(typ string) string {
		p := filepath.Join(dir, typ+".yaml")
		_ = os.WriteFile(p, []byte("apiVersion: mqctl/v1\nqueues:\n  - {name: orders-a, type: "+typ+"}\n"), 0o644)
		return p
	}
	env := append(os.Environ(), "MQCTL_URL="+amqpURL, "MQCTL_MGMT_URL="+mgmtURL, "MQCTL_CONFIG=/nonexistent", "XDG_STATE_HOME="+dir)
	mqctl := func(args ...string) error {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("mqctl %v: %v\n%s", args, err, out)
		}
		return nil
	}
	if err := mqctl("topology", "apply", "-f", file("classic")); err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	for _, q := range []string{"orders-b", "orders-c"} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			return nil, err
		}
	}
	for _, q := range []string{"orders-a", "orders-b", "orders-c"} {
		if err := benchkit.Publish(conn, q, n, size); err != nil {
			return nil, err
		}
	}
	measure := map[string]func() (string, error){
		"mqctl-migrate": func() (string, error) {
			return "orders-a", mqctl("topology", "apply", "-f", file("quorum"), "--migrate", "--yes")
		},
		"shovel-migrate": func() (string, error) { return "orders-b", shovelMigrate(ch, mgmt, vhost, "orders-b") },
		"shovel-move": func() (string, error) {
			if _, err := ch.QueueDeclare("orders-c.moved", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
				return "", err
			}
			_, err := benchkit.ShovelMove(mgmt, vhost, "orders-c", "orders-c.moved")
			return "orders-c.moved", err
		},
	}
	order := []string{"mqctl-migrate", "shovel-migrate", "shovel-move"}
	if r%2 == 0 {
		order = []string{"shovel-move", "shovel-migrate", "mqctl-migrate"}
	}
	var out []result
	for _, m := range order {
		benchkit.Settle(pid)
		cpu0 := benchkit.CPUTime(pid)
		start := time.Now()
		dest, err := measure[m]()
		if err != nil {
			return nil, err
		}
		took := time.Since(start)
		cpu := benchkit.CPUTime(pid) - cpu0
		prefix := map[string]string{"mqctl-migrate": "orders-a", "shovel-migrate": "orders-b", "shovel-move": "orders-c"}[m]
		lost, dup, err := benchkit.Verify(conn, dest, prefix, n)
		if err != nil {
			return nil, err
		}
		out = append(out, result{Run: r, Method: m, Messages: n, Seconds: took.Seconds(), MsgPerSecond: float64(n) / took.Seconds(),
			Lost: lost, Duplicated: dup, BrokerCPUUs: float64(cpu.Microseconds()) / float64(n)})
	}
	return out, nil
}

// shovelMigrate is what an operator does by hand to turn classic queue q
// into a quorum queue with the management UI: move its messages to a
// temporary quorum queue, delete q, declare it as quorum, move them back,
// delete the temporary queue. (Rebinding is left out: it costs nothing.)
func shovelMigrate(ch *amqp.Channel, mgmt *rabbithole.Client, vhost, q string) error {
	tmp := q + ".tmp"
	if _, err := ch.QueueDeclare(tmp, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		return err
	}
	if _, err := benchkit.ShovelMove(mgmt, vhost, q, tmp); err != nil {
		return err
	}
	if _, err := ch.QueueDelete(q, false, true, false); err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		return err
	}
	if _, err := benchkit.ShovelMove(mgmt, vhost, tmp, q); err != nil {
		return err
	}
	_, err := ch.QueueDelete(tmp, false, false, false)
	return err
}
