package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/brokertest"
)

// TestTopologyPruneKeepsQueuesWhenTheBrokerHasNoStatistics: with
// management statistics off the API reports no counts, which read as 0.
// A prune must still keep a queue whose only message is held unacked by a
// consumer (the AMQP count sees the consumer), and a queue of another
// vhost than --url's, which mqctl cannot count over AMQP, while it deletes
// a queue that is really empty.
func TestTopologyPruneKeepsQueuesWhenTheBrokerHasNoStatistics(t *testing.T) {
	t.Parallel()
	node := brokertest.StartNodeWith(t, brokertest.NodeOptions{Management: true, Config: metricsOffConfig})
	api, err := rabbithole.NewClient(node.MgmtURL(), "guest", "guest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.PutVhost("other", rabbithole.VhostSettings{}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.UpdatePermissionsIn("other", "guest", rabbithole.Permissions{Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MQCTL_URL": node.URL(), "MQCTL_MGMT_URL": node.MgmtURL()}

	// In "/": busy holds one message unacked by a consumer, empty nothing.
	ch := node.Channel(t)
	for _, q := range []string{"busy", "empty"} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := amqp.Dial(node.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	pub, err := broker.NewPublisher(conn, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(t, pub.PublishAndWait(ctx, "", "busy", amqp.Publishing{Body: []byte("in flight"), DeliveryMode: amqp.Persistent}))
	cons := node.Channel(t)
	must(t, cons.Qos(1, 0, false))
	deliveries, err := cons.Consume("busy", "holder", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-deliveries: // held, never acked
	case <-ctx.Done():
		t.Fatal("the consumer got no message")
	}

	// In "other": full holds a message.
	otherURL := strings.TrimSuffix(node.URL(), "/") + "/other"
	och, err := amqp.Dial(otherURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = och.Close() })
	opub, err := broker.NewPublisher(och, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer opub.Close()
	oc, err := och.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oc.QueueDeclare("full", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	must(t, opub.PublishAndWait(ctx, "", "full", amqp.Publishing{Body: []byte("precious"), DeliveryMode: amqp.Persistent}))

	file := writeFile(t, "t.yaml", "apiVersion: mqctl/v1\nqueues: [{name: keep-me}]\n")
	r := mustRun(t, env, ExitCondition, "topology", "apply", "-f", file, "--prune", "--yes")
	if !strings.Contains(r.Stderr, "busy") {
		t.Errorf("apply --prune should report busy as kept: %s", r.Stderr)
	}
	otherFile := writeFile(t, "o.yaml", "apiVersion: mqctl/v1\nvhost: other\nqueues: [{name: keep-me}]\n")
	r = mustRun(t, env, ExitCondition, "topology", "apply", "-f", otherFile, "--prune", "--yes")
	if !strings.Contains(r.Stderr, "full") || !strings.Contains(r.Stderr, "unknown") {
		t.Errorf("apply --prune in another vhost should keep full, its count unknown: %s", r.Stderr)
	}

	for vhost, want := range map[string][]string{"/": {"busy", "keep-me"}, "other": {"full", "keep-me"}} {
		qs, err := api.ListQueuesIn(vhost)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, q := range qs {
			got = append(got, q.Name)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("queues in %s after the prune = %v, want %v (busy and full kept, empty deleted)", vhost, got, want)
		}
	}
}
