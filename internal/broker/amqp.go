// Package broker connects to RabbitMQ: AMQP connections with fail-over
// between cluster nodes, and the management HTTP API, both with bounded
// timeouts, TLS, and errors that never contain a password.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/buildinfo"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/fail"
)

// Dialer opens AMQP connections to the first node that answers, starting
// with the node that last worked; Failover moves the start to the next node
// so a reconnect after a node loss tries the others first.
type Dialer struct {
	urls     []string
	tls      *tls.Config
	timeout  time.Duration
	name     string
	redactor *config.Redactor

	mu        sync.Mutex
	start     int
	node      int
	connected bool // a Dial has succeeded at least once

	startupLimit time.Duration
}

// NewDialer prepares a dialer for the settings; name becomes the
// connection_name shown in the management UI.
func NewDialer(s config.Settings, name string) (*Dialer, error) {
	d := &Dialer{urls: s.AMQPURLs, timeout: s.Timeout, name: name, redactor: s.Redactor}
	if d.timeout <= 0 {
		d.timeout = config.DefaultTimeout
	}
	for _, u := range s.AMQPURLs {
		if strings.HasPrefix(u, "amqps://") {
			c, err := TLSConfig(s.TLS)
			if err != nil {
				return nil, err
			}
			d.tls = c
			break
		}
	}
	return d, nil
}

// Dial connects to the first node that answers, each node's attempt
// bounded by the timeout (so a frozen node costs one timeout, then the
// next node is tried). The error lists every node tried, passwords masked.
// Callers need no deadline of their own.
func (d *Dialer) Dial(ctx context.Context) (*amqp.Connection, error) {
	d.mu.Lock()
	start := d.start
	d.mu.Unlock()
	var errs []string
	var last error
	certOnly := true // every node refused on certificates: retrying cannot help
	for i := range d.urls {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		idx := (start + i) % len(d.urls)
		conn, err := d.dialOne(ctx, d.urls[idx])
		if err == nil {
			d.mu.Lock()
			d.start, d.node, d.connected = idx, idx, true
			d.mu.Unlock()
			return conn, nil
		}
		last = err
		errs = append(errs, err.Error())
		certOnly = certOnly && errors.Is(err, ErrCertificate)
		if k, _ := fail.KindOf(err); k == fail.Auth {
			// Wrong credentials are wrong on every node.
			return nil, err
		}
	}
	if len(d.urls) == 1 {
		return nil, last
	}
	msg := "no node answered: " + strings.Join(errs, "; ")
	if certOnly {
		return nil, &certError{msg}
	}
	return nil, errors.New(msg)
}

func (d *Dialer) dialOne(ctx context.Context, url string) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(d.name)
	props["product"] = "mqctl"
	props["version"] = buildinfo.Get().Version
	cfg := amqp.Config{
		Heartbeat:       10 * time.Second,
		Locale:          "en_US",
		TLSClientConfig: d.tls,
		Properties:      props,
	}
	// Under amqp091 (and under TLS), so a Publisher can send a batch of
	// publishes in one write (see coalescingConn).
	var cc *coalescingConn
	dial := amqp.DefaultDial(d.timeout)
	cfg.Dial = func(network, addr string) (net.Conn, error) {
		conn, err := dial(network, addr)
		if err != nil {
			return nil, err
		}
		cc = &coalescingConn{Conn: conn}
		return cc, nil
	}
	ch := make(chan dialResult, 1)
	go func() {
		c, err := amqp.DialConfig(url, cfg)
		if err == nil {
			registerCoalescer(c, cc)
		}
		ch <- dialResult{c, err}
	}()
	attempt := time.NewTimer(d.timeout)
	defer attempt.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, d.classify(url, r.err)
		}
		return r.conn, nil
	case <-ctx.Done():
		abandon(ch)
		return nil, ctx.Err()
	case <-attempt.C:
		// DefaultDial bounds the TCP connect and the handshake one
		// timeout each; the attempt as a whole gets one.
		abandon(ch)
		return nil, d.timedOut(url)
	}
}

type dialResult struct {
	conn *amqp.Connection
	err  error
}

// abandon closes whatever connection a dial given up on still yields.
func abandon(ch <-chan dialResult) {
	go func() {
		if r := <-ch; r.conn != nil {
			_ = r.conn.Close()
		}
	}()
}

// timedOut is the error for a node that did not complete the AMQP
// handshake within the timeout: a port that accepts connections and says
// nothing (a frozen or overloaded node, a proxy, the wrong service), or a
// host that drops the connection attempt.
func (d *Dialer) timedOut(url string) error {
	return fmt.Errorf("connect to %s: no AMQP answer within %s; check that --url names the AMQP port (5672, 5671 for amqps) of a running node and that the network lets it through, or raise --timeout",
		d.redactor.Redact(url), d.timeout)
}

func (d *Dialer) classify(url string, err error) error {
	where := d.redactor.Redact(url)
	msg := d.redactor.Redact(err.Error())
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.NotAllowed && strings.Contains(ae.Reason, "not found") {
		vhost := "/"
		if u, err := amqp.ParseURI(url); err == nil {
			vhost = u.Vhost
		}
		return VhostMissing(vhost, hostOf(where))
	}
	if errors.As(err, &ae) && ae.Code == amqp.NotAllowed {
		return fail.Authf("connect to %s: %s; check that the user may use the vhost in the URL path (`rabbitmqctl set_permissions`)", where, msg)
	}
	if errors.As(err, &ae) && ae.Code == amqp.AccessRefused {
		if strings.Contains(ae.Reason, "vhost") {
			return fail.Authf("connect to %s: %s; check that the vhost exists and the user has permissions on it", where, msg)
		}
		return fail.Authf("connect to %s: %s; check the user name and password (MQCTL_PASSWORD)", where, msg)
	}
	if errors.As(err, &ae) && ae.Code == amqp.FrameError && TLSAdvice(err) == "" && !strings.Contains(ae.Reason, "tls:") {
		// 501 before the handshake: the peer closed on, or answered, the
		// AMQP protocol header with something that is not AMQP 0-9-1 (an
		// HTTP server such as the management API, an AMQP 1.0-only
		// listener, a proxy).
		return fmt.Errorf("connect to %s: the peer does not speak AMQP 0-9-1 (%s); check that --url names the AMQP port (5672, 5671 for amqps), not the management API (15672) or another service", where, ae.Reason)
	}
	if advice := TLSAdvice(err); advice != "" {
		msg := fmt.Sprintf("connect to %s: %s; %s", where, msg, advice)
		if permanentTLS(err) {
			return &certError{msg}
		}
		return errors.New(msg)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || strings.Contains(msg, "i/o timeout") {
		// amqp091 reports a handshake read timeout as a frame error
		// carrying only the text.
		return d.timedOut(url)
	}
	return fmt.Errorf("connect to %s: %s; is RabbitMQ running there? (`make broker` starts a local node)", where, msg)
}

// nodes lists the nodes the dialer tries, passwords masked.
func (d *Dialer) nodes() string {
	out := make([]string, len(d.urls))
	for i, u := range d.urls {
		out[i] = hostOf(d.redactor.Redact(u))
	}
	return strings.Join(out, ", ")
}

// hostOf is scheme://host:port of a (redacted) URL, for naming a broker.
func hostOf(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if j := strings.IndexByte(u[i+3:], '/'); j >= 0 {
			return u[:i+3+j]
		}
	}
	return u
}

// Node returns the URL of the node last connected to, password masked.
func (d *Dialer) Node() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.redactor.Redact(d.urls[d.node])
}

// Failover makes the next Dial start with the node after the current one.
func (d *Dialer) Failover() {
	d.mu.Lock()
	d.start = (d.node + 1) % len(d.urls)
	d.mu.Unlock()
}

// Backoff is an exponential reconnect delay with full jitter.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

// DefaultBackoff suits reconnects to a local or LAN broker.
var DefaultBackoff = Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// Delay returns the wait before attempt n (0-based).
func (b Backoff) Delay(n int) time.Duration {
	d := b.Initial
	for i := 0; i < n && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	// Jitter keeps a fleet of clients from reconnecting in lockstep.
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// Sleep waits d, or less when ctx is done first; it returns ctx's error
// then. Every wait of mqctl's loops (backoffs, pacing, polls) goes through
// it, so a Ctrl-C never waits out a timer.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// LimitStartup makes DialRetry give up, instead of retrying, when no
// connection has ever been made and within has passed since its first
// attempt: a command started against an unreachable broker says so and
// exits, while one that lost a working connection keeps reconnecting.
func (d *Dialer) LimitStartup(within time.Duration) {
	d.mu.Lock()
	d.startupLimit = within
	d.mu.Unlock()
}

// DialRetry dials until it succeeds, the context ends, the error is an
// authentication failure or a refused certificate (ErrCertificate), which
// retrying cannot fix, or the startup limit (LimitStartup) passes. Each
// failed round over all nodes moves the start node and waits per the
// backoff. onRetry, when set, hears about each failed round.
func (d *Dialer) DialRetry(ctx context.Context, b Backoff, onRetry func(attempt int, err error)) (*amqp.Connection, error) {
	began := time.Now()
	for attempt := 0; ; attempt++ {
		conn, err := d.Dial(ctx)
		if err == nil {
			return conn, nil
		}
		if k, _ := fail.KindOf(err); k == fail.Auth || k == fail.Usage || errors.Is(err, ErrCertificate) || ctx.Err() != nil {
			return nil, err
		}
		d.mu.Lock()
		limit, connected := d.startupLimit, d.connected
		d.mu.Unlock()
		wait := b.Delay(attempt)
		if limit > 0 && !connected {
			left := limit - time.Since(began)
			if left <= 0 {
				return nil, fmt.Errorf("no connection within %s to %s (last error: %w)", limit, d.nodes(), err)
			}
			wait = min(wait, left)
		}
		if onRetry != nil {
			onRetry(attempt, err)
		}
		d.Failover()
		if err := Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// ServerVersion reads the broker version a connection announced.
func ServerVersion(c *amqp.Connection) string {
	if v, ok := c.Properties["version"].(string); ok {
		return v
	}
	return ""
}
