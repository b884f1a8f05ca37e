package pattern

import (
	"testing"
	"time"
)

func TestAfterFailure(t *testing.T) {
	r := Retry{Queue: "email", MaxAttempts: 4, Backoff: []time.Duration{5 * time.Second, 30 * time.Second}}
	want := []Decision{
		{Exchange: "", RoutingKey: "email.retry.1", NextAttempt: 2, Delay: 5 * time.Second},
		{Exchange: "", RoutingKey: "email.retry.2", NextAttempt: 3, Delay: 30 * time.Second},
		// the last backoff repeats
		{Exchange: "", RoutingKey: "email.retry.2", NextAttempt: 4, Delay: 30 * time.Second},
		{Exchange: "email.dlx", RoutingKey: "email", DeadLetter: true},
		{Exchange: "email.dlx", RoutingKey: "email", DeadLetter: true},
	}
	for i, w := range want {
		if got := r.AfterFailure(i + 1); got != w {
			t.Errorf("attempt %d: %+v, want %+v", i+1, got, w)
		}
	}
	if r.Steps() != 2 {
		t.Errorf("steps = %d", r.Steps())
	}
	// More backoff values than retries: only the ones used get a queue.
	r = Retry{Queue: "q", MaxAttempts: 2, Backoff: []time.Duration{time.Second, time.Minute}}
	if r.Steps() != 1 || r.AfterFailure(2).DeadLetter != true {
		t.Errorf("steps = %d, after 2 = %+v", r.Steps(), r.AfterFailure(2))
	}
	// No retry at all: the first failure dead-letters.
	if d := (Retry{Queue: "q", MaxAttempts: 1}).AfterFailure(1); !d.DeadLetter {
		t.Errorf("max_attempts 1: %+v", d)
	}
}
