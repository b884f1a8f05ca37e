package registration

import (
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/pattern"
)

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
