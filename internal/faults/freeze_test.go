package faults

import (
	"fmt"
	"testing"
	"time"
)

// freezeFor is how long the node stays frozen: past the net tick time
// (the other nodes declare it down after 0.75–1.25 of it) and past the
// 15 s mqctl's connections take to give up on a silent broker (a 10 s
// heartbeat; amqp091 closes after three missed half-intervals), so both
// the cluster and the clients must detect the freeze themselves.
const freezeFor = 20 * time.Second

// testNodeFrozenPastTickTime freezes (SIGSTOP) the node that leads the
// email quorum queue, with the producer and the e-mail worker connected
// to it, for longer than the cluster's net tick time, then resumes it,
// with sign-ups still coming. Every confirmed event must be processed,
// the clients must notice the freeze on their own and carry on with the
// other nodes, and the cluster must heal: the resumed node back in the
// queue and no partition left for an operator to clear.
func testNodeFrozenPastTickTime(t *testing.T, c *cluster) {
	for _, n := range c.nodes {
		if !n.Running() {
			n.Start(t)
		}
	}
	frozen := c.leader(t, 0, "email")
	survivor := c.other(frozen)
	// 26 s of sign-ups: they go on past the resume.
	l := startLoad(t, c, frozen, survivor, 6500)

	node := c.nodes[frozen]
	stopped := time.Now()
	node.Pause(t)
	t.Cleanup(func() { node.Resume(t) })
	time.Sleep(freezeFor)
	node.Resume(t)
	resumed := time.Now()
	t.Logf("froze %s, the leader of email, %s–%s", node.Name, stopped.Format("15:04:05.000"), resumed.Format("15:04:05.000"))

	sum, es, ps := l.finish(t)
	// Autoheal restarts the losing side; how long that takes varies a lot
	// on a loaded machine (7 s to a minute here).
	var partitions []string
	var st quorumState
	var unpartitioned time.Duration
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var err1, err2 error
		st, err1 = c.queueState(survivor, "email")
		partitions, err2 = c.partitioned(survivor)
		if err2 == nil && len(partitions) == 0 && unpartitioned == 0 {
			unpartitioned = time.Since(resumed)
		}
		if err1 == nil && err2 == nil && len(st.Online) == len(c.nodes) && len(partitions) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("2 minutes after SIGCONT the cluster has not healed: email online on %v; partitions: %v (%v, %v)", st.Online, partitions, err1, err2)
		}
	}
	healed := time.Since(resumed)

	fe := l.email.figures(t, fmt.Sprintf("cluster: quorum leader frozen (SIGSTOP) %s, past net_ticktime %s, e-mail worker and producer on it", freezeFor, netTickTime), l.events, stopped)
	fe.Note = fmt.Sprintf("%s; recovery from SIGSTOP (heartbeat timeout 15s), work flowing %s after SIGCONT; producer reconnected %d time(s), republished %d; worker reconnected %d time(s); no partition reported %s and the member online again %s after SIGCONT",
		partitionHandled, flowingAgain(l.email.effects(t), resumed, l.email.prefetch).Round(10*time.Millisecond),
		sum.Reconnects, sum.Republished, es.Reconnects, unpartitioned.Round(100*time.Millisecond), healed.Round(100*time.Millisecond))
	Report(t, fe)
	fp := l.points.figures(t, "cluster: quorum leader frozen past net_ticktime, points worker on a survivor", l.events, stopped)
	fp.Note = fmt.Sprintf("%s; recovery from SIGSTOP; worker reconnected %d time(s)", partitionHandled, ps.Reconnects)
	Report(t, fp)
}
