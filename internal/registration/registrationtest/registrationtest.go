// Package registrationtest sets up the registration topology for tests the
// way users do: examples/registration/topology.yaml, expanded by the
// topology package and applied through the management API, as `mqctl
// topology apply -f examples/registration/topology.yaml` does. Tests then
// exercise the objects production declares, never a copy of them.
package registrationtest

import (
	"context"
	"testing"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/mqctl/mqctl/internal/pattern"
	"github.com/mqctl/mqctl/internal/registration"
	"github.com/mqctl/mqctl/internal/topology"
)

// ShortRetry is the tests' retry policy: three attempts, waits of 200ms and
// 400ms, so a retried message is back within a second. `mqctl consume
// --max-attempts 3 --backoff 200ms,400ms` matches it.
var ShortRetry = pattern.Retry{MaxAttempts: 3, Backoff: []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}}

// Apply applies the registration topology to vhost through the management
// API, every side effect with ShortRetry unless an override (keyed by its
// Queue) says otherwise, and returns each side effect's policy as applied:
// what its worker must be given.
func Apply(t testing.TB, mgmt *rabbithole.Client, vhost string, overrides ...pattern.Retry) map[string]pattern.Retry {
	t.Helper()
	retry := registration.UniformRetry(ShortRetry)
	for _, r := range overrides {
		retry[r.Queue] = r
	}
	f, err := registration.Topology(vhost, retry)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := registration.ApplyTopology(ctx, &topology.MgmtBroker{Client: mgmt}, f); err != nil {
		t.Fatalf("apply the registration topology to %s: %v", vhost, err)
	}
	policies, err := registration.Policies(f)
	if err != nil {
		t.Fatal(err)
	}
	return policies
}

// Mgmt is an administrator client for a management API at url (a private
// node's, with its guest user).
func Mgmt(t testing.TB, url string) *rabbithole.Client {
	t.Helper()
	c, err := rabbithole.NewClient(url, "guest", "guest")
	if err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(10 * time.Second)
	return c
}
