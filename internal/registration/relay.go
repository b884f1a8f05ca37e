package registration

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/broker"
)

// RelayEvent is something the relay did, for logs.
type RelayEvent struct {
	Kind  string // "connected", "published", "failed", "disconnected", "reconnecting"
	Count int
	Err   error
}

// Relay publishes the outbox: each row to its exchange with its routing key,
// persistent, confirmed and mandatory, and marks it sent only after a
// positive confirm. Returned or nacked rows are retried with backoff; a
// lost connection is re-dialled with backoff, failing over between nodes.
// A row may be published twice (confirm lost with the connection): the
// consumers' ledger makes that harmless.
type Relay struct {
	Store  *Store
	Dialer Dialer
	// Exchange is where rows go (default Exchange, user.events; the
	// register benchmark publishes to an exchange of its own).
	Exchange string
	Backoff  broker.Backoff // reconnects and retries of refused rows
	Batch    int            // rows per round (default 100)
	Poll     time.Duration  // look at the outbox at least this often (default 1s)
	// Blocked is how publishes wait while the broker blocks them (a memory
	// or disk alarm). A relay usually waits as long as the block lasts
	// (Timeout 0): registrations keep going into the outbox meanwhile.
	Blocked broker.BlockedPolicy
	OnEvent func(RelayEvent)
}

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	ctx = broker.WithBlockedPolicy(ctx, r.Blocked)
	if r.Exchange == "" {
		r.Exchange = Exchange
	}
	if r.Batch <= 0 {
		r.Batch = 100
	}
	if r.Poll <= 0 {
		r.Poll = time.Second
	}
	if r.Backoff.Initial == 0 {
		r.Backoff = broker.DefaultBackoff
	}
	if r.OnEvent == nil {
		r.OnEvent = func(RelayEvent) {}
	}
	failures := 0
	for {
		conn, err := r.Dialer.DialRetry(ctx, r.Backoff, func(_ int, err error) {
			r.OnEvent(RelayEvent{Kind: "reconnecting", Err: err})
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		progressed, err := r.session(ctx, conn)
		_ = conn.Close()
		if ctx.Err() != nil {
			return nil
		}
		if progressed {
			failures = 0
		}
		r.OnEvent(RelayEvent{Kind: "disconnected", Err: err})
		r.Dialer.Failover()
		if broker.Sleep(ctx, r.Backoff.Delay(failures)) != nil {
			return nil
		}
		failures++
	}
}

func (r *Relay) session(ctx context.Context, conn *amqp.Connection) (progressed bool, err error) {
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	if err := checkExchange(conn, r.Exchange); err != nil {
		// Keep trying: the topology may be applied while we wait.
		return false, err
	}
	pub, err := broker.NewPublisher(conn, r.Batch)
	if err != nil {
		return false, err
	}
	defer pub.Close()
	r.OnEvent(RelayEvent{Kind: "connected"})
	tick := time.NewTicker(r.Poll)
	defer tick.Stop()
	refusals := 0
	for {
		rows, err := r.Store.Pending(ctx, r.Batch)
		if err != nil {
			if ctx.Err() != nil {
				return progressed, nil
			}
			// The database is local: a failure here is worth a pause, not a reconnect.
			r.OnEvent(RelayEvent{Kind: "failed", Err: err})
			if broker.Sleep(ctx, time.Second) != nil {
				return progressed, nil
			}
			continue
		}
		if len(rows) == 0 {
			select {
			case <-ctx.Done():
				return progressed, nil
			case e := <-closed:
				return progressed, closeErr(e)
			case <-r.Store.Wake():
			case <-tick.C:
			}
			continue
		}
		msgs := make([]outgoing, len(rows))
		for i, row := range rows {
			msgs[i] = outgoing{key: row.RoutingKey, msg: eventMessage(row.EventID, row.Body)}
		}
		errs := publishAll(ctx, pub, r.Exchange, msgs, nil)
		var sent []int64
		var lost, refused error
		for i, perr := range errs {
			switch {
			case perr == nil:
				sent = append(sent, rows[i].Seq)
			case connectionLost(perr) || ctx.Err() != nil:
				lost = perr
			default:
				refused = perr
				_ = r.Store.MarkFailed(ctx, rows[i].Seq, perr)
			}
		}
		// Even when ctx ended: what the broker confirmed is recorded.
		if err := r.Store.MarkSent(context.WithoutCancel(ctx), sent); err != nil {
			r.OnEvent(RelayEvent{Kind: "failed", Err: err})
		}
		if len(sent) > 0 {
			progressed = true
			r.OnEvent(RelayEvent{Kind: "published", Count: len(sent)})
		}
		if ctx.Err() != nil {
			return progressed, nil
		}
		if lost != nil {
			return progressed, lost
		}
		if refused != nil {
			r.OnEvent(RelayEvent{Kind: "failed", Count: len(rows) - len(sent), Err: refused})
			if broker.Sleep(ctx, r.Backoff.Delay(refusals)) != nil {
				return progressed, nil
			}
			refusals++
			continue
		}
		refusals = 0
	}
}

func closeErr(e *amqp.Error) error {
	if e == nil {
		return errors.New("connection closed")
	}
	return fmt.Errorf("connection closed: %w", e)
}
