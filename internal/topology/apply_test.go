package topology

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/mqctl/mqctl/internal/fail"
)

// recorder is a Broker that records calls and keeps what it imported, so
// that apply's read-back finds it; apply's ordering, refusals and reports
// are pure logic (the broker behaviour itself is tested against real
// brokers in internal/cli and broker_test.go). skip names objects an
// import answers for but leaves out (as 4.3 does with a denied
// x-queue-master-locator); fail names objects an import refuses with a 400
// after creating the others (as RabbitMQ does).
type recorder struct {
	calls   []string
	refuse  map[string]string
	inUse   map[string]string
	imports []*Definitions
	live    Definitions
	skip    map[string]bool
	fail    map[string]string
	reads   int
	// cutAfter, when > 0, makes the import of that many objects or more
	// run out of time after the broker created the first cutAfter.
	cutAfter int
}

func (r *recorder) Definitions(context.Context, string) (*Definitions, error) {
	r.reads++
	d := r.live
	return &d, nil
}
func (r *recorder) QueueStates(context.Context, string) (map[string]QueueState, error) {
	return nil, nil
}
func (r *recorder) Import(_ context.Context, _ string, d *Definitions) error {
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
	if r.cutAfter > 0 && len(d.Queues) >= r.cutAfter {
		r.live.Queues = append(r.live.Queues, d.Queues[:r.cutAfter]...)
		return fmt.Errorf("the broker did not finish the import: %w", ErrImportCut)
	}
	var failed string
	keep := func(name string) bool {
		if why, ok := r.fail[name]; ok {
			failed = why
			return false
		}
		return !r.skip[name]
	}
	for _, e := range d.Exchanges {
		if keep(e.Name) {
			r.live.Exchanges = append(r.live.Exchanges, e)
		}
	}
	for _, q := range d.Queues {
		if keep(q.Name) {
			r.live.Queues = append(r.live.Queues, q)
		}
	}
	for _, b := range d.Bindings {
		if keep(b.Destination) {
			r.live.Bindings = append(r.live.Bindings, b)
		}
	}
	for _, p := range d.Policies {
		if keep(p.Name) {
			r.live.Policies = append(r.live.Policies, p)
		}
	}
	if failed != "" {
		return rabbithole.ErrorResponse{StatusCode: 400, Message: "bad_request", Reason: failed}
	}
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
func (r *recorder) QueueInUse(_ context.Context, _, n string) (string, error) {
	return r.inUse[n], nil
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
	want := []string{"import policy", "import exchange", "import queue", "import binding",
		"delete binding oldx", "delete policy oldp", "delete exchange oldx", "delete queue old", "keep queue raced"}
	if !reflect.DeepEqual(r.calls, want) {
		t.Errorf("calls = %v\nwant %v", r.calls, want)
	}
	if res.Applied != 10 || res.Deleted != 4 || !reflect.DeepEqual(res.Kept, []string{"raced"}) || done != p.Work() {
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
	if r.reads != 1 {
		t.Errorf("%d definitions reads for one kind in two batches, want 1", r.reads)
	}
}

// An import whose request ran out of time goes on in the broker: apply
// reads back what it had created so far and says so, without a list of
// thousands of names.
func TestApplyReadsBackAfterACutImport(t *testing.T) {
	src := "apiVersion: mqctl/v1\nvhost: v\nqueues:\n"
	for i := 0; i < 40; i++ {
		src += "  - {name: q" + itoa(i) + "}\n"
	}
	p := Diff(Expand(mustParse(t, src)), &Definitions{}, nil, PlanOptions{})
	r := &recorder{cutAfter: 25}
	res, err := Apply(context.Background(), r, p, nil)
	var ie *ImportError
	if !errors.As(err, &ie) || !ie.Cut || !errors.Is(err, ErrImportCut) {
		t.Fatalf("err = %v, want a cut *ImportError", err)
	}
	if r.reads != 1 || len(ie.Created) != 25 || len(ie.Missing) != 15 || res.Applied != 25 {
		t.Errorf("reads %d, created %d, missing %d, applied %d", r.reads, len(ie.Created), len(ie.Missing), res.Applied)
	}
	msg := err.Error()
	for _, want := range []string{"the broker had created 25 of them so far", "15 not yet (queue q", "and 10 more", "--import-timeout"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
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

// After each import apply reads the vhost back once and names every
// object the broker skipped, with its likely cause.
func TestApplyReportsSkippedObjects(t *testing.T) {
	src := `apiVersion: mqctl/v1
vhost: v
exchanges: [{name: e, type: topic}]
queues:
  - {name: a, type: classic}
  - {name: old, type: classic, arguments: {x-queue-master-locator: min-masters}}
  - {name: temp, type: classic, durable: false}
  - {name: z, type: classic}
`
	p := Diff(Expand(mustParse(t, src)), &Definitions{}, nil, PlanOptions{})
	r := &recorder{skip: map[string]bool{"old": true, "temp": true}}
	res, err := Apply(context.Background(), r, p, nil)
	var ie *ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v, want an *ImportError", err)
	}
	if k, _ := fail.KindOf(err); k != fail.Operational {
		t.Errorf("kind %v, want operational (exit 1)", k)
	}
	if ie.Err != nil || ie.Kind != KindQueue || ie.Sent != 4 || len(ie.Missing) != 2 || len(ie.Created) != 2 || ie.AppliedBefore != 1 {
		t.Fatalf("import error: %+v", ie)
	}
	if res.Applied != 3 {
		t.Errorf("applied %d, want 3 (the exchange and two queues)", res.Applied)
	}
	if r.reads != 2 {
		t.Errorf("%d definitions reads for 2 imports, want one each", r.reads)
	}
	if len(r.imports) != 2 {
		t.Errorf("apply went on after the skip: %v", r.calls)
	}
	msg := err.Error()
	for _, want := range []string{
		"with success but did not create 2 of them",
		"queue old: likely denied by the broker's deprecated-feature settings (queue_master_locator",
		"use x-queue-leader-locator: balanced",
		"queue temp: likely denied by the broker's deprecated-feature settings (transient_nonexcl_queues)",
		"created in the same import: queue a, queue z",
		"1 object(s) were applied by earlier imports",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

// A refused import (400) may have created some of its objects: apply reads
// back which, and says so with the broker's own text.
func TestApplyReportsWhatAFailedImportCreated(t *testing.T) {
	src := "apiVersion: mqctl/v1\nvhost: v\nqueues: [{name: m1}, {name: m2}, {name: m3}]\n"
	p := Diff(Expand(mustParse(t, src)), &Definitions{}, nil, PlanOptions{})
	r := &recorder{fail: map[string]string{"m2": "precondition_failed: invalid arg &#39;x-max-priority&#39; for queue &#39;m2&#39;"}}
	res, err := Apply(context.Background(), r, p, nil)
	var ie *ImportError
	if !errors.As(err, &ie) || ie.Err == nil {
		t.Fatalf("err = %v, want an *ImportError with the broker's error", err)
	}
	if res.Applied != 2 {
		t.Errorf("applied %d, want 2", res.Applied)
	}
	msg := err.Error()
	for _, want := range []string{
		"import of 3 queue definition(s) into vhost v failed: HTTP 400 bad_request: precondition_failed: invalid arg 'x-max-priority' for queue 'm2'",
		"the broker still created 2 of them: queue m1, queue m3",
		"not created: queue m2",
		"an apply is not atomic",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "&#39;") {
		t.Errorf("error keeps HTML escapes:\n%s", msg)
	}
}

// A binding the broker dropped because its queue is gone (deleted since
// the plan; 3.10 answers 204 for that) is named with that cause.
func TestApplySkippedBindingNamesItsMissingQueue(t *testing.T) {
	src := "apiVersion: mqctl/v1\nvhost: v\nexchanges: [{name: e, type: topic}]\nqueues: [{name: q, bindings: [{exchange: e, routing_key: k}]}]\n"
	x := Expand(mustParse(t, src))
	p := Diff(x, &Definitions{Exchanges: x.Defs.Exchanges, Queues: x.Defs.Queues}, nil, PlanOptions{})
	r := &recorder{live: Definitions{Exchanges: x.Defs.Exchanges}, skip: map[string]bool{"q": true}}
	_, err := Apply(context.Background(), r, p, nil)
	if err == nil || !strings.Contains(err.Error(), "binding e → queue q [k]: its destination queue q does not exist") {
		t.Fatalf("err = %v, want the skipped binding named with its cause", err)
	}
}

// An import's own limit grows with its size, and more with each quorum
// queue or stream (each starts a replicated log, and a busy broker took
// up to 45 s for 500 of them) and each policy (a busy broker took over
// 40 s for 500).
func TestImportTimeoutWeighsReplicatedQueuesAndPolicies(t *testing.T) {
	classic := &Definitions{}
	quorum := &Definitions{}
	policies := &Definitions{}
	for i := range 500 {
		classic.Queues = append(classic.Queues, DefQueue{Name: fmt.Sprint("c", i)})
		quorum.Queues = append(quorum.Queues, DefQueue{Name: fmt.Sprint("q", i), Arguments: map[string]any{"x-queue-type": "quorum"}})
		policies.Policies = append(policies.Policies, DefPolicy{Name: fmt.Sprint("p", i)})
	}
	for _, c := range []struct {
		timeout time.Duration
		defs    *Definitions
		want    time.Duration
	}{
		{10 * time.Second, &Definitions{}, 30 * time.Second},
		{10 * time.Second, classic, 40 * time.Second},
		{10 * time.Second, quorum, 130 * time.Second},
		{10 * time.Second, policies, 80 * time.Second},
		{time.Minute, classic, 70 * time.Second},
	} {
		if got := ImportTimeout(c.timeout, c.defs); got != c.want {
			t.Errorf("ImportTimeout(%v, %d queues) = %v, want %v", c.timeout, len(c.defs.Queues), got, c.want)
		}
	}
}
