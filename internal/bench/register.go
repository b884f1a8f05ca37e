package bench

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/ledger"
	"github.com/mqctl/mqctl/internal/registration"
)

// Designs compared by the register benchmark.
const (
	DesignSync  = "sync"
	DesignAsync = "async"
)

// LatencyBounds are the upper edges of the bar chart's latency buckets.
var LatencyBounds = []time.Duration{
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond,
	20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second,
}

// RegisterConfig is one sign-up benchmark.
type RegisterConfig struct {
	Requests     int     `json:"requests"`      // sign-ups per design, providers up
	DownRequests int     `json:"down_requests"` // sign-ups per design, e-mail provider down
	Rate         float64 `json:"rate"`          // sign-ups started per second (same for both designs)
	Concurrency  int     `json:"concurrency"`   // most sign-ups in flight at once

	EmailLatency    time.Duration `json:"-"`
	OtherLatency    time.Duration `json:"-"` // points and coupon providers
	ProviderTimeout time.Duration `json:"-"` // the synchronous handler's bound on each provider call
	RequestTimeout  time.Duration `json:"-"` // the client's bound on one sign-up
	QueueType       string        `json:"queue_type"`
	Timeout         time.Duration `json:"-"` // bound on each broker call

	EmailLatencyMS    float64 `json:"email_latency_ms"`
	OtherLatencyMS    float64 `json:"other_latency_ms"`
	ProviderTimeoutMS float64 `json:"provider_timeout_ms"`
}

// Validate checks the settings; the error names the flag.
func (c RegisterConfig) Validate() error {
	switch {
	case c.Requests < 1:
		return fmt.Errorf("--requests %d: want at least 1", c.Requests)
	case c.DownRequests < 0:
		return fmt.Errorf("--down-requests %d: want 0 or more", c.DownRequests)
	case c.Rate <= 0:
		return fmt.Errorf("--rate %g: want more than 0", c.Rate)
	case c.Concurrency < 1:
		return fmt.Errorf("--concurrency %d: want at least 1", c.Concurrency)
	case c.EmailLatency < 0 || c.OtherLatency < 0:
		return errors.New("--provider-latency and --other-latency must not be negative")
	case c.ProviderTimeout <= 0:
		return fmt.Errorf("--provider-timeout %s: want more than 0", c.ProviderTimeout)
	case c.QueueType != QueueClassic && c.QueueType != QueueQuorum:
		return fmt.Errorf("--queue-type %q: want classic or quorum", c.QueueType)
	}
	return nil
}

// Phase is one design under one condition.
type Phase struct {
	Design     string         `json:"design"`
	Requests   int            `json:"requests"`
	Errors     int            `json:"errors"`
	ErrorRate  float64        `json:"error_rate"`
	Seconds    float64        `json:"seconds"`
	Throughput float64        `json:"throughput_per_sec"` // successful sign-ups per second
	Latency    LatencySummary `json:"latency"`
	Buckets    []int64        `json:"buckets"` // counts per LatencyBounds bucket, the last one above them
	FirstError string         `json:"first_error,omitempty"`
	hist       *Histogram
}

// RegisterResult compares the two designs.
type RegisterResult struct {
	Config RegisterConfig `json:"config"`
	// BucketBoundsMS are the upper edges of Phase.Buckets in milliseconds.
	BucketBoundsMS []float64 `json:"bucket_bounds_ms"`
	Up             []Phase   `json:"providers_up"`  // sync, async
	Down           []Phase   `json:"provider_down"` // sync, async; empty when DownRequests is 0
	// P99Ratio is the synchronous p99 over the asynchronous p99, providers up.
	P99Ratio float64 `json:"p99_ratio"`
	// Queue holds the published events (the exchange they are published
	// to has the same name); QueueDepth is its depth at the end (no
	// consumer runs: they wait there for the workers).
	Queue      string `json:"queue"`
	QueueDepth int    `json:"queue_depth"`
	// OutboxUnsent counts the outbox rows the relay had not published when
	// the benchmark stopped waiting for it.
	OutboxUnsent int `json:"outbox_unsent"`
}

// RunRegister measures the sign-up path both ways under the same offered
// load (cfg.Rate sign-ups per second, at most cfg.Concurrency in flight;
// latency counts from the scheduled start, so time spent waiting for a free
// slot is included), first with every provider up, then with the e-mail
// provider down. The asynchronous design is the application `mqctl serve`
// ships (registration.Stack: user and outbox row in one SQLite
// transaction, 201, and the relay publishing with confirms behind it) with
// its relay dialling through relay. It declares a topic exchange and a
// queue for the events (the relay publishes there instead of user.events),
// waits up to cfg.Timeout for the relay to publish the whole outbox, and
// deletes both at the end.
func RunRegister(ctx context.Context, cfg RegisterConfig, dial DialFunc, relay registration.Dialer) (_ *RegisterResult, retErr error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	res := &RegisterResult{Config: cfg}
	for _, b := range LatencyBounds {
		res.BucketBoundsMS = append(res.BucketBoundsMS, float64(b)/float64(time.Millisecond))
	}
	conn, err := dial(ctx, "mqctl bench register")
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	// The exchange and the queue share the name.
	res.Queue = "mqctl-bench-register-" + randomHex(4)
	if err := declareSignupTopology(ctx, conn, res.Queue, cfg); err != nil {
		return nil, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
		defer cancel()
		retErr = errors.Join(retErr, deleteSignupTopology(dctx, conn, res.Queue, cfg.Timeout))
	}()
	apps, err := startSignupApps(ctx, cfg, res.Queue, relay)
	if err != nil {
		return nil, err
	}
	defer func() { retErr = errors.Join(retErr, apps.stop()) }()
	if err := apps.runPhases(ctx, res); err != nil {
		return res, fmt.Errorf("benchmark interrupted: %w", err)
	}
	if a := res.Up[1].Latency.P99; a > 0 {
		res.P99Ratio = float64(res.Up[0].Latency.P99) / float64(a)
	}
	return res, apps.settle(ctx, conn, res)
}

func (c *RegisterConfig) defaults() {
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = c.ProviderTimeout*3 + 10*time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	c.EmailLatencyMS = float64(c.EmailLatency) / float64(time.Millisecond)
	c.OtherLatencyMS = float64(c.OtherLatency) / float64(time.Millisecond)
	c.ProviderTimeoutMS = float64(c.ProviderTimeout) / float64(time.Millisecond)
}

// signupApps are the two designs under test, each served in-process over
// HTTP, and the client that signs users up.
type signupApps struct {
	cfg      RegisterConfig
	email    *Provider // the synchronous design's, broken for the down case
	syncSrv  *http.Server
	syncURL  string
	syncDone chan struct{}
	stack    *registration.Stack
	db       *sql.DB
	dir      string
	client   *http.Client
}

// startSignupApps serves the synchronous design and starts the shipped
// stack, whose relay publishes to exchange, on a database in a temporary
// directory.
func startSignupApps(ctx context.Context, cfg RegisterConfig, exchange string, relay registration.Dialer) (_ *signupApps, err error) {
	a := &signupApps{cfg: cfg, email: &Provider{Name: "e-mail", Latency: cfg.EmailLatency}}
	if a.dir, err = os.MkdirTemp("", "mqctl-bench-register-"); err != nil {
		return nil, fmt.Errorf("temporary directory for the sign-up database: %w", err)
	}
	defer func() {
		if err != nil {
			_ = a.stop()
		}
	}()
	if a.db, err = ledger.Open(filepath.Join(a.dir, "registration.db")); err != nil {
		return nil, err
	}
	if a.stack, err = registration.StartStack(ctx, registration.StackConfig{
		DB: a.db, Listen: "127.0.0.1:0", Relay: registration.Relay{Dialer: relay, Exchange: exchange},
	}); err != nil {
		return nil, fmt.Errorf("start the sign-up API: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the synchronous sign-up API: %w", err)
	}
	providers := []*Provider{a.email, {Name: "points", Latency: cfg.OtherLatency}, {Name: "coupon", Latency: cfg.OtherLatency}}
	a.syncSrv = &http.Server{Handler: &SyncSignup{Providers: providers, Timeout: cfg.ProviderTimeout}, ReadHeaderTimeout: 5 * time.Second}
	a.syncURL = "http://" + ln.Addr().String()
	a.syncDone = make(chan struct{})
	go func() {
		defer close(a.syncDone)
		_ = a.syncSrv.Serve(ln)
	}()
	a.client = &http.Client{
		Timeout:   cfg.RequestTimeout,
		Transport: &http.Transport{MaxIdleConns: cfg.Concurrency, MaxIdleConnsPerHost: cfg.Concurrency, IdleConnTimeout: 30 * time.Second},
	}
	return a, nil
}

// runPhases runs each design with every provider up, then (unless
// DownRequests is 0) with the e-mail provider down. It ends early, with
// ctx's error, when ctx ends.
func (a *signupApps) runPhases(ctx context.Context, res *RegisterResult) error {
	run := func(condition string, n int) ([]Phase, error) {
		var phases []Phase
		for _, design := range []string{DesignSync, DesignAsync} {
			url := a.syncURL
			if design == DesignAsync {
				url = a.stack.URL()
			}
			ph := signupLoad(ctx, a.client, url+"/register", design+"-"+condition, n, a.cfg)
			ph.Design = design
			phases = append(phases, ph)
			if ctx.Err() != nil {
				return phases, ctx.Err()
			}
		}
		return phases, nil
	}
	var err error
	if res.Up, err = run("up", a.cfg.Requests); err != nil || a.cfg.DownRequests == 0 {
		return err
	}
	a.email.SetDown(true)
	res.Down, err = run("down", a.cfg.DownRequests)
	return err
}

// settle waits (up to cfg.Timeout) for the relay to publish the outbox,
// then reads the event queue's depth and what is left in the outbox.
func (a *signupApps) settle(ctx context.Context, conn *amqp.Connection, res *RegisterResult) error {
	dctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	// Rows the relay could not publish in time are reported, not an error.
	_ = a.stack.Drain(dctx)
	if ctx.Err() != nil {
		return fmt.Errorf("benchmark interrupted: %w", ctx.Err())
	}
	err := bounded(ctx, a.cfg.Timeout, "read the event queue's depth", func() (err error) {
		res.QueueDepth, _, err = broker.QueueCountsOn(conn, res.Queue)
		return err
	})
	if err != nil {
		return err
	}
	st, err := a.stack.Store.Stats(ctx)
	if err != nil {
		return fmt.Errorf("count unsent outbox rows: %w", err)
	}
	res.OutboxUnsent = st.Pending
	return nil
}

// stop shuts both designs down and removes the database; it returns why
// the stack failed, if it did.
func (a *signupApps) stop() error {
	var err error
	if a.client != nil {
		a.client.CloseIdleConnections()
	}
	if a.syncSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = a.syncSrv.Shutdown(sctx)
		cancel()
		<-a.syncDone
	}
	if a.stack != nil {
		err = a.stack.Stop()
	}
	if a.db != nil {
		_ = a.db.Close()
	}
	_ = os.RemoveAll(a.dir)
	return err
}

// signupLoad starts n sign-ups at cfg.Rate per second, at most
// cfg.Concurrency at once, and measures each from its scheduled start.
func signupLoad(ctx context.Context, client *http.Client, url, tag string, n int, cfg RegisterConfig) Phase {
	ph := Phase{Requests: n, hist: NewHistogram()}
	slots := make(chan struct{}, cfg.Concurrency)
	var mu sync.Mutex
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			_ = broker.Sleep(ctx, d)
		}
		if ctx.Err() != nil {
			ph.Requests = i
			break
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			ph.Requests = i
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			body := fmt.Sprintf(`{"name":"user %d","email":"%s-%d-%s@example.com","vip":%t}`, i, tag, i, randomHex(3), i%10 == 0)
			err := postSignup(ctx, client, url, body)
			took := time.Since(due)
			mu.Lock()
			defer mu.Unlock()
			ph.hist.Record(took)
			if err != nil {
				ph.Errors++
				if ph.FirstError == "" {
					ph.FirstError = err.Error()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	ph.Seconds = elapsed.Seconds()
	if ph.Requests > 0 {
		ph.ErrorRate = float64(ph.Errors) / float64(ph.Requests)
	}
	ph.Throughput = float64(ph.Requests-ph.Errors) / elapsed.Seconds()
	ph.Latency = ph.hist.Summary()
	ph.Buckets = ph.hist.Buckets(LatencyBounds)
	return ph
}

func postSignup(ctx context.Context, client *http.Client, url, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// declareSignupTopology declares the benchmark's topic exchange and a queue
// of the same name bound to every registration event.
func declareSignupTopology(ctx context.Context, conn *amqp.Connection, name string, cfg RegisterConfig) error {
	return bounded(ctx, cfg.Timeout, "declare the benchmark's exchange and queue", func() error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		if err := ch.ExchangeDeclare(name, "topic", true, false, false, false, nil); err != nil {
			return err
		}
		if _, err := ch.QueueDeclare(name, true, false, false, false, amqp.Table{"x-queue-type": cfg.QueueType}); err != nil {
			return err
		}
		return ch.QueueBind(name, registration.KeyRegistered+".#", name, false, nil)
	})
}

func deleteSignupTopology(ctx context.Context, conn *amqp.Connection, name string, timeout time.Duration) error {
	return bounded(ctx, timeout, "delete the benchmark's exchange and queue", func() error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		if _, err := ch.QueueDelete(name, false, false, false); err != nil {
			return err
		}
		return ch.ExchangeDelete(name, false, false)
	})
}
