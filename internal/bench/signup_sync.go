package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/mqctl/mqctl/internal/registration"
)

// errProviderDown is what a provider that is down ends with: it hangs
// until the caller gives up, as a dead upstream behind a load balancer does.
var errProviderDown = errors.New("provider did not answer")

// Provider simulates a slow side effect (e-mail, loyalty points, coupon):
// each call takes Latency; while Down, a call hangs until its context ends.
type Provider struct {
	Name    string
	Latency time.Duration
	down    atomic.Bool
}

// SetDown breaks or fixes the provider.
func (p *Provider) SetDown(down bool) { p.down.Store(down) }

// Call performs the side effect.
func (p *Provider) Call(ctx context.Context) error {
	if p.down.Load() {
		<-ctx.Done()
		return fmt.Errorf("%s provider: %w", p.Name, errProviderDown)
	}
	t := time.NewTimer(p.Latency)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s provider: %w", p.Name, ctx.Err())
	}
}

// SyncSignup is the synchronous design the register benchmark compares
// with the shipped one: the request handler checks the body as `mqctl
// serve` does, calls each provider in turn, each call bounded by Timeout,
// and answers 201 only when all succeeded (502 otherwise).
type SyncSignup struct {
	Providers []*Provider
	Timeout   time.Duration
}

// ServeHTTP handles POST /register.
func (s *SyncSignup) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, ok := registration.DecodeRegisterRequest(w, r); !ok {
		return
	}
	for _, p := range s.Providers {
		ctx, cancel := context.WithTimeout(r.Context(), s.Timeout)
		err := p.Call(ctx)
		cancel()
		if err != nil {
			http.Error(w, "sign-up failed: "+err.Error(), http.StatusBadGateway)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(`{}`))
}
