// Command dlqgroup measures what a person deciding about a large DLQ pays
// to look at it: `mqctl dlq show --groups` (grouping every dead letter by
// origin, reason and normalised error) and the same with a --where filter,
// against `mqctl dlq export` of the same queue in the same run — messages
// per second and peak memory (max RSS) of each. Every command reads the
// whole queue without removing anything; the script checks the queue still
// holds every message after each one, and that the group counts add up.
//
// The DLQ holds n dead letters of size bytes, JSON bodies, failed by a
// worker with one of five kinds of error whose texts differ in ids,
// numbers and times (so they must be normalised to group), as the
// reference worker dead-letters them after its last attempt. Run it through
// scripts/bench/dlq-group-vs-export.sh.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mqctl/mqctl/scripts/bench/benchkit"
	amqp "github.com/rabbitmq/amqp091-go"
)

func main() {
	var (
		n      = flag.Int("n", 100000, "dead letters")
		size   = flag.Int("size", 1024, "body size in bytes")
		runs   = flag.Int("runs", 3, "runs (order rotates)")
		bin    = flag.String("mqctl", "bin/mqctl", "mqctl binary")
		base   = flag.String("url", "amqp://guest:guest@localhost:5672/", "broker AMQP URL (vhost is replaced)")
		mgmtU  = flag.String("mgmt-url", "http://localhost:15672", "management API")
		asJSON = flag.Bool("json", false, "print results as JSON")
	)
	flag.Parse()
	if err := run(*n, *size, *runs, *bin, *base, *mgmtU, *asJSON); err != nil {
		fmt.Fprintln(os.Stderr, "dlqgroup:", err)
		os.Exit(1)
	}
}

// errorKinds are the five failures, each with parts that vary per message.
var errorKinds = []func(i int) string{
	func(i int) string { return fmt.Sprintf("smtp: timeout after %ds sending to user %d", 30+i%7, 100000+i) },
	func(i int) string {
		return fmt.Sprintf("provider unavailable: 503 from api.mail.example (request id %08x-%04x)", i*2654435761, i%65536)
	},
	func(i int) string { return fmt.Sprintf("invalid address \"user-%d@example\" in message %d", i, i*7) },
	func(i int) string {
		return fmt.Sprintf("rate limited at %s: retry after %ds", time.Date(2026, 12, 3, 3, i%60, i%60, 0, time.UTC).Format(time.RFC3339), 1+i%30)
	},
	func(i int) string {
		return fmt.Sprintf("template welcome-v3: missing field name in event %d", 900000+i)
	},
}

type result struct {
	Run          int     `json:"run"`
	Method       string  `json:"method"`
	Messages     int     `json:"messages"`
	Seconds      float64 `json:"seconds"`
	MsgPerSecond float64 `json:"msg_per_second"`
	MaxRSSMiB    float64 `json:"max_rss_mib"`
}

// methods are the commands compared, each reading the whole DLQ.
var methods = []struct {
	name string
	args func(dir string) []string
}{
	{"export", func(dir string) []string {
		return []string{"dlq", "export", "orders.dlq", "--out", filepath.Join(dir, "export.jsonl")}
	}},
	{"group", func(string) []string { return []string{"dlq", "show", "orders.dlq", "--groups", "-o", "json"} }},
	{"group+where", func(string) []string {
		return []string{"dlq", "show", "orders.dlq", "--groups", "-o", "json", "--where", `error contains "timeout" || deaths > 1`}
	}},
}

func run(n, size, runs int, bin, base, mgmtURL string, asJSON bool) error {
	var results []result
	err := benchkit.EachRun(base, mgmtURL, "mqctl-bench-group", runs, func(r benchkit.Run) error {
		res, err := oneRun(r, n, size, bin, mgmtURL)
		if err != nil {
			return err
		}
		for _, x := range res {
			fmt.Fprintf(os.Stderr, "run %d %-11s %d msgs in %.2fs = %.0f msg/s, max RSS %.0f MiB\n",
				x.Run, x.Method, x.Messages, x.Seconds, x.MsgPerSecond, x.MaxRSSMiB)
		}
		results = append(results, res...)
		return nil
	})
	if err != nil {
		return err
	}
	rate, rss := map[string]float64{}, map[string]float64{}
	for _, m := range methods {
		var rs, ms []float64
		for _, x := range results {
			if x.Method == m.name {
				rs, ms = append(rs, x.MsgPerSecond), append(ms, x.MaxRSSMiB)
			}
		}
		rate[m.name], rss[m.name] = benchkit.Median(rs), benchkit.Median(ms)
	}
	// cost is time per message relative to the export: 1.2 means 20 %
	// slower than exporting the same queue.
	cost := func(m string) float64 { return rate["export"] / rate[m] }
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{"runs": results, "median_msg_per_second": rate,
			"median_max_rss_mib": rss, "cost_vs_export": map[string]float64{"group": cost("group"), "group+where": cost("group+where")}})
	}
	fmt.Printf("median over %d runs of %d x %d B dead letters:\n", runs, n, size)
	for _, m := range methods {
		fmt.Printf("  %-11s %7.0f msg/s  max RSS %4.0f MiB  time vs export %.2fx\n", m.name, rate[m.name], rss[m.name], cost(m.name))
	}
	return nil
}

func oneRun(r benchkit.Run, n, size int, bin, mgmtURL string) ([]result, error) {
	conn, err := amqp.Dial(r.URL)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// The topology of a work queue and its DLQ; the dead letters go
	// straight into orders.dlq, as the reference worker sends them after
	// its last attempt (its headers, no x-death).
	if err := benchkit.FillDLQ(conn, "orders", "classic", 0, nil); err != nil {
		return nil, err
	}
	if err := benchkit.PublishEach(conn, "orders.dlq", n, message(n, size)); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "dlqgroup")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var out []result
	for k := range methods {
		m := methods[(k+r.N)%len(methods)] // rotate who goes first
		os.Remove(filepath.Join(dir, "export.jsonl"))
		cmd := exec.Command(bin, m.args(dir)...)
		cmd.Env = append(os.Environ(), "MQCTL_URL="+r.URL, "MQCTL_MGMT_URL="+mgmtURL, "MQCTL_CONFIG=/nonexistent",
			"XDG_STATE_HOME="+dir)
		var stdout strings.Builder
		cmd.Stdout = &stdout
		cmd.Stderr = os.Stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("mqctl %s: %w", strings.Join(m.args(dir), " "), err)
		}
		took := time.Since(start)
		if m.name == "group" {
			if err := checkGroups(stdout.String(), n); err != nil {
				return nil, err
			}
		}
		if err := stillHolds(conn, "orders.dlq", n); err != nil {
			return nil, fmt.Errorf("after %s: %w", m.name, err)
		}
		rss := float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024 // KiB on Linux
		out = append(out, result{Run: r.N, Method: m.name, Messages: n, Seconds: took.Seconds(),
			MsgPerSecond: float64(n) / took.Seconds(), MaxRSSMiB: rss})
	}
	return out, nil
}

// message is dead letter i: a JSON body padded to size, failed by the
// worker of orders with one of the five error kinds.
func message(n, size int) func(i int) amqp.Publishing {
	failedAt := time.Now().Add(-2 * time.Hour)
	return func(i int) amqp.Publishing {
		body, _ := json.Marshal(map[string]any{"event": "user.registered", "user_id": i, "email": fmt.Sprintf("user-%d@example", i)})
		if pad := size - len(body) - len(`,"pad":""`); pad > 0 {
			body, _ = json.Marshal(map[string]any{"event": "user.registered", "user_id": i, "email": fmt.Sprintf("user-%d@example", i), "pad": strings.Repeat("x", pad)})
		}
		at := failedAt.Add(time.Duration(i) * time.Hour / time.Duration(n)).UTC().Format(time.RFC3339)
		return amqp.Publishing{
			MessageId: benchkit.ID("orders", i), DeliveryMode: amqp.Persistent, ContentType: "application/json", Body: body,
			Headers: amqp.Table{
				"mqctl-origin-queue": "orders", "mqctl-failure-reason": errorKinds[i%len(errorKinds)](i),
				"mqctl-failed-at": at, "mqctl-first-failed-at": at, "mqctl-attempt": int32(3),
				"mqctl-exchange": "signup", "mqctl-routing-key": "user.registered",
			},
		}
	}
}

// checkGroups checks that the groups count every message and that one
// group per error kind holds nearly all of them: a request id that comes
// out as digits only (00000000-0000) reads as a number and groups apart,
// as it should.
func checkGroups(out string, n int) error {
	var v struct {
		Groups []struct {
			Count int `json:"count"`
		} `json:"groups"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return fmt.Errorf("dlq show --groups -o json: %w", err)
	}
	sum, counts := 0, []int{}
	for _, g := range v.Groups {
		sum += g.Count
		counts = append(counts, g.Count)
	}
	slices.Sort(counts)
	slices.Reverse(counts)
	top := 0
	for _, c := range counts[:min(len(counts), len(errorKinds))] {
		top += c
	}
	if sum != n || len(counts) < len(errorKinds) || top < n-n/1000 {
		return fmt.Errorf("groups count %d messages in %d groups (the %d largest hold %d), want %d, nearly all in %d",
			sum, len(counts), len(errorKinds), top, n, len(errorKinds))
	}
	return nil
}

func stillHolds(conn *amqp.Connection, q string, n int) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	qq, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
	if err != nil {
		return err
	}
	if qq.Messages != n {
		return fmt.Errorf("%s holds %d messages, want %d", q, qq.Messages, n)
	}
	return nil
}
