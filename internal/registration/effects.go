package registration

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/ledger"
	"github.com/mqctl/mqctl/internal/worker"
)

// The side effects, each also the name of its work queue.
const (
	Email  = "email"
	Points = "points"
	Coupon = "coupon"
)

// SideEffects lists the handlers in the order the demo shows them.
var SideEffects = []string{Email, Points, Coupon}

// Provider simulates the slow, flaky third party behind a side effect
// (SMTP relay, loyalty service, coupon service). Its settings may change
// while workers run (the demo breaks and fixes it).
type Provider struct {
	latency  atomic.Int64  // nanoseconds
	failRate atomic.Uint64 // float64 bits
	down     atomic.Bool
}

// NewProvider returns a provider with the given behaviour.
func NewProvider(latency time.Duration, failRate float64, down bool) *Provider {
	p := &Provider{}
	p.Set(latency, failRate, down)
	return p
}

// Set changes the provider's latency, failure rate (0..1) and outage.
func (p *Provider) Set(latency time.Duration, failRate float64, down bool) {
	p.latency.Store(int64(latency))
	p.failRate.Store(math.Float64bits(failRate))
	p.down.Store(down)
}

// SetDown breaks (true) or fixes (false) the provider.
func (p *Provider) SetDown(down bool) { p.down.Store(down) }

// Call waits the latency, then fails when down or by chance.
func (p *Provider) Call(ctx context.Context) error {
	if d := time.Duration(p.latency.Load()); d > 0 {
		if err := broker.Sleep(ctx, d); err != nil {
			return err
		}
	}
	if p.down.Load() {
		return providerError{"ProviderUnavailable", "provider unavailable (simulated outage)"}
	}
	if r := math.Float64frombits(p.failRate.Load()); r > 0 && rand.Float64() < r {
		return providerError{"ProviderError", "provider error (simulated failure)"}
	}
	return nil
}

// providerError is a simulated provider's failure; its class goes into
// the dead letter's mqctl-error-class header (see worker.ErrorClass).
type providerError struct{ class, text string }

func (e providerError) Error() string      { return e.text }
func (e providerError) ErrorClass() string { return e.class }

// Effects is where the simulated providers record what they did, in the
// ledger's database so that an effect and its ledger entry commit
// together. The tables have no uniqueness constraint on purpose: a
// duplicate side effect would show up, and the tests count them.
type Effects struct {
	ledger *ledger.Ledger
}

// NewEffects creates the side-effect tables next to the ledger.
func NewEffects(ctx context.Context, l *ledger.Ledger) (*Effects, error) {
	_, err := l.DB().ExecContext(ctx, `
CREATE TABLE IF NOT EXISTS sent_emails (event_id TEXT NOT NULL, user_id TEXT NOT NULL, address TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS granted_points (event_id TEXT NOT NULL, user_id TEXT NOT NULL, points INTEGER NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS issued_coupons (event_id TEXT NOT NULL, user_id TEXT NOT NULL, code TEXT NOT NULL, at TEXT NOT NULL);`)
	if err != nil {
		return nil, fmt.Errorf("create side-effect tables: %w", err)
	}
	return &Effects{ledger: l}, nil
}

// Handler returns the worker handler for a side effect: decode (a body
// that is not an event is dead-lettered at once), skip what the ledger
// has seen, call the provider (its failure is retried), then record the
// effect and the ledger entry in one transaction.
func (fx *Effects) Handler(effect string, p *Provider) (worker.Handler, error) {
	var record func(tx *sql.Tx, e Event, at string) error
	switch effect {
	case Email:
		record = func(tx *sql.Tx, e Event, at string) error {
			_, err := tx.Exec(`INSERT INTO sent_emails VALUES (?, ?, ?, ?)`, e.EventID, e.UserID, e.Email, at)
			return err
		}
	case Points:
		record = func(tx *sql.Tx, e Event, at string) error {
			pts := 100
			if e.VIP {
				pts = 500
			}
			_, err := tx.Exec(`INSERT INTO granted_points VALUES (?, ?, ?, ?)`, e.EventID, e.UserID, pts, at)
			return err
		}
	case Coupon:
		record = func(tx *sql.Tx, e Event, at string) error {
			_, err := tx.Exec(`INSERT INTO issued_coupons VALUES (?, ?, ?, ?)`, e.EventID, e.UserID, "VIP-"+e.UserID[:min(8, len(e.UserID))], at)
			return err
		}
	default:
		return nil, fmt.Errorf("unknown side effect %q: want email, points or coupon", effect)
	}
	return func(ctx context.Context, d worker.Delivery) error {
		e, err := DecodeEvent(d.Body)
		if err != nil {
			return worker.Permanent(err)
		}
		if effect == Coupon && !e.VIP {
			return nil // coupons are for VIPs only; nothing to do
		}
		if seen, err := fx.ledger.Seen(ctx, effect, e.EventID); err != nil {
			return err
		} else if seen {
			return nil // a redelivery: the effect already happened
		}
		if err := p.Call(ctx); err != nil {
			return err
		}
		at := time.Now().UTC().Format(time.RFC3339Nano)
		_, err = fx.ledger.Once(ctx, effect, e.EventID, func(tx *sql.Tx) error { return record(tx, e, at) })
		return err
	}, nil
}

// The SQLite ledger is the worker library's idempotency ledger.
var _ worker.Ledger = (*ledger.Ledger)(nil)

// Tally is, per user, how many times each side effect happened.
type Tally map[string]map[string]int // user id → effect → count

// Count reads the side-effect tables.
func (fx *Effects) Count(ctx context.Context) (Tally, error) {
	t := Tally{}
	for effect, table := range map[string]string{Email: "sent_emails", Points: "granted_points", Coupon: "issued_coupons"} {
		rows, err := fx.ledger.DB().QueryContext(ctx, `SELECT user_id, count(*) FROM `+table+` GROUP BY user_id`)
		if err != nil {
			return nil, fmt.Errorf("count %s: %w", table, err)
		}
		for rows.Next() {
			var user string
			var n int
			if err := rows.Scan(&user, &n); err != nil {
				rows.Close()
				return nil, err
			}
			if t[user] == nil {
				t[user] = map[string]int{}
			}
			t[user][effect] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return t, nil
}
