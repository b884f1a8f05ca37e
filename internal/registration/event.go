// Package registration is the reference application of the reliable
// pattern: a sign-up API that stores the user and an outbox row in one
// SQLite transaction, a relay that publishes the outbox with confirms, the
// three side-effect handlers (welcome e-mail, loyalty points, VIP coupon)
// built on internal/worker with an idempotency ledger, and a synthetic
// producer. It never prints; callers observe it through callbacks.
package registration

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Exchange is where registration events are published.
const Exchange = "user.events"

// Routing keys of registration events.
const (
	KeyRegistered    = "user.registered"
	KeyRegisteredVIP = "user.registered.vip"
)

// Event is the body of a registration event (JSON).
type Event struct {
	EventID      string    `json:"event_id"`
	UserID       string    `json:"user_id"`
	Name         string    `json:"name"`
	Email        string    `json:"email"`
	VIP          bool      `json:"vip"`
	RegisteredAt time.Time `json:"registered_at"`
}

// RoutingKey is user.registered, or user.registered.vip for VIPs.
func (e Event) RoutingKey() string {
	if e.VIP {
		return KeyRegisteredVIP
	}
	return KeyRegistered
}

// DecodeEvent parses and checks an event body.
func DecodeEvent(body []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(body, &e); err != nil {
		return e, fmt.Errorf("body is not a registration event: %w", err)
	}
	if e.EventID == "" || e.UserID == "" {
		return e, fmt.Errorf("registration event lacks event_id or user_id")
	}
	return e, nil
}

// NewID returns a random UUID (version 4).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
