package topology

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/scripts/bench/benchkit"
)

// benchTopology builds a file of n work queues, each with retry (two delay
// queues) and a DLQ, bound to one topic exchange.
func benchTopology(n int) []byte {
	var b strings.Builder
	b.WriteString("apiVersion: mqctl/v1\nexchanges:\n  - {name: events, type: topic}\nqueues:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - name: q%04d\n    bindings: [{exchange: events, routing_key: q%04d.#}]\n    retry: {max_attempts: 3, backoff: [5s, 30s]}\n    dead_letter: true\n", i, i)
	}
	return []byte(b.String())
}

// BenchmarkTopology1000 measures, on the real broker in private vhosts:
// validate, plan against an empty vhost, apply, plan again (zero changes
// expected), and the broker's own import (one POST
// /api/definitions/{vhost}) of the same objects, reporting apply/import
// as a ratio, and with MQCTL_BENCH_BROKER_PID the broker's CPU time of
// each. Run it with scripts/bench/topology.sh (MQCTL_BENCH_QUEUES changes
// the size).
func BenchmarkTopology1000(b *testing.B) {
	n := 1000
	if s := os.Getenv("MQCTL_BENCH_QUEUES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	// MQCTL_BENCH_BROKER_PID, the broker's OS pid, adds its CPU time.
	brokerPid, _ := strconv.Atoi(os.Getenv("MQCTL_BENCH_BROKER_PID"))
	data := benchTopology(n)
	for i := 0; i < b.N; i++ {
		ctx := context.Background()
		start := time.Now()
		f, err := ParseAndValidate("bench.yaml", data)
		if err != nil {
			b.Fatal(err)
		}
		x := Expand(f)
		validate := time.Since(start)

		envApply := brokertest.New(b)
		envImport := brokertest.New(b)
		client := func(env *brokertest.Env) *rabbithole.Client {
			c, err := rabbithole.NewClient(env.MgmtURL, env.User, env.Password)
			if err != nil {
				b.Fatal(err)
			}
			c.SetTimeout(10 * time.Minute)
			return c
		}
		// Deleting thousands of quorum queues outlasts brokertest's 10 s
		// client timeout: delete the vhosts here first (its own delete then
		// finds nothing, which is fine).
		for _, env := range []*brokertest.Env{envApply, envImport} {
			b.Cleanup(func() {
				if _, err := client(env).DeleteVhost(env.Vhost); err != nil {
					b.Logf("delete vhost %s: %v", env.Vhost, err)
				}
			})
		}
		x.Vhost = envApply.Vhost
		x.Defs = *x.Defs.ForVhost(envApply.Vhost)
		// As `topology apply` builds it: a reader that posts the
		// vhost-scoped imports.
		mb := &MgmtBroker{Client: client(envApply), Reader: benchReader(b, envApply)}

		start = time.Now()
		p, err := PlanLive(ctx, mb, x, PlanOptions{})
		if err != nil {
			b.Fatal(err)
		}
		planEmpty := time.Since(start)
		objects := p.Summary.Create

		cpu0 := benchkit.CPUTime(brokerPid)
		start = time.Now()
		p, err = PlanLive(ctx, mb, x, PlanOptions{}) // apply = plan + execute
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Apply(ctx, mb, p, nil); err != nil {
			b.Fatal(err)
		}
		apply := time.Since(start)
		applyCPU := benchkit.CPUTime(brokerPid) - cpu0

		start = time.Now()
		p, err = PlanLive(ctx, mb, x, PlanOptions{})
		if err != nil {
			b.Fatal(err)
		}
		planAgain := time.Since(start)
		if p.Pending() {
			b.Fatalf("plan after apply has changes: %+v", p.Summary)
		}

		// The broker's own import of the same objects, one request, as an
		// operator would send it with curl.
		imp, err := json.Marshal(x.Defs.ForVhost(envImport.Vhost))
		if err != nil {
			b.Fatal(err)
		}
		benchkit.Settle(brokerPid)
		cpu0 = benchkit.CPUTime(brokerPid)
		start = time.Now()
		postDefinitions(b, envImport, imp)
		importTime := time.Since(start)
		importCPU := benchkit.CPUTime(brokerPid) - cpu0

		b.Logf("%d queues, %d objects: validate %s, plan (empty vhost) %s, apply %s, plan again %s (0 changes), broker import %s, apply/import %.2f; broker CPU apply %s, import %s",
			n, objects, validate, planEmpty, apply, planAgain, importTime, apply.Seconds()/importTime.Seconds(), applyCPU, importCPU)
		b.ReportMetric(float64(objects), "objects")
		b.ReportMetric(ms64(validate), "validate-ms")
		b.ReportMetric(ms64(planEmpty), "plan-empty-ms")
		b.ReportMetric(ms64(apply), "apply-ms")
		b.ReportMetric(ms64(planAgain), "plan-again-ms")
		b.ReportMetric(ms64(importTime), "broker-import-ms")
		b.ReportMetric(apply.Seconds()/importTime.Seconds(), "apply/import")
		if brokerPid != 0 {
			b.ReportMetric(applyCPU.Seconds()/importCPU.Seconds(), "apply/import-broker-cpu")
		}
	}
}

// postDefinitions is one POST /api/definitions/{vhost} of body with
// nothing of mqctl's in between, as curl would send it.
func postDefinitions(b *testing.B, env *brokertest.Env, body []byte) {
	req, err := http.NewRequest(http.MethodPost, env.MgmtURL+"/api/definitions/"+env.VhostPath(), bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	req.SetBasicAuth(env.User, env.Password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Minute}).Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(resp.Body)
		b.Fatalf("POST /api/definitions/%s: %s %s", env.Vhost, resp.Status, msg)
	}
}

func benchReader(b *testing.B, env *brokertest.Env) *broker.MgmtReader {
	s := env.Settings(b)
	s.Timeout = 10 * time.Minute
	r, err := broker.NewMgmtReader(s)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

func ms64(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
