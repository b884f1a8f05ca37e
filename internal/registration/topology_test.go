package registration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/pattern"
	"github.com/mqctl/mqctl/internal/topology"
)

// The embedded example file and the Go defaults (the consume flags'
// defaults) say the same; the demo's override replaces only the retry
// policy, and one the file's rules refuse is refused.
func TestTopologyIsTheExampleFile(t *testing.T) {
	f, err := Topology("v", pattern.Retry{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Policies(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range SideEffects {
		if fmt.Sprint(got[e]) != fmt.Sprint(DefaultRetry(e)) {
			t.Errorf("%s: file policy %+v, Go default %+v", e, got[e], DefaultRetry(e))
		}
	}
	short := pattern.Retry{MaxAttempts: 3, Backoff: []time.Duration{time.Second, 2 * time.Second}}
	f, err = Topology("v", short)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = Policies(f)
	if want := "{email 3 [1s 2s] email.dlq}"; fmt.Sprint(got[Email]) != want {
		t.Errorf("overridden policy %v, want %s", got[Email], want)
	}
	if f.Vhost != "v" || len(f.Exchanges) != 1 || len(f.Queues) != 3 {
		t.Errorf("vhost %q, %d exchanges, %d queues; want v, 1, 3", f.Vhost, len(f.Exchanges), len(f.Queues))
	}
	if _, err := Topology("v", pattern.Retry{MaxAttempts: 2, Backoff: []time.Duration{time.Second, 2 * time.Second}}); err == nil {
		t.Error("2 backoffs for 2 attempts accepted; want the file's validation error")
	}
}

// DeclareTopology (the tests' AMQP helper) declares exactly what applying
// the example file declares: declaring it over the applied topology would
// fail with PRECONDITION_FAILED on any argument that differs.
func TestDeclareTopologyAgreesWithTheAppliedFile(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	f, err := Topology(env.Vhost, pattern.Retry{MaxAttempts: 3, Backoff: []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := &topology.MgmtBroker{Client: env.Mgmt}
	res, err := ApplyTopology(ctx, b, f)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied == 0 {
		t.Fatal("applied nothing to a fresh vhost")
	}
	policies, err := Policies(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := DeclareTopology(env.Channel(t), policies); err != nil {
		t.Fatalf("DeclareTopology disagrees with the applied example file: %v", err)
	}
	p, err := topology.PlanLive(ctx, b, topology.Expand(f), topology.PlanOptions{Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Pending() {
		t.Errorf("after DeclareTopology the vhost differs from the file: %+v", p.Changes)
	}
}

// The defaults match examples/registration/topology.yaml: 4 attempts,
// waits of 5s, 30s and 2m, then email.dlq.
func TestDefaultRetrySchedule(t *testing.T) {
	r := DefaultRetry(Email)
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

func TestBindingsRouteCouponsOnlyForVIPs(t *testing.T) {
	if b := Bindings(Coupon); len(b) != 1 || b[0].RoutingKey != KeyRegisteredVIP {
		t.Errorf("coupon bindings = %+v", b)
	}
	for _, e := range []string{Email, Points} {
		if b := Bindings(e); len(b) != 1 || b[0].RoutingKey != "user.registered.#" {
			t.Errorf("%s bindings = %+v", e, b)
		}
	}
	if (Event{VIP: true}).RoutingKey() != KeyRegisteredVIP || (Event{}).RoutingKey() != KeyRegistered {
		t.Error("event routing keys")
	}
}

func TestDecodeEventRejectsWhatIsNotAnEvent(t *testing.T) {
	for _, body := range []string{"", "<html>", `{"name":"x"}`, `[]`} {
		if _, err := DecodeEvent([]byte(body)); err == nil {
			t.Errorf("DecodeEvent(%q) = nil error", body)
		}
	}
	if e, err := DecodeEvent([]byte(`{"event_id":"e","user_id":"u","vip":true}`)); err != nil || !e.VIP {
		t.Errorf("valid event: %+v %v", e, err)
	}
}
