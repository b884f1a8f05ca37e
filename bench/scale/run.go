package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/scripts/bench/benchkit"
)

// vhost is where every job runs; the node is fresh for each run.
const vhost = "scale"

// row is one measured command (or, with an op starting "setup", the
// preparation mqctl was measured against) at one size.
type row struct {
	Job, Op    string
	Size       int
	Unit       string
	Runs       int
	Wall       float64 // seconds, median of the runs
	MqctlCPU   float64 // seconds, user+sys, median
	BrokerCPU  float64 // seconds, the broker OS process over the same interval, median
	PeakRSSMiB float64 // mqctl's max RSS, the largest of the runs
	// BrokerIdle is the broker's CPU, in % of one core, over the last
	// second before the first run: background work (statistics of many
	// queues) that the broker CPU figure includes.
	BrokerIdle float64
	Status     string // ok, or what failed
	Note       string
	At         time.Time
}

var csvHeader = []string{"job", "op", "size", "unit", "runs", "wall_s", "mqctl_cpu_s", "broker_cpu_s", "peak_rss_mib",
	"wall_us_per_item", "mqctl_cpu_us_per_item", "broker_cpu_us_per_item", "broker_idle_pct", "status", "note", "at"}

func (r row) record() []string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', 3, 64) }
	per := func(s float64) string { return f(s * 1e6 / float64(r.Size)) }
	return []string{r.Job, r.Op, strconv.Itoa(r.Size), r.Unit, strconv.Itoa(r.Runs), f(r.Wall), f(r.MqctlCPU), f(r.BrokerCPU),
		f(r.PeakRSSMiB), per(r.Wall), per(r.MqctlCPU), per(r.BrokerCPU), f(r.BrokerIdle), r.Status, r.Note, r.At.UTC().Format(time.RFC3339)}
}

// bench is one job at one size on one broker.
type bench struct {
	job       string
	size      int
	runs      int
	bin       string
	amqpURL   string // the vhost's
	mgmtURL   string
	brokerPid int
	work      string
	csvPath   string
	mgmt      *rabbithole.Client
	// showAllMax is the largest queue `dlq show --limit 0` is measured
	// on: it streams since 09ed706, but a million dead letters of 1 KiB
	// are about 2 GB of JSON, a read that `dlq export` already measures.
	showAllMax int
	applyArgs  []string // added to topology apply
}

func runMain(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var b bench
	var base string
	fs.StringVar(&b.job, "job", "", "backlog, topology or dlq")
	fs.IntVar(&b.size, "size", 0, "queues (backlog), work queues (topology) or dead letters (dlq)")
	fs.IntVar(&b.runs, "runs", 3, "runs of each repeatable (read-only) command; apply and replay run once")
	fs.StringVar(&b.bin, "mqctl", "bin/mqctl", "mqctl binary")
	fs.StringVar(&base, "url", "amqp://guest:guest@localhost:5701/", "broker AMQP URL (the vhost is replaced)")
	fs.StringVar(&b.mgmtURL, "mgmt-url", "http://localhost:15701", "management API")
	fs.IntVar(&b.brokerPid, "broker-pid", 0, "the broker's OS pid (beam.smp), for its CPU time")
	fs.StringVar(&b.work, "work", os.TempDir(), "scratch directory (export files, journals, audit trail)")
	fs.StringVar(&b.csvPath, "csv", "", "CSV file to append rows to")
	applyArgs := fs.String("apply-args", "", "flags added to topology apply, space-separated (e.g. --import-timeout 10m); the op's name shows them")
	fs.IntVar(&b.showAllMax, "show-all-max", 100000, "measure dlq show --limit 0 only up to this many dead letters (dlq export measures a whole large queue)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b.applyArgs = strings.Fields(*applyArgs)
	if b.size <= 0 || b.csvPath == "" {
		return errors.New("run needs -size and -csv")
	}
	uri, err := amqp.ParseURI(base)
	if err != nil {
		return err
	}
	if b.mgmt, err = rabbithole.NewClient(b.mgmtURL, uri.Username, uri.Password); err != nil {
		return err
	}
	// Creating or deleting tens of thousands of queues outlasts any
	// short client timeout.
	b.mgmt.SetTimeout(60 * time.Minute)
	if err := benchkit.NewVhost(b.mgmt, vhost, uri.Username); err != nil {
		return fmt.Errorf("create vhost: %w", err)
	}
	uri.Vhost = vhost
	b.amqpURL = uri.String()
	switch b.job {
	case "backlog":
		return b.backlog()
	case "topology":
		return b.topology()
	case "dlq":
		return b.dlq()
	}
	return fmt.Errorf("unknown job %q: want backlog, topology or dlq", b.job)
}

// emit appends r to the CSV file at once, so a run cut short keeps what
// it measured.
func (b *bench) emit(r row) error {
	r.Job, r.Size, r.At = b.job, b.size, time.Now()
	fmt.Fprintf(os.Stderr, "%-8s %-14s %9d %-12s wall %8.2fs  mqctl CPU %7.2fs  broker CPU %7.2fs  RSS %6.1f MiB  %s %s\n",
		r.Job, r.Op, r.Size, r.Unit, r.Wall, r.MqctlCPU, r.BrokerCPU, r.PeakRSSMiB, r.Status, r.Note)
	_, statErr := os.Stat(b.csvPath)
	f, err := os.OpenFile(b.csvPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	if errors.Is(statErr, os.ErrNotExist) {
		_ = w.Write(csvHeader)
	}
	_ = w.Write(r.record())
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// setup times a preparation step (no mqctl in it) for the record.
func (b *bench) setup(op, unit string, f func() error) error {
	cpu0 := benchkit.CPUTime(b.brokerPid)
	start := time.Now()
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return b.emit(row{Op: op, Unit: unit, Runs: 1, Wall: time.Since(start).Seconds(),
		BrokerCPU: (benchkit.CPUTime(b.brokerPid) - cpu0).Seconds(), Status: "ok"})
}

// settle waits until the broker is nearly idle (< 10 % of a core over a
// second), at most max, and returns its CPU use over the last second in
// % of a core. A node with tens of thousands of queues never gets there
// (it collects their statistics every 5 s); that load stays in the
// figures and the idle column says how large it is.
func (b *bench) settle(max time.Duration) float64 {
	if b.brokerPid == 0 {
		time.Sleep(2 * time.Second)
		return 0
	}
	var last time.Duration
	for deadline := time.Now().Add(max); ; {
		before := benchkit.CPUTime(b.brokerPid)
		time.Sleep(time.Second)
		last = benchkit.CPUTime(b.brokerPid) - before
		if last < 100*time.Millisecond || time.Now().After(deadline) {
			return float64(last) / float64(time.Second) * 100
		}
	}
}

// command is one mqctl command line to measure, with what to check after
// each run.
type command struct {
	op, unit string
	args     []string
	runs     int
	// stdout receives the command's output: a file to check, or nil
	// for /dev/null (dlq show of a million messages writes gigabytes).
	stdout string
	before func() error // before each run (e.g. remove the export file)
	check  func() error // after each run
}

// measure runs c.runs times after the broker settled, and emits the
// medians; a failed run ends the command and is recorded, not fatal, so
// the other commands still run.
func (b *bench) measure(c command) error {
	var walls, cpus, bcpus []float64
	var rss float64
	idle := b.settle(30 * time.Second)
	r := row{Op: c.op, Unit: c.unit, BrokerIdle: idle, Status: "ok"}
	for i := 0; i < c.runs; i++ {
		if i > 0 {
			b.settle(20 * time.Second)
		}
		if c.before != nil {
			if err := c.before(); err != nil {
				return err
			}
		}
		cmd := exec.Command(b.bin, c.args...)
		cmd.Env = append(os.Environ(), "MQCTL_URL="+b.amqpURL, "MQCTL_MGMT_URL="+b.mgmtURL, "MQCTL_CONFIG=/nonexistent",
			"XDG_STATE_HOME="+b.work, "XDG_CONFIG_HOME="+b.work, "NO_COLOR=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if c.stdout != "" {
			f, err := os.Create(c.stdout)
			if err != nil {
				return err
			}
			cmd.Stdout = f
		}
		cpu0 := benchkit.CPUTime(b.brokerPid)
		start := time.Now()
		err := cmd.Run()
		wall := time.Since(start)
		bcpu := benchkit.CPUTime(b.brokerPid) - cpu0
		if f, ok := cmd.Stdout.(*os.File); ok {
			f.Close()
		}
		if err != nil {
			r.Status = "failed: " + err.Error()
			r.Note = lastLine(stderr.String())
			r.Wall, r.Runs = wall.Seconds(), i+1
			if cmd.ProcessState != nil {
				r.MqctlCPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
				r.PeakRSSMiB = float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024
			}
			r.BrokerCPU = bcpu.Seconds()
			return b.emit(r)
		}
		walls = append(walls, wall.Seconds())
		cpus = append(cpus, (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds())
		bcpus = append(bcpus, bcpu.Seconds())
		rss = max(rss, float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)/1024) // KiB on Linux
		if c.check != nil {
			if err := c.check(); err != nil {
				r.Status, r.Note = "wrong result", err.Error()
				break
			}
		}
	}
	r.Runs = len(walls)
	if r.Runs > 0 {
		r.Wall, r.MqctlCPU, r.BrokerCPU, r.PeakRSSMiB = benchkit.Median(walls), benchkit.Median(cpus), benchkit.Median(bcpus), rss
	}
	return b.emit(r)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// backlog: size queues, half work queues dead-lettering through their own
// Q.dlx exchange into Q.dlq, half those DLQs (as scripts/bench/backlog.sh
// builds them), created with one definitions import.
func (b *bench) backlog() error {
	pairs := b.size / 2
	err := b.setup("setup:import", "queues", func() error {
		// The management API refuses a body over its size limit
		// (management.http_max_body_size, 20 MB by default, about 30,000
		// of these queues): import 5,000 pairs at a time.
		for from := 0; from < pairs; from += 5000 {
			if err := b.importDefs(backlogDefs(from, min(from+5000, pairs))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// A node that just created thousands of queues is busy with their
	// first statistics for a while: measure the steady state.
	b.settle(60 * time.Second)
	out := filepath.Join(b.work, "backlog.json")
	op := "backlog"
	if t := os.Getenv("MQCTL_TIMEOUT"); t != "" {
		op += " --timeout " + t // mqctl reads it from the environment
	}
	return b.measure(command{op: op, unit: "queues", runs: b.runs, stdout: out,
		args: []string{"backlog", "-o", "json"},
		check: func() error {
			data, err := os.ReadFile(out)
			if err != nil {
				return err
			}
			if n := bytes.Count(data, []byte(`"role":`)); n != 2*pairs {
				return fmt.Errorf("backlog lists %d queues, want %d", n, 2*pairs)
			}
			return nil
		}})
}

// backlogDefs is the definitions of work queues from..to-1, with their
// DLX exchanges, DLQs and bindings.
func backlogDefs(from, to int) []byte {
	type obj = map[string]any
	var qs, xs, bs []obj
	for i := from; i < to; i++ {
		w := fmt.Sprintf("work.%d", i)
		qs = append(qs, obj{"name": w, "vhost": vhost, "durable": true, "auto_delete": false,
			"arguments": obj{"x-dead-letter-exchange": w + ".dlx", "x-dead-letter-routing-key": w}},
			obj{"name": w + ".dlq", "vhost": vhost, "durable": true, "auto_delete": false, "arguments": obj{}})
		xs = append(xs, obj{"name": w + ".dlx", "vhost": vhost, "type": "direct", "durable": true, "auto_delete": false, "internal": false, "arguments": obj{}})
		bs = append(bs, obj{"source": w + ".dlx", "vhost": vhost, "destination": w + ".dlq", "destination_type": "queue", "routing_key": w, "arguments": obj{}})
	}
	doc, _ := json.Marshal(obj{"queues": qs, "exchanges": xs, "bindings": bs}) // maps of strings and bools: cannot fail
	return doc
}

// importDefs posts doc to the broker's vhost-scoped definitions import.
func (b *bench) importDefs(doc []byte) error {
	u := b.mgmtURL + "/api/definitions/" + url.PathEscape(vhost)
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(doc))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	uri, _ := amqp.ParseURI(b.amqpURL)
	req.SetBasicAuth(uri.Username, uri.Password)
	resp, err := (&http.Client{Timeout: 60 * time.Minute}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("definitions import: %s: %s", resp.Status, body)
	}
	return nil
}

// topology: plan against the empty vhost, apply, and plan again against
// the applied one (which must show no change: --exit-code exits 3
// otherwise).
func (b *bench) topology() error {
	file := filepath.Join(b.work, "topology.yaml")
	if err := os.WriteFile(file, benchkit.TopologyFile(b.size), 0o644); err != nil {
		return err
	}
	if err := b.measure(command{op: "plan (empty)", unit: "work queues", runs: b.runs,
		args: []string{"topology", "plan", "-f", file}}); err != nil {
		return err
	}
	if err := b.measure(command{op: strings.TrimSpace("apply " + strings.Join(b.applyArgs, " ")), unit: "work queues", runs: 1,
		args: append([]string{"topology", "apply", "-f", file, "--yes"}, b.applyArgs...)}); err != nil {
		return err
	}
	return b.measure(command{op: "plan (applied)", unit: "work queues", runs: b.runs,
		args: []string{"topology", "plan", "-f", file, "--exit-code"}})
}

// dlq: orders dead-letters into orders.dlq (through orders.dlx), which
// holds size dead letters of 1 KiB as mqctl's reference worker sends
// them after its last attempt (mqctl-origin-queue and failure headers):
// published straight into the DLQ, which is ten times faster than having
// the broker dead-letter them and links them to their origin all the same.
func (b *bench) dlq() error {
	conn, err := amqp.Dial(b.amqpURL)
	if err != nil {
		return err
	}
	defer conn.Close()
	err = b.setup("setup:fill", "dead letters", func() error {
		if err := benchkit.FillDLQ(conn, "orders", "classic", 0, nil); err != nil {
			return err
		}
		return benchkit.PublishEach(conn, "orders.dlq", b.size, deadLetter(b.size))
	})
	if err != nil {
		return err
	}
	holds := func(q string, n int) func() error {
		return func() error {
			ch, err := conn.Channel()
			if err != nil {
				return err
			}
			defer ch.Close()
			// Messages a peek held go back to the queue as its channel
			// closes; give the broker a moment to count them.
			var got int
			for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				qq, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
				if err != nil {
					return err
				}
				if got = qq.Messages; got == n {
					return nil
				}
			}
			return fmt.Errorf("%s holds %d messages, want %d", q, got, n)
		}
	}
	if err := b.measure(command{op: "show", unit: "dead letters", runs: b.runs,
		args: []string{"dlq", "show", "orders.dlq", "-o", "json"}, check: holds("orders.dlq", b.size)}); err != nil {
		return err
	}
	if b.size > b.showAllMax {
		if err := b.emit(row{Op: "show --limit 0", Unit: "dead letters", Status: "skipped",
			Note: fmt.Sprintf("above -show-all-max %d: dlq export measures a whole large queue", b.showAllMax)}); err != nil {
			return err
		}
	} else if err := b.measure(command{op: "show --limit 0", unit: "dead letters", runs: b.runs,
		args: []string{"dlq", "show", "orders.dlq", "-o", "json", "--limit", "0"}, check: holds("orders.dlq", b.size)}); err != nil {
		return err
	}
	export := filepath.Join(b.work, "export.jsonl")
	if err := b.measure(command{op: "export", unit: "dead letters", runs: b.runs,
		args:   []string{"dlq", "export", "orders.dlq", "--out", export},
		before: func() error { return removeIfExists(export) },
		check: func() error {
			n, err := countLines(export)
			if err == nil && n != b.size {
				err = fmt.Errorf("export wrote %d lines, want %d", n, b.size)
			}
			if err == nil {
				err = holds("orders.dlq", b.size)()
			}
			return err
		}}); err != nil {
		return err
	}
	if err := removeIfExists(export); err != nil {
		return err
	}
	return b.measure(command{op: "replay", unit: "dead letters", runs: 1,
		args: []string{"dlq", "replay", "orders.dlq", "--all", "--yes", "--journal", filepath.Join(b.work, "replay.journal")},
		check: func() error {
			if err := holds("orders", b.size)(); err != nil {
				return err
			}
			return holds("orders.dlq", 0)()
		}})
}

// deadLetter is dead letter i of n: a 1 KiB body and the headers the
// reference worker stamps on a message it gives up on.
func deadLetter(n int) func(i int) amqp.Publishing {
	body := make([]byte, 1024)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	failedAt := time.Now().Add(-2 * time.Hour)
	return func(i int) amqp.Publishing {
		at := failedAt.Add(time.Duration(i) * time.Hour / time.Duration(n)).UTC().Format(time.RFC3339)
		return amqp.Publishing{
			MessageId: benchkit.ID("orders", i), DeliveryMode: amqp.Persistent, ContentType: "application/octet-stream", Body: body,
			Headers: amqp.Table{
				"mqctl-origin-queue": "orders", "mqctl-failure-reason": fmt.Sprintf("smtp: timeout after %ds sending to user %d", 30+i%7, 100000+i),
				"mqctl-failed-at": at, "mqctl-first-failed-at": at, "mqctl-attempt": int32(3),
				"mqctl-exchange": "", "mqctl-routing-key": "orders",
			},
		}
	}
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func countLines(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	buf := make([]byte, 1<<20)
	n := 0
	for {
		k, err := r.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
