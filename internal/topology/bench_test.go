package topology

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/scripts/bench/benchkit"
)

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
	data := benchkit.TopologyFile(n)
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
		// vhost-scoped imports. Every request is logged, for where apply
		// spends its time. The imports get as long as the baseline's
		// POST: the benchmark measures speed, and on a machine others
		// load too a 500-queue batch outlasted the default 40 s limit.
		log := &requestLog{}
		hc := client(envApply)
		hc.SetTransport(log.roundTripper(http.DefaultTransport))
		mb := &MgmtBroker{Client: hc, Reader: loggedReader{benchReader(b, envApply), log}, ImportLimit: 10 * time.Minute}

		start = time.Now()
		p, err := PlanLive(ctx, mb, x, PlanOptions{})
		if err != nil {
			b.Fatal(err)
		}
		planEmpty := time.Since(start)
		objects := p.Summary.Create

		log.reset()
		cpu0 := benchkit.CPUTime(brokerPid)
		self0 := benchkit.CPUTime(os.Getpid())
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
		selfCPU := benchkit.CPUTime(os.Getpid()) - self0
		b.Logf("apply: %s; the benchmark's own CPU (mqctl's share) %s", log.summary(apply), selfCPU)

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

// requestLog records the management API requests of an apply: method,
// resource and how long each took.
type requestLog struct {
	mu   sync.Mutex
	reqs []loggedRequest
}

type loggedRequest struct {
	what string // "POST definitions", "GET queues"…
	took time.Duration
}

func (l *requestLog) add(method, path string, took time.Duration) {
	path = strings.TrimPrefix(path, "/api/")
	resource, _, _ := strings.Cut(path, "/")
	l.mu.Lock()
	l.reqs = append(l.reqs, loggedRequest{method + " " + resource, took})
	l.mu.Unlock()
}

func (l *requestLog) reset() {
	l.mu.Lock()
	l.reqs = nil
	l.mu.Unlock()
}

// summary counts the requests and their time per kind, and the time
// spent outside any request (mqctl's own work) out of total.
func (l *requestLog) summary(total time.Duration) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	type agg struct {
		n    int
		took time.Duration
	}
	kinds := map[string]*agg{}
	var order []string
	var in time.Duration
	for _, r := range l.reqs {
		a := kinds[r.what]
		if a == nil {
			a = &agg{}
			kinds[r.what] = a
			order = append(order, r.what)
		}
		a.n++
		a.took += r.took
		in += r.took
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = fmt.Sprintf("%d× %s %s", kinds[k].n, k, kinds[k].took.Round(time.Millisecond))
	}
	return fmt.Sprintf("%d requests (%s), %s between requests", len(l.reqs), strings.Join(parts, ", "), (total - in).Round(time.Millisecond))
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// roundTripper logs rabbit-hole's requests up to the answer's headers:
// the management API builds an answer before it sends them, so that is
// the broker's part of the request.
func (l *requestLog) roundTripper(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		start := time.Now()
		resp, err := rt.RoundTrip(r)
		l.add(r.Method, r.URL.Path, time.Since(start))
		return resp, err
	})
}

// loggedReader is the reader with its requests logged.
type loggedReader struct {
	r   *broker.MgmtReader
	log *requestLog
}

func (l loggedReader) GetJSON(ctx context.Context, path string, query url.Values, v any) error {
	start := time.Now()
	defer func() { l.log.add(http.MethodGet, path, time.Since(start)) }()
	return l.r.GetJSON(ctx, path, query, v)
}

func (l loggedReader) PostJSON(ctx context.Context, path string, body []byte, limit time.Duration) error {
	start := time.Now()
	defer func() { l.log.add(http.MethodPost, path, time.Since(start)) }()
	return l.r.PostJSON(ctx, path, body, limit)
}
