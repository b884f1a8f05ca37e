package topology

import (
	"testing"
)

func TestPlanWithoutMigrations(t *testing.T) {
	x := Expand(mustParse(t, planBase))
	live := liveFrom(t, planBase)
	for i := range live.Queues {
		if live.Queues[i].Name == "q" {
			live.Queues[i].Arguments = map[string]any{} // classic on the broker, quorum in the file
		}
	}
	// An earlier migration's temporary queue, bound, and one policy gone.
	temp := TempQueue("q")
	live.Queues = append(live.Queues, DefQueue{Name: temp, Durable: true})
	live.Bindings = append(live.Bindings, DefBinding{Source: "e", Destination: temp, DestinationType: "queue", RoutingKey: "k"})
	live.Policies = live.Policies[:0]
	states := map[string]QueueState{"q": {Messages: 7}, temp: {}}

	p := Diff(x, live, states, PlanOptions{Prune: true})
	if p.Summary.Migrate != 1 || p.Summary.Delete != 2 || p.Summary.Create == 0 {
		t.Fatalf("plan summary = %+v, want 1 migrate, 2 deletes (temp queue and binding), creates", p.Summary)
	}
	before := p.Summary
	w := p.WithoutMigrations()
	if p.Summary != before || len(p.Changes) != len(w.Changes)+4 {
		t.Errorf("the plan changed, or the wrong changes were left out: %d changes, %d without migrations", len(p.Changes), len(w.Changes))
	}
	want := before
	// The policy mqctl owns for q goes with the new queue (DeclareQueue).
	want.Migrate, want.Delete, want.Create = 0, 0, want.Create-1
	if w.Summary != want {
		t.Errorf("summary without migrations = %+v, want %+v", w.Summary, want)
	}
	for _, c := range w.Changes {
		if c.Action == Migrate || c.Name == temp || c.Name == OwnedPolicyName("q") || (c.binding != nil && c.binding.Destination == temp) {
			t.Errorf("change left in: %s %s %s", c.Action, c.Kind, c.Name)
		}
	}
	if w.Vhost != p.Vhost || !w.Prune || w.Work() != p.Work()-3 {
		t.Errorf("vhost %q prune %t work %d (plan's %d)", w.Vhost, w.Prune, w.Work(), p.Work())
	}
}
