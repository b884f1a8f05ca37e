package topology

import (
	"context"
	"reflect"
	"testing"

	"github.com/mqctl/mqctl/internal/fail"
)

// recorder is a Broker that records calls; apply's ordering and refusals
// are pure logic (the broker behaviour itself is tested in internal/cli).
type recorder struct {
	calls   []string
	refuse  map[string]string
	imports []*Definitions
}

func (r *recorder) Definitions(context.Context, string) (*Definitions, error) {
	return &Definitions{}, nil
}
func (r *recorder) QueueStates(context.Context, string) (map[string]QueueState, error) {
	return nil, nil
}
func (r *recorder) Import(_ context.Context, d *Definitions) error {
	r.imports = append(r.imports, d)
	kind := "policy"
	switch {
	case len(d.Exchanges) > 0:
		kind = "exchange"
	case len(d.Queues) > 0:
		kind = "queue"
	case len(d.Bindings) > 0:
		kind = "binding"
	}
	r.calls = append(r.calls, "import "+kind)
	return nil
}
func (r *recorder) DeleteBinding(_ context.Context, _ string, b DefBinding) error {
	r.calls = append(r.calls, "delete binding "+b.Source)
	return nil
}
func (r *recorder) DeletePolicy(_ context.Context, _, n string) error {
	r.calls = append(r.calls, "delete policy "+n)
	return nil
}
func (r *recorder) DeleteExchange(_ context.Context, _, n string) error {
	r.calls = append(r.calls, "delete exchange "+n)
	return nil
}
func (r *recorder) DeleteQueueIfEmpty(_ context.Context, _, n string) (string, error) {
	if why := r.refuse[n]; why != "" {
		r.calls = append(r.calls, "keep queue "+n)
		return why, nil
	}
	r.calls = append(r.calls, "delete queue "+n)
	return "", nil
}

func TestApplyOrderAndPrune(t *testing.T) {
	x := Expand(mustParse(t, planBase))
	live := &Definitions{
		Queues:    []DefQueue{{Name: "old"}, {Name: "raced"}},
		Exchanges: []DefExchange{{Name: "oldx", Type: "direct"}},
		Bindings:  []DefBinding{{Source: "oldx", Destination: "old", DestinationType: "queue"}},
		Policies:  []DefPolicy{{Name: "oldp"}},
	}
	p := Diff(x, live, map[string]QueueState{"old": {}, "raced": {}}, PlanOptions{Prune: true})
	r := &recorder{refuse: map[string]string{"raced": "holds 1 messages"}}
	var done int
	res, err := Apply(context.Background(), r, p, func(n int) { done += n })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"import exchange", "import queue", "import binding", "import policy",
		"delete binding oldx", "delete policy oldp", "delete exchange oldx", "delete queue old", "keep queue raced"}
	if !reflect.DeepEqual(r.calls, want) {
		t.Errorf("calls = %v\nwant %v", r.calls, want)
	}
	if res.Applied != 8 || res.Deleted != 4 || !reflect.DeepEqual(res.Kept, []string{"raced"}) || done != p.Work() {
		t.Errorf("result %+v, progress %d of %d", res, done, p.Work())
	}
	for _, d := range r.imports {
		for _, q := range d.Queues {
			if q.Vhost != "v" {
				t.Errorf("imported queue %s without vhost", q.Name)
			}
		}
	}
}

func TestApplyRefusesConflicts(t *testing.T) {
	x := Expand(mustParse(t, planBase))
	live := liveFrom(t, planBase)
	findQueue(live, "q").Durable = false
	r := &recorder{}
	_, err := Apply(context.Background(), r, Diff(x, live, nil, PlanOptions{}), nil)
	if k, _ := fail.KindOf(err); k != fail.Condition || len(r.calls) != 0 {
		t.Fatalf("err %v (kind %v), calls %v: want a condition error and no call", err, k, r.calls)
	}
}

func TestApplyBatches(t *testing.T) {
	src := "apiVersion: mqctl/v1\nqueues:\n"
	for i := 0; i < ImportBatch+10; i++ {
		src += "  - {name: q" + string(rune('a'+i%26)) + itoa(i) + "}\n"
	}
	p := Diff(Expand(mustParse(t, src)), &Definitions{}, nil, PlanOptions{})
	r := &recorder{}
	if _, err := Apply(context.Background(), r, p, nil); err != nil {
		t.Fatal(err)
	}
	if len(r.imports) != 2 || len(r.imports[0].Queues) != ImportBatch || len(r.imports[1].Queues) != 10 {
		t.Errorf("imports: %d batches", len(r.imports))
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	s := ""
	for ; i > 0; i /= 10 {
		s = string(rune('0'+i%10)) + s
	}
	return s
}
