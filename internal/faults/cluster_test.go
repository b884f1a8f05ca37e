package faults

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/brokertest"
)

// TestCluster runs the three-node scenarios on one cluster (booting one
// takes about a minute on two cores): the quorum queue leader killed under
// load, then a node frozen past the net tick time.
func TestCluster(t *testing.T) {
	c := startCluster(t)
	c.applyTopology(t, 0)
	t.Run("LeaderKilledUnderLoad", func(t *testing.T) { testLeaderKilledUnderLoad(t, c) })
	t.Run("NodeFrozenPastTickTime", func(t *testing.T) { testNodeFrozenPastTickTime(t, c) })
}

// testLeaderKilledUnderLoad kills (SIGKILL) the node that leads the email
// quorum queue while `mqctl produce` publishes and two `mqctl consume`
// workers process: the e-mail worker and the producer are connected to
// that node (its URL first in --url) and must fail over to the others;
// the points worker is connected to a survivor and must carry on through
// the leader election. Every confirmed event must get its e-mail and its
// points.
func testLeaderKilledUnderLoad(t *testing.T, c *cluster) {
	leader := c.leader(t, 0, "email")
	survivor := c.other(leader)
	l := startLoad(t, c, leader, survivor, 2000)

	// A quorum queue led by the same node, for a publisher that connects
	// to a survivor during the leader election.
	if _, err := c.nodes[leader].Channel(t).QueueDeclare("probe", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}

	killed := time.Now()
	c.nodes[leader].Kill(t)
	t.Logf("killed %s, the leader of email, at %s", c.nodes[leader].Name, killed.Format("15:04:05.000"))
	nacks := publishDuringElection(t, c.nodes[survivor], "probe")

	sum, es, ps := l.finish(t)
	if sum.Reconnects < 1 {
		t.Errorf("produce on the killed node reports %d reconnects: it did not fail over", sum.Reconnects)
	}
	if st, err := c.queueState(survivor, "email"); err == nil && c.index(st.Leader) == leader {
		t.Errorf("email is still led by the killed node %s", st.Leader)
	}
	fe := l.email.figures(t, "cluster: quorum leader SIGKILLed under load, e-mail worker and producer on it fail over", l.events, killed)
	fe.Note = fmt.Sprintf("3 nodes; producer reconnected %d time(s), republished %d; worker reconnected %d time(s); a publisher connecting during the election got %d nack(s), then acks",
		sum.Reconnects, sum.Republished, es.Reconnects, nacks)
	Report(t, fe)
	fp := l.points.figures(t, "cluster: quorum leader SIGKILLed under load, points worker on a survivor", l.events, killed)
	fp.Note = fmt.Sprintf("worker reconnected %d time(s)", ps.Reconnects)
	Report(t, fp)

	// The next scenario needs the whole cluster: the node rejoins from its
	// data directory.
	c.nodes[leader].Start(t)
	c.leader(t, survivor, "email")
}

// publishDuringElection publishes to queue through node right after its
// leader died, until one publish is confirmed, and returns the nacks on
// the way. RabbitMQ 3.10 nacks, for as long as the channel lives, every
// publish of a channel whose first publish found no leader;
// broker.Publisher must move to a fresh channel after a nack.
func publishDuringElection(t *testing.T, node *brokertest.Node, queue string) int {
	t.Helper()
	conn, err := amqp.Dial(node.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pub, err := broker.NewPublisher(conn, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	nacks := 0
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := pub.PublishAndWait(ctx, "", queue, amqp.Publishing{MessageId: "probe", DeliveryMode: amqp.Persistent})
		cancel()
		switch {
		case err == nil:
			return nacks
		case errors.Is(err, broker.ErrNacked):
			nacks++
			time.Sleep(200 * time.Millisecond)
		default:
			t.Fatalf("publish to %s during the election: %v", queue, err)
		}
	}
	t.Fatalf("publishes to %s through a survivor still nacked 30s after its leader died (%d nacks)", queue, nacks)
	return nacks
}
