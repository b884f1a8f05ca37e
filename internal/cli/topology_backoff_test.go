package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/brokertest"
)

// A backoff change is a policy update in place: messages already waiting
// in the delay queues are neither lost nor kept on the old schedule — an
// hour's wait becomes the new second.
func TestTopologyBackoffChangeKeepsWaitingRetries(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	e := env.Environ()
	const src = "apiVersion: mqctl/v1\nqueues:\n  - {name: work, retry: {max_attempts: 3, backoff: [%s, %s]}, dead_letter: true}\n"
	mustRun(t, e, 0, "topology", "apply", "-f", writeFile(t, "slow.yaml", fmt.Sprintf(src, "1h", "1h")))
	pub := testPublisher(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := map[string]bool{}
	for _, q := range []string{"work.retry.1", "work.retry.2"} {
		for i := range 20 {
			id := fmt.Sprintf("%s-%02d", q, i)
			want[id] = true
			must(t, pub.PublishAndWait(ctx, "", q, amqp.Publishing{MessageId: id, Body: []byte(id), DeliveryMode: amqp.Persistent}))
		}
	}

	fast := writeFile(t, "fast.yaml", fmt.Sprintf(src, "1s", "2s"))
	p, _ := planOf(t, e, fast)
	if p.Summary["migrate"] != 0 || p.Summary["conflict"] != 0 || p.Summary["update"] != 2 {
		t.Fatalf("a backoff change should update two policies in place: %+v", p.Summary)
	}
	r := mustRun(t, e, 0, "topology", "apply", "-f", fast, "-o", "json")
	var res struct {
		Retimed map[string]int `json:"retimed"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil || res.Retimed["work.retry.1"] != 20 || res.Retimed["work.retry.2"] != 20 {
		t.Errorf("apply -o json: retimed %v (%v), want 20 in each delay queue\n%s", res.Retimed, err, r.Stdout)
	}

	ch := env.Channel(t)
	got := map[string]int{}
	brokertest.WaitFor(t, "every waiting retry back in work on the new schedule", 45*time.Second, func() bool {
		for {
			d, ok, err := ch.Get("work", false)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return len(got) == len(want)
			}
			got[d.MessageId]++
			must(t, d.Ack(false))
		}
	})
	for id := range want {
		if got[id] != 1 {
			t.Errorf("%s arrived %d times", id, got[id])
		}
	}
	for _, q := range []string{"work.retry.1", "work.retry.2", "work.dlq"} {
		if n := env.QueueDepth(t, q); n != 0 {
			t.Errorf("%s holds %d", q, n)
		}
	}
}
