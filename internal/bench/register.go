package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/broker"
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
	// Queue holds the published events; QueueDepth is its depth at the end
	// (no consumer runs: they wait there for the workers).
	Queue        string `json:"queue"`
	QueueDepth   int    `json:"queue_depth"`
	OutboxUnsent int    `json:"outbox_unsent"`
}

// RunRegister measures the sign-up path both ways under the same offered
// load (cfg.Rate sign-ups per second, at most cfg.Concurrency in flight;
// latency counts from the scheduled start, so time spent waiting for a free
// slot is included), first with every provider up, then with the e-mail
// provider down. It declares a topic exchange and a queue for the events
// and deletes them at the end.
func RunRegister(ctx context.Context, cfg RegisterConfig, dial DialFunc) (_ *RegisterResult, retErr error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = cfg.ProviderTimeout*3 + 10*time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	cfg.EmailLatencyMS = float64(cfg.EmailLatency) / float64(time.Millisecond)
	cfg.OtherLatencyMS = float64(cfg.OtherLatency) / float64(time.Millisecond)
	cfg.ProviderTimeoutMS = float64(cfg.ProviderTimeout) / float64(time.Millisecond)
	res := &RegisterResult{Config: cfg}
	for _, b := range LatencyBounds {
		res.BucketBoundsMS = append(res.BucketBoundsMS, float64(b)/float64(time.Millisecond))
	}

	conn, err := dial(ctx, "mqctl bench register")
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	suffix := randomHex(4)
	exchange := "mqctl-bench-register-" + suffix
	res.Queue = exchange
	if err := declareSignupTopology(ctx, conn, exchange, res.Queue, cfg); err != nil {
		return nil, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
		defer cancel()
		if err := deleteSignupTopology(dctx, conn, exchange, res.Queue, cfg.Timeout); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()

	dir, err := os.MkdirTemp("", "mqctl-bench-register-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory for the sign-up database: %w", err)
	}
	defer os.RemoveAll(dir)
	db, err := OpenSignupDB(dir)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	pub, err := broker.NewPublisher(conn, cfg.Concurrency)
	if err != nil {
		return nil, err
	}
	defer pub.Close()

	email := &Provider{Name: "e-mail", Latency: cfg.EmailLatency}
	points := &Provider{Name: "points", Latency: cfg.OtherLatency}
	coupon := &Provider{Name: "coupon", Latency: cfg.OtherLatency}
	mux := http.NewServeMux()
	mux.Handle("/sync/register", &SyncSignup{Providers: []*Provider{email, points, coupon}, Timeout: cfg.ProviderTimeout})
	mux.Handle("/async/register", &AsyncSignup{DB: db, Publisher: pub, Exchange: exchange, PublishTimeout: cfg.Timeout})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the sign-up API: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	client := &http.Client{
		Timeout:   cfg.RequestTimeout,
		Transport: &http.Transport{MaxIdleConns: cfg.Concurrency, MaxIdleConnsPerHost: cfg.Concurrency, IdleConnTimeout: 30 * time.Second},
	}
	defer client.CloseIdleConnections()
	base := "http://" + ln.Addr().String()

	run := func(design, condition string, n int) (Phase, error) {
		ph := signupLoad(ctx, client, base+"/"+design+"/register", design+"-"+condition, n, cfg)
		ph.Design = design
		return ph, ctx.Err()
	}
	for _, d := range []string{DesignSync, DesignAsync} {
		ph, err := run(d, "up", cfg.Requests)
		res.Up = append(res.Up, ph)
		if err != nil {
			return res, fmt.Errorf("benchmark interrupted: %w", err)
		}
	}
	if cfg.DownRequests > 0 {
		email.SetDown(true)
		for _, d := range []string{DesignSync, DesignAsync} {
			ph, err := run(d, "down", cfg.DownRequests)
			res.Down = append(res.Down, ph)
			if err != nil {
				return res, fmt.Errorf("benchmark interrupted: %w", err)
			}
		}
	}
	if a := res.Up[1].Latency.P99; a > 0 {
		res.P99Ratio = float64(res.Up[0].Latency.P99) / float64(a)
	}
	err = bounded(ctx, cfg.Timeout, "read the event queue's depth", func() error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		q, err := ch.QueueDeclarePassive(res.Queue, true, false, false, false, nil)
		res.QueueDepth = q.Messages
		return err
	})
	if err != nil {
		return res, err
	}
	if res.OutboxUnsent, err = OutboxUnsent(ctx, db); err != nil {
		return res, fmt.Errorf("count unsent outbox rows: %w", err)
	}
	return res, nil
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
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
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

func declareSignupTopology(ctx context.Context, conn *amqp.Connection, exchange, queue string, cfg RegisterConfig) error {
	return bounded(ctx, cfg.Timeout, "declare the benchmark's exchange and queue", func() error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
			return err
		}
		if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": cfg.QueueType}); err != nil {
			return err
		}
		return ch.QueueBind(queue, "user.registered.#", exchange, false, nil)
	})
}

func deleteSignupTopology(ctx context.Context, conn *amqp.Connection, exchange, queue string, timeout time.Duration) error {
	return bounded(ctx, timeout, "delete the benchmark's exchange and queue", func() error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
			return err
		}
		return ch.ExchangeDelete(exchange, false, false)
	})
}
