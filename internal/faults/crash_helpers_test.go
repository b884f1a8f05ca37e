package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/mqctltest"
	"github.com/mqctl/mqctl/internal/registration"
	"github.com/mqctl/mqctl/internal/registration/registrationtest"
)

// Helpers of the crash (kill -9), DLQ-kill and alarm scenarios.

// retryFlags are the consumers' flags for the policy startRegistrationNode
// applies (registrationtest.ShortRetry): short backoffs, so a retried
// message is back within a second.
var retryFlags = []string{"--max-attempts", "3", "--backoff", "200ms,400ms"}

// startRegistrationNode starts a private node with the management API and
// applies the registration topology (quorum work queues, delay queues,
// DLQs) to its default vhost the way users do, through
// examples/registration/topology.yaml and the management API.
func startRegistrationNode(t *testing.T) *brokertest.Node {
	t.Helper()
	node := brokertest.StartNodeWith(t, brokertest.NodeOptions{Management: true})
	registrationtest.Apply(t, registrationtest.Mgmt(t, node.MgmtURL()), "/")
	return node
}

// mqctlEnv points mqctl at the given nodes (MQCTL_URL, comma-separated).
func mqctlEnv(urls ...string) map[string]string {
	return map[string]string{"MQCTL_URL": strings.Join(urls, ",")}
}

// deadURL is an AMQP URL nobody answers on: a cluster node that is gone
// for good, for clients to fail over from.
func deadURL(t *testing.T) string {
	return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", brokertest.FreePort(t))
}

// seeded returns a random source for fault points, seeded from
// MQCTL_FAULTS_SEED when set (to replay a failure) and logged either way.
func seeded(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MQCTL_FAULTS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MQCTL_FAULTS_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("fault points seeded with %d (MQCTL_FAULTS_SEED=%d reproduces them)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// prober reads queue depths over one connection, re-dialling after the
// node went away: it polls while the broker is being broken, when a fresh
// connection per poll would pile up and an error is an expected answer.
type prober struct {
	url  string
	mu   sync.Mutex
	conn *amqp.Connection
}

func newProber(t *testing.T, url string) *prober {
	p := &prober{url: url}
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.conn != nil {
			_ = p.conn.Close()
		}
	})
	return p
}

// depth is the queue's ready count, or -1 when the node does not answer.
func (p *prober) depth(queue string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil || p.conn.IsClosed() {
		c, err := amqp.DialConfig(p.url, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
		if err != nil {
			return -1
		}
		p.conn = c
	}
	ch, err := p.conn.Channel()
	if err != nil {
		_ = p.conn.Close()
		return -1
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		return -1
	}
	return q.Messages
}

// tally counts ids: how many distinct, how many copies beyond the first.
func tally(ids []string) (count map[string]int, distinct, dups int) {
	count = map[string]int{}
	for _, id := range ids {
		count[id]++
	}
	return count, len(count), len(ids) - len(count)
}

var listening = regexp.MustCompile(`listening on (http://[0-9.:]+)`)

// startServe runs `mqctl serve` on a free port and returns its base URL.
func startServe(t *testing.T, env map[string]string, db string, extra ...string) (*mqctltest.Proc, string) {
	t.Helper()
	p := mqctltest.Start(t, env, append([]string{"serve", "--listen", "127.0.0.1:0", "--db", db}, extra...)...)
	var base string
	brokertest.WaitFor(t, "serve listening", 30*time.Second, func() bool {
		if m := listening.FindStringSubmatch(p.Stderr()); m != nil {
			base = m[1]
		}
		return base != ""
	})
	return p, base
}

// startConsumers runs `mqctl consume` for every side effect, each with
// its own ledger database in dir.
func startConsumers(t *testing.T, env map[string]string, dir string) map[string]*mqctltest.Proc {
	t.Helper()
	ps := map[string]*mqctltest.Proc{}
	for _, e := range registration.SideEffects {
		args := append([]string{"consume", e, "--db", effectsDB(dir, e), "--prefetch", "20", "--latency", "2ms", "-o", "json"}, retryFlags...)
		ps[e] = mqctltest.Start(t, env, args...)
	}
	return ps
}

func effectsDB(dir, effect string) string { return filepath.Join(dir, "effects-"+effect+".db") }

// signUp is one accepted registration.
type signUp struct {
	EventID string
	VIP     bool
}

// signUpLoad posts registrations to a serve API at a steady pace until
// stopped, recording every one it got a 201 for; anything else is an
// error (sign-up must not depend on the broker).
type signUpLoad struct {
	mu       sync.Mutex
	accepted []signUp
	refused  []string
	slowest  time.Duration
	stop     chan struct{}
	done     chan struct{}
}

func startSignUps(base string, every time.Duration) *signUpLoad {
	l := &signUpLoad{stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			vip := i%4 == 0
			body := fmt.Sprintf(`{"name":"user %d","email":"user%d-%d@example.com","vip":%v}`, i, i, time.Now().UnixNano(), vip)
			start := time.Now()
			resp, err := client.Post(base+"/register", "application/json", bytes.NewBufferString(body))
			took := time.Since(start)
			l.mu.Lock()
			l.slowest = max(l.slowest, took)
			switch {
			case err != nil:
				l.refused = append(l.refused, err.Error())
			case resp.StatusCode != http.StatusCreated:
				l.refused = append(l.refused, resp.Status)
			default:
				var out registration.RegisterResponse
				if json.NewDecoder(resp.Body).Decode(&out) == nil {
					l.accepted = append(l.accepted, signUp{EventID: out.EventID, VIP: vip})
				}
			}
			l.mu.Unlock()
			if resp != nil {
				resp.Body.Close()
			}
		}
	}()
	return l
}

// finish stops the load and returns what was accepted.
func (l *signUpLoad) finish(t *testing.T) []signUp {
	t.Helper()
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.refused {
		t.Errorf("a sign-up was not accepted: %s", r)
	}
	t.Logf("%d sign-ups accepted, slowest %s", len(l.accepted), l.slowest.Round(time.Millisecond))
	return l.accepted
}
