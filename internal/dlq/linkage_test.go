package dlq

import (
	"strings"
	"testing"

	"github.com/mqctl/mqctl/internal/deadletter"
	"github.com/mqctl/mqctl/internal/fail"
)

// linkageGraph: email dead-letters into email.dlq (arguments) and retries
// through email.retry.1; points dead-letters by policy into the quorum
// points.dead; audit dead-letters nowhere.
func linkageGraph() (*deadletter.Graph, map[string]string) {
	args := func(ex, key string) map[string]any {
		return map[string]any{"x-dead-letter-exchange": ex, "x-dead-letter-routing-key": key}
	}
	q := func(name string, a, p map[string]any) deadletter.Queue {
		return deadletter.Queue{Vhost: "v", Name: name, Arguments: a, Policy: p}
	}
	g := deadletter.New(
		[]deadletter.Queue{
			q("email", args("email.dlx", "email"), nil), q("email.retry.1", args("", "email"), nil), q("email.dlq", nil, nil),
			q("points", nil, map[string]any{"dead-letter-exchange": "graveyard"}), q("points.dead", nil, nil), q("audit", nil, nil),
		},
		[]deadletter.Exchange{{Vhost: "v", Name: "email.dlx", Type: "direct"}, {Vhost: "v", Name: "graveyard", Type: "fanout"}},
		[]deadletter.Binding{
			{Vhost: "v", Source: "email.dlx", Queue: "email.dlq", RoutingKey: "email"},
			{Vhost: "v", Source: "graveyard", Queue: "points.dead", RoutingKey: "x"},
		})
	types := map[string]string{"email": "quorum", "email.retry.1": "quorum", "email.dlq": "classic",
		"points": "classic", "points.dead": "quorum", "audit": "classic"}
	return g, types
}

func TestLinkageSaysWhatIsADLQAndWhose(t *testing.T) {
	g, types := linkageGraph()
	for _, c := range []struct {
		queue   string
		dlq     bool
		origins []string
		refusal []string // in the refusal's text
	}{
		{queue: "email.dlq", dlq: true, origins: []string{"email"}},
		{queue: "points.dead", dlq: true, origins: []string{"points"}},
		{queue: "email", refusal: []string{"email is not a dead-letter queue", "it dead-letters into email.dlq (through email.dlx, set by arguments)", "did you mean email.dlq?", "--force", "Nothing was read"}},
		{queue: "email.retry.1", refusal: []string{"retry delay queue"}},
		{queue: "points", refusal: []string{"dead-letters into points.dead", "did you mean points.dead?"}},
		{queue: "audit", refusal: []string{"audit is not a dead-letter queue", "the vhost's dead-letter queues: email.dlq (from email), points.dead (from points)"}},
	} {
		l := LinkageOf(g, types, "v", c.queue)
		if l.IsDLQ != c.dlq || !l.Listed || strings.Join(l.Origins, ",") != strings.Join(c.origins, ",") {
			t.Errorf("%s: %+v", c.queue, l)
		}
		err := l.Refusal()
		if c.dlq {
			if err != nil {
				t.Errorf("%s refused: %v", c.queue, err)
			}
			continue
		}
		if k, _ := fail.KindOf(err); err == nil || k != fail.Usage {
			t.Errorf("%s: refusal %v is not a usage error", c.queue, err)
			continue
		}
		for _, want := range c.refusal {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: refusal %q lacks %q", c.queue, err, want)
			}
		}
	}
	if w := LinkageOf(g, types, "v", "points.dead").QuorumWarning(); !strings.Contains(w, "x-delivery-count") || !strings.Contains(w, "points.dead is a quorum queue") {
		t.Errorf("quorum warning %q", w)
	}
	if w := LinkageOf(g, types, "v", "email.dlq").QuorumWarning(); w != "" {
		t.Errorf("classic DLQ warned: %q", w)
	}
	// Not listed (unknown to the management API): not a DLQ by the model.
	if l := LinkageOf(g, types, "v", "new.queue"); l.Listed || l.IsDLQ {
		t.Errorf("unlisted queue: %+v", l)
	}
}

func TestForeignOriginNamesBothSides(t *testing.T) {
	got := ForeignOrigin("email.dlq", "billing", []string{"email"})
	for _, want := range []string{"claims origin billing", "billing does not dead-letter into email.dlq", "its origins are email", "--to QUEUE", "--force"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
}

func TestCloneLeavesTheSelectionWhole(t *testing.T) {
	s := &Selection{want: map[string]int{"a": 1, "b": -1}}
	c := s.Clone()
	if !c.Take("a") || c.Take("a") || !c.Take("b") {
		t.Error("the clone selects wrongly")
	}
	if !s.Take("a") {
		t.Error("taking from the clone used up the original")
	}
	if all := SelectAll().Clone(); !all.All {
		t.Error("clone of --all")
	}
}
