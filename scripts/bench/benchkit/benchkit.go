// Package benchkit is what the side-by-side benchmarks under scripts/bench
// share: a vhost per run, confirmed fills, the broker's CPU time, a
// settle wait, the management UI's shovel move, an id count that proves
// nothing was lost or duplicated, and the topology file they apply.
package benchkit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"
)

// CPUTime is the user+system CPU time of process pid (0 when unknown).
func CPUTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// the 14th and 15th fields of the whole line, in clock ticks (100/s).
	rest := string(b[bytes.LastIndexByte(b, ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// Settle waits until the broker (pid) has finished the background work a
// fill left (dead-lettering, index writes): less than 5 % of a core over
// a second, at most 60 s. Without a pid it waits a fixed 5 s.
func Settle(pid int) {
	if pid == 0 {
		time.Sleep(5 * time.Second)
		return
	}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		before := CPUTime(pid)
		time.Sleep(time.Second)
		if CPUTime(pid)-before < 50*time.Millisecond {
			return
		}
	}
}

// NewVhost creates vhost with full permissions for user; the caller
// deletes it.
func NewVhost(mgmt *rabbithole.Client, vhost, user string) error {
	if _, err := mgmt.PutVhost(vhost, rabbithole.VhostSettings{}); err != nil {
		return err
	}
	_, err := mgmt.UpdatePermissionsIn(vhost, user, rabbithole.Permissions{Configure: ".*", Write: ".*", Read: ".*"})
	return err
}

// ID is message i's id in queue q.
func ID(q string, i int) string { return fmt.Sprintf("%s-%07d", q, i) }

// Publish sends n persistent messages of size bytes to queue q through
// the default exchange, ids ID(q, i), each batch of 1,000 confirmed.
func Publish(conn *amqp.Connection, q string, n, size int) error {
	body := make([]byte, size)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	return PublishEach(conn, q, n, func(i int) amqp.Publishing {
		return amqp.Publishing{MessageId: ID(q, i), DeliveryMode: amqp.Persistent, ContentType: "application/octet-stream", Body: body}
	})
}

// PublishEach sends n messages to queue q through the default exchange,
// message i as msg(i) gives it, mandatory, each batch of 1,000 confirmed.
func PublishEach(conn *amqp.Connection, q string, n int, msg func(i int) amqp.Publishing) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return err
	}
	var dcs []*amqp.DeferredConfirmation
	wait := func() error {
		for _, d := range dcs {
			if ok, err := d.WaitContext(context.Background()); !ok || err != nil {
				return fmt.Errorf("fill %s: publish not confirmed: %v", q, err)
			}
		}
		dcs = dcs[:0]
		return nil
	}
	for i := range n {
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", q, true, false, msg(i))
		if err != nil {
			return err
		}
		if dcs = append(dcs, dc); len(dcs) == 1000 {
			if err := wait(); err != nil {
				return err
			}
		}
	}
	return wait()
}

// FillDLQ declares work queue q (of queueType) dead-lettering into q.dlq
// through q.dlx, publishes n messages to it (message i as msg(i) gives
// it) and has the broker dead-letter them all (rejected), then waits
// until q.dlq holds n.
func FillDLQ(conn *amqp.Connection, q, queueType string, n int, msg func(i int) amqp.Publishing) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.ExchangeDeclare(q+".dlx", "direct", true, false, false, false, nil); err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-dead-letter-exchange": q + ".dlx", "x-dead-letter-routing-key": q, "x-queue-type": queueType}); err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(q+".dlq", true, false, false, false, nil); err != nil {
		return err
	}
	if err := ch.QueueBind(q+".dlq", q, q+".dlx", false, nil); err != nil {
		return err
	}
	if err := PublishEach(conn, q, n, msg); err != nil {
		return err
	}
	if err := ch.Qos(2000, 0, false); err != nil {
		return err
	}
	ds, err := ch.Consume(q, "fill", false, false, false, false, nil)
	if err != nil {
		return err
	}
	for got := 1; got <= n; got++ {
		d := <-ds
		if got%1000 == 0 || got == n {
			if err := d.Nack(true, false); err != nil {
				return err
			}
		}
	}
	if err := ch.Cancel("fill", false); err != nil {
		return err
	}
	for {
		qq, err := ch.QueueDeclarePassive(q+".dlq", true, false, false, false, nil)
		if err != nil {
			return err
		}
		if qq.Messages == n {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ShovelMove moves every message of queue src to queue dst in vhost the
// way the management UI's "Move messages" does (a dynamic shovel,
// src-delete-after: queue-length, ack on confirm) and returns once the
// shovel has deleted itself.
func ShovelMove(mgmt *rabbithole.Client, vhost, src, dst string) (time.Duration, error) {
	uri := "amqp:///" + urlPathEscape(vhost)
	start := time.Now()
	_, err := mgmt.DeclareShovel(vhost, "Move from "+src, rabbithole.ShovelDefinition{
		SourceURI: rabbithole.URISet{uri}, DestinationURI: rabbithole.URISet{uri},
		SourceProtocol: "amqp091", DestinationProtocol: "amqp091",
		SourceQueue: src, DestinationQueue: dst,
		SourceDeleteAfter: "queue-length", AckMode: "on-confirm",
	})
	if err != nil {
		return 0, err
	}
	for {
		ss, err := mgmt.ListShovelStatus(vhost)
		if err != nil {
			return 0, err
		}
		if len(ss) == 0 {
			return time.Since(start), nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func urlPathEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "%", "%25"), "/", "%2F")
}

// Verify drains q and counts the ids ID(prefix, 0..n-1): lost (never
// arrived) and duplicated; an id outside that set is an error.
func Verify(conn *amqp.Connection, q, prefix string, n int) (lost, dup int, err error) {
	ch, err := conn.Channel()
	if err != nil {
		return 0, 0, err
	}
	defer ch.Close()
	if err := ch.Qos(2000, 0, false); err != nil {
		return 0, 0, err
	}
	ds, err := ch.Consume(q, "verify", false, true, false, false, nil)
	if err != nil {
		return 0, 0, err
	}
	seen := map[string]int{}
	idle := time.NewTimer(3 * time.Second)
	count := 0
loop:
	for {
		select {
		case d := <-ds:
			seen[d.MessageId]++
			if count++; count%1000 == 0 {
				_ = d.Ack(true)
			}
			idle.Reset(3 * time.Second)
		case <-idle.C:
			break loop
		}
	}
	for i := range n {
		switch c := seen[ID(prefix, i)]; {
		case c == 0:
			lost++
		case c > 1:
			dup += c - 1
		}
	}
	if extra := len(seen) - (n - lost); extra > 0 {
		return lost, dup, fmt.Errorf("%s holds %d unexpected ids", q, extra)
	}
	return lost, dup, nil
}

// TopologyFile is a topology of n work queues, each with retry (two delay
// queues) and a DLQ, bound to one topic exchange: what the topology
// benchmark and the scaling curves apply.
func TopologyFile(n int) []byte {
	var b strings.Builder
	b.WriteString("apiVersion: mqctl/v1\nexchanges:\n  - {name: events, type: topic}\nqueues:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - name: q%04d\n    bindings: [{exchange: events, routing_key: q%04d.#}]\n    retry: {max_attempts: 3, backoff: [5s, 30s]}\n    dead_letter: true\n", i, i)
	}
	return []byte(b.String())
}

// Median of xs (xs is sorted in place).
func Median(xs []float64) float64 {
	sort.Float64s(xs)
	return xs[len(xs)/2]
}

// Run is one run of a side-by-side benchmark, in a vhost of its own.
type Run struct {
	N     int    // 1-based run number
	URL   string // AMQP URL of the run's vhost
	Vhost string
	Mgmt  *rabbithole.Client // administrator client of the broker
}

// EachRun calls f for runs 1..runs, each with a fresh vhost named
// prefix-PID-N on the broker at base (whose credentials it uses), deleted
// after f returns.
func EachRun(base, mgmtURL, prefix string, runs int, f func(Run) error) error {
	uri, err := amqp.ParseURI(base)
	if err != nil {
		return err
	}
	mgmt, err := rabbithole.NewClient(mgmtURL, uri.Username, uri.Password)
	if err != nil {
		return err
	}
	for r := 1; r <= runs; r++ {
		vhost := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), r)
		if err := NewVhost(mgmt, vhost, uri.Username); err != nil {
			return err
		}
		u := uri
		u.Vhost = vhost
		err := f(Run{N: r, URL: u.String(), Vhost: vhost, Mgmt: mgmt})
		_, _ = mgmt.DeleteVhost(vhost)
		if err != nil {
			return err
		}
	}
	return nil
}
