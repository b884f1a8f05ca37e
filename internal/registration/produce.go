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
func Produce(ctx context.Context, o ProduceOptions) (sum ProduceSummary, err error) {
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
	sum.Requested = o.Count
	start := time.Now()
	defer func() {
		sum.Seconds = time.Since(start).Seconds()
		if sum.Seconds > 0 {
			sum.Rate = float64(sum.Confirmed) / sum.Seconds
		}
	}()

	var pace func(context.Context) error
	if o.Rate > 0 {
		interval := time.Duration(float64(time.Second) / o.Rate)
		next := time.Now()
		pace = func(ctx context.Context) error {
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				return sleep(ctx, d)
			}
			return nil
		}
	}
	var retry []outgoing // not confirmed yet: published again first
	made := 0
	take := func() []outgoing {
		batch := retry
		if len(batch) > o.Window {
			batch, retry = batch[:o.Window], batch[o.Window:]
		} else {
			retry = nil
		}
		sum.Republished += len(batch)
		for len(batch) < o.Window && made < o.Count {
			e := Event{EventID: NewID(), UserID: NewID(), VIP: rand.Float64() < o.VIPRatio, RegisteredAt: time.Now().UTC()}
			e.Name = fmt.Sprintf("user %d", made+1)
			e.Email = fmt.Sprintf("user%d-%s@example.com", made+1, e.UserID[:8])
			body, _ := json.Marshal(e)
			batch = append(batch, outgoing{key: e.RoutingKey(), msg: eventMessage(e.EventID, body)})
			if e.VIP {
				sum.VIP++
			}
			made++
		}
		return batch
	}

	refusals := 0
	for sum.Confirmed < o.Count {
		conn, err := o.Dialer.DialRetry(ctx, o.Backoff, func(_ int, err error) {
			o.OnEvent(RelayEvent{Kind: "reconnecting", Err: err})
		})
		if err != nil {
			return sum, fmt.Errorf("produce: %d of %d confirmed: %w", sum.Confirmed, o.Count, err)
		}
		if err := checkExchange(conn); err != nil {
			_ = conn.Close()
			return sum, err
		}
		pub, err := broker.NewPublisher(conn, o.Window)
		if err != nil {
			_ = conn.Close()
			o.Dialer.Failover()
			sum.Reconnects++
			continue
		}
		o.OnEvent(RelayEvent{Kind: "connected"})
		for sum.Confirmed < o.Count {
			batch := take()
			errs := publishAll(ctx, pub, batch, pace)
			var lost, refused, blocked error
			for i, perr := range errs {
				var be *broker.BlockedError
				switch {
				case perr == nil:
					sum.Confirmed++
				case broker.AccessRefused(perr):
					// A missing permission: reconnecting cannot fix it.
					_ = pub.Close()
					_ = conn.Close()
					return sum, fail.Wrap(fail.Auth, fmt.Errorf("produce: %d of %d confirmed: %w", sum.Confirmed, o.Count, perr))
				default:
					retry = append(retry, batch[i])
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
				_ = pub.Close()
				_ = conn.Close()
				if blocked == nil {
					blocked = ctx.Err()
				}
				return sum, fmt.Errorf("produce: %d of %d confirmed: %w", sum.Confirmed, o.Count, blocked)
			}
			if lost != nil {
				o.OnEvent(RelayEvent{Kind: "disconnected", Err: lost})
				break
			}
			if refused != nil {
				o.OnEvent(RelayEvent{Kind: "failed", Err: refused})
				if refusals > 20 {
					_ = pub.Close()
					_ = conn.Close()
					return sum, fmt.Errorf("produce: %d of %d confirmed; the broker keeps refusing: %w", sum.Confirmed, o.Count, refused)
				}
				_ = sleep(ctx, o.Backoff.Delay(refusals))
				refusals++
				continue
			}
			refusals = 0
		}
		_ = pub.Close()
		_ = conn.Close()
		if sum.Confirmed < o.Count {
			sum.Reconnects++
			o.Dialer.Failover()
		}
	}
	return sum, nil
}

// checkExchange fails fast, with a hint, when the exchange is missing:
// publishing to it would close the channel again and again.
func checkExchange(conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return nil // the session will find out and reconnect
	}
	err = ch.ExchangeDeclarePassive(Exchange, "topic", true, false, false, false, nil)
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.NotFound {
		return fmt.Errorf("exchange %s does not exist: apply the registration topology first (`mqctl topology apply -f examples/registration/topology.yaml`)", Exchange)
	}
	if err == nil {
		_ = ch.Close()
	}
	return nil
}
