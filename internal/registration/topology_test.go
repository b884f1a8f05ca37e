package registration_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/pattern"
	"github.com/mqctl/mqctl/internal/registration"
	"github.com/mqctl/mqctl/internal/topology"
)

// The embedded example file and the Go defaults (the consume flags'
// defaults) say the same; an override replaces only the retry policy of
// the side effects it names, and one the file's rules refuse is refused.
func TestTopologyIsTheExampleFile(t *testing.T) {
	f, err := registration.Topology("v", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := registration.Policies(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range registration.SideEffects {
		want := pattern.Retry{Queue: e, MaxAttempts: registration.DefaultMaxAttempts, Backoff: registration.DefaultBackoff, DLQ: pattern.DefaultDLQ(e)}
		if fmt.Sprint(got[e]) != fmt.Sprint(want) {
			t.Errorf("%s: file policy %+v, Go default %+v", e, got[e], want)
		}
	}
	short := pattern.Retry{MaxAttempts: 3, Backoff: []time.Duration{time.Second, 2 * time.Second}}
	f, err = registration.Topology("v", map[string]pattern.Retry{registration.Email: short})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = registration.Policies(f)
	if want := "{email 3 [1s 2s] email.dlq}"; fmt.Sprint(got[registration.Email]) != want {
		t.Errorf("overridden policy %v, want %s", got[registration.Email], want)
	}
	if want := "{points 4 [5s 30s 2m0s] points.dlq}"; fmt.Sprint(got[registration.Points]) != want {
		t.Errorf("policy of points, not overridden: %v, want %s", got[registration.Points], want)
	}
	if f.Vhost != "v" || len(f.Exchanges) != 1 || len(f.Queues) != 3 {
		t.Errorf("vhost %q, %d exchanges, %d queues; want v, 1, 3", f.Vhost, len(f.Exchanges), len(f.Queues))
	}
	bad := pattern.Retry{MaxAttempts: 2, Backoff: []time.Duration{time.Second, 2 * time.Second}}
	if _, err := registration.Topology("v", registration.UniformRetry(bad)); err == nil {
		t.Error("2 backoffs for 2 attempts accepted; want the file's validation error")
	}
}

// The example file's retry schedule: 4 attempts, waits of 5s, 30s and 2m,
// then email.dlq.
func TestDefaultRetrySchedule(t *testing.T) {
	f, err := registration.Topology("v", nil)
	if err != nil {
		t.Fatal(err)
	}
	policies, err := registration.Policies(f)
	if err != nil {
		t.Fatal(err)
	}
	r := policies[registration.Email]
	want := []pattern.Decision{
		{RoutingKey: "email.retry.1", NextAttempt: 2, Delay: 5 * time.Second},
		{RoutingKey: "email.retry.2", NextAttempt: 3, Delay: 30 * time.Second},
		{RoutingKey: "email.retry.3", NextAttempt: 4, Delay: 2 * time.Minute},
		{Exchange: "email.dlx", RoutingKey: "email", DeadLetter: true},
	}
	for i, w := range want {
		if got := r.AfterFailure(i + 1); got != w {
			t.Errorf("after attempt %d: %+v, want %+v", i+1, got, w)
		}
	}
	if r.DLQ != "email.dlq" || r.Steps() != 3 {
		t.Errorf("DLQ %q, %d delay queues; want email.dlq and 3", r.DLQ, r.Steps())
	}
}

// Every sign-up reaches email and points; only VIP sign-ups reach coupon.
func TestBindingsRouteCouponsOnlyForVIPs(t *testing.T) {
	f, err := registration.Topology("v", nil)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	for _, b := range topology.Expand(f).Defs.Bindings {
		if b.Source == registration.Exchange {
			keys[b.Destination] = append(keys[b.Destination], b.RoutingKey)
		}
	}
	for queue, want := range map[string][]string{registration.Email: {"user.registered.#"}, registration.Points: {"user.registered.#"}, registration.Coupon: {registration.KeyRegisteredVIP}} {
		if !slices.Equal(keys[queue], want) {
			t.Errorf("%s is bound to %s with %v, want %v", queue, registration.Exchange, keys[queue], want)
		}
	}
	if (registration.Event{VIP: true}).RoutingKey() != registration.KeyRegisteredVIP || (registration.Event{}).RoutingKey() != registration.KeyRegistered {
		t.Error("event routing keys")
	}
}

func TestDecodeEventRejectsWhatIsNotAnEvent(t *testing.T) {
	for _, body := range []string{"", "<html>", `{"name":"x"}`, `[]`} {
		if _, err := registration.DecodeEvent([]byte(body)); err == nil {
			t.Errorf("DecodeEvent(%q) = nil error", body)
		}
	}
	if e, err := registration.DecodeEvent([]byte(`{"event_id":"e","user_id":"u","vip":true}`)); err != nil || !e.VIP {
		t.Errorf("valid event: %+v %v", e, err)
	}
}
