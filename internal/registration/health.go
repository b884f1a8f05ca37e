package registration

import (
	"sync"
	"time"
)

// RelayDownAfter is how long the relay may be away from the broker
// before /healthz answers 503: a reconnect is not an outage.
const RelayDownAfter = 30 * time.Second

// RelayHealth is the relay's state as /healthz reports it, fed by its
// events.
type RelayHealth struct {
	mu        sync.Mutex
	connected bool
	since     time.Time
	lastError string
	published time.Time
	now       func() time.Time
}

// NewRelayHealth starts as not connected, now.
func NewRelayHealth() *RelayHealth {
	return &RelayHealth{since: time.Now(), now: time.Now}
}

// Observe records a relay event.
func (h *RelayHealth) Observe(e RelayEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch e.Kind {
	case "connected":
		if !h.connected {
			h.connected, h.since = true, h.now()
		}
	case "disconnected", "reconnecting":
		if h.connected {
			h.connected, h.since = false, h.now()
		}
	case "published":
		h.published = h.now()
	}
	if e.Err != nil {
		h.lastError = e.Err.Error()
	}
}

// RelayStatus is the relay part of /healthz.
type RelayStatus struct {
	State         string     `json:"state"` // connected or disconnected
	Since         time.Time  `json:"since"`
	LastPublished *time.Time `json:"last_published,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
}

// Status reports the relay's state, and whether it has been away from the
// broker longer than RelayDownAfter.
func (h *RelayHealth) Status() (st RelayStatus, down bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st = RelayStatus{State: "disconnected", Since: h.since.UTC(), LastError: h.lastError}
	if h.connected {
		st.State = "connected"
	}
	if !h.published.IsZero() {
		p := h.published.UTC()
		st.LastPublished = &p
	}
	return st, !h.connected && h.now().Sub(h.since) > RelayDownAfter
}
