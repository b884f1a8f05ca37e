package registration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/fail"
)

// ProduceOptions configures a synthetic load of registration events.
type ProduceOptions struct {
	Count    int
	Rate     float64 // events per second; 0 = as fast as confirms allow
	VIPRatio float64 // share of VIP sign-ups, 0..1
	Window   int     // publishes in flight awaiting confirms (default 256)
	Dialer   Dialer
	Backoff  broker.Backoff
	// Blocked is how publishes wait while the broker blocks them (a memory
	// or disk alarm); when a block outlasts its Timeout, Produce gives up.
	Blocked broker.BlockedPolicy
	OnEvent func(RelayEvent)
}

// ProduceSummary is the outcome of Produce.
type ProduceSummary struct {
	Requested   int     `json:"requested"`
	Confirmed   int     `json:"confirmed"`
	VIP         int     `json:"vip"`
	Republished int     `json:"republished"`
	Reconnects  int     `json:"reconnects"`
	Seconds     float64 `json:"seconds"`
	Rate        float64 `json:"confirmed_per_second"`
}

// Produce publishes Count synthetic registration events with confirms and
// mandatory, republishing whatever was not positively confirmed (after a
// reconnect when the connection was lost). It waits while the broker
// blocks publishing, up to o.Blocked.Timeout (alarms are cluster-wide, so
// no other node would take the events either). It returns when all are
// confirmed, ctx ends, or a block outlasts its bound (a *broker.BlockedError);
// the summary says how far it got either way.
func Produce(ctx context.Context, o ProduceOptions) (ProduceSummary, error) {
	ctx = broker.WithBlockedPolicy(ctx, o.Blocked)
	if o.Window <= 0 {
		o.Window = 256
	}
	if o.Backoff.Initial == 0 {
		o.Backoff = broker.DefaultBackoff
	}
	if o.OnEvent == nil {
		o.OnEvent = func(RelayEvent) {}
	}
	p := &producer{o: o, pace: pacer(o.Rate)}
	p.sum.Requested = o.Count
	start := time.Now()
	err := p.run(ctx)
	p.sum.Seconds = time.Since(start).Seconds()
	if p.sum.Seconds > 0 {
		p.sum.Rate = float64(p.sum.Confirmed) / p.sum.Seconds
	}
	return p.sum, err
}

// producer is one Produce run: the events not yet confirmed and the
// summary so far.
type producer struct {
	o     ProduceOptions
	pace  func(context.Context) error
	sum   ProduceSummary
	retry []outgoing // not confirmed yet: published again first
	made  int
}

// pacer waits before each publish so that at most rate events a second go
// out (nil: no limit).
func pacer(rate float64) func(context.Context) error {
	if rate <= 0 {
		return nil
	}
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	return func(ctx context.Context) error {
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			return broker.Sleep(ctx, d)
		}
		return nil
	}
}

// run connects (again) until every event is confirmed or it gives up.
func (p *producer) run(ctx context.Context) error {
	o := p.o
	for p.sum.Confirmed < o.Count {
		conn, err := o.Dialer.DialRetry(ctx, o.Backoff, func(_ int, err error) {
			o.OnEvent(RelayEvent{Kind: "reconnecting", Err: err})
		})
		if err != nil {
			return fmt.Errorf("produce: %d of %d confirmed: %w", p.sum.Confirmed, o.Count, err)
		}
		if err := checkExchange(conn, Exchange); err != nil {
			_ = conn.Close()
			return err
		}
		err = errReconnect // no publisher on this connection: try another
		if pub, perr := broker.NewPublisher(conn, o.Window); perr == nil {
			o.OnEvent(RelayEvent{Kind: "connected"})
			err = p.session(ctx, pub)
			_ = pub.Close()
		}
		_ = conn.Close()
		if !errors.Is(err, errReconnect) {
			return err
		}
		if p.sum.Confirmed < o.Count {
			p.sum.Reconnects++
			o.Dialer.Failover()
		}
	}
	return nil
}

// errReconnect ends a session whose connection is lost (or could not
// publish): the run dials again.
var errReconnect = errors.New("reconnect")

// session publishes batches on one connection until every event is
// confirmed (nil), the connection is lost (errReconnect), or a failure
// no reconnect can fix.
func (p *producer) session(ctx context.Context, pub *broker.Publisher) error {
	o := p.o
	refusals := 0
	for p.sum.Confirmed < o.Count {
		batch := p.take()
		lost, refused, err := p.settle(ctx, batch, publishAll(ctx, pub, Exchange, batch, p.pace))
		switch {
		case err != nil:
			return err
		case lost != nil:
			o.OnEvent(RelayEvent{Kind: "disconnected", Err: lost})
			return errReconnect
		case refused != nil:
			o.OnEvent(RelayEvent{Kind: "failed", Err: refused})
			if refusals > 20 {
				return fmt.Errorf("produce: %d of %d confirmed; the broker keeps refusing: %w", p.sum.Confirmed, o.Count, refused)
			}
			_ = broker.Sleep(ctx, o.Backoff.Delay(refusals))
			refusals++
		default:
			refusals = 0
		}
	}
	return nil
}

// settle counts the confirmed events of batch and keeps the others for a
// retry. It says why some were not confirmed: the connection was lost, or
// the broker refused them; err is a failure that ends the run (a refused
// permission, a block past its bound, ctx ended).
func (p *producer) settle(ctx context.Context, batch []outgoing, errs []error) (lost, refused, err error) {
	var blocked error
	for i, perr := range errs {
		var be *broker.BlockedError
		switch {
		case perr == nil:
			p.sum.Confirmed++
		case broker.AccessRefused(perr):
			// A missing permission: reconnecting cannot fix it.
			return nil, nil, fail.Wrap(fail.Auth, fmt.Errorf("produce: %d of %d confirmed: %w", p.sum.Confirmed, p.o.Count, perr))
		default:
			p.retry = append(p.retry, batch[i])
			if errors.As(perr, &be) {
				blocked = perr
			} else if connectionLost(perr) || ctx.Err() != nil {
				lost = perr
			} else {
				refused = perr
			}
		}
	}
	if ctx.Err() != nil || blocked != nil {
		if blocked == nil {
			blocked = ctx.Err()
		}
		return nil, nil, fmt.Errorf("produce: %d of %d confirmed: %w", p.sum.Confirmed, p.o.Count, blocked)
	}
	return lost, refused, nil
}

// take returns the next batch: what was not confirmed first, then new
// events, up to the window.
func (p *producer) take() []outgoing {
	o := p.o
	batch := p.retry
	if len(batch) > o.Window {
		batch, p.retry = batch[:o.Window], batch[o.Window:]
	} else {
		p.retry = nil
	}
	p.sum.Republished += len(batch)
	for len(batch) < o.Window && p.made < o.Count {
		e := Event{EventID: NewID(), UserID: NewID(), VIP: rand.Float64() < o.VIPRatio, RegisteredAt: time.Now().UTC()}
		e.Name = fmt.Sprintf("user %d", p.made+1)
		e.Email = fmt.Sprintf("user%d-%s@example.com", p.made+1, e.UserID[:8])
		body, _ := json.Marshal(e)
		batch = append(batch, outgoing{key: e.RoutingKey(), msg: eventMessage(e.EventID, body)})
		if e.VIP {
			p.sum.VIP++
		}
		p.made++
	}
	return batch
}

// checkExchange fails fast, with a hint, when the exchange is missing:
// publishing to it would close the channel again and again.
func checkExchange(conn *amqp.Connection, exchange string) error {
	ch, err := conn.Channel()
	if err != nil {
		return nil // the session will find out and reconnect
	}
	err = ch.ExchangeDeclarePassive(exchange, "topic", true, false, false, false, nil)
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.NotFound {
		return fmt.Errorf("exchange %s does not exist: apply the registration topology first (`mqctl topology apply -f examples/registration/topology.yaml`)", exchange)
	}
	if err == nil {
		_ = ch.Close()
	}
	return nil
}
