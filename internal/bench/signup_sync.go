package bench

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"
)

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

// SyncSignup is the synchronous design: the request handler calls each
// provider in turn, each call bounded by Timeout, and answers 201 only
// when all succeeded (502 otherwise).
type SyncSignup struct {
	Providers []*Provider
	Timeout   time.Duration
}

// ServeHTTP handles POST /register.
func (s *SyncSignup) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, ok := decodeSignup(w, r); !ok {
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
