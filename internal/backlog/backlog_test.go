package backlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mqctl/mqctl/internal/deadletter"
)

// fakeSource serves a fixed snapshot in pages and counts calls.
type fakeSource struct {
	snap      Snapshot
	mu        sync.Mutex
	pageCalls []int
	failPage  int
	// wholeErr is the error of a read of the whole list (page 0);
	// bindErr that of the bindings read.
	wholeErr, bindErr error
}

// timeout is what an HTTP client's timeout looks like to FetchQueues.
type timeout struct{}

func (timeout) Error() string { return "Client.Timeout exceeded while awaiting headers" }
func (timeout) Timeout() bool { return true }

// slowAPI is a management API whose reads listed in slow run out of time
// unless given extra time (GetJSONAllowing); it records every read.
type slowAPI struct {
	mu   sync.Mutex
	slow map[string]bool
	// always are slow reads that run out of even the extra time.
	always map[string]bool
	fail   map[string]error // an answer other than a timeout
	reads  []string         // path, "+" when read with extra time
	extra  time.Duration
	// probeAfter is ProbeAfter's answer (Timeout is twice it); with
	// blackHole the overview never answers, and slow reads time out only
	// once it was asked.
	probeAfter time.Duration
	blackHole  bool
	asked      chan struct{}
	askedOnce  sync.Once
}

func (a *slowAPI) Timeout() time.Duration { return 2 * a.probeAfter }

func (a *slowAPI) GetJSON(ctx context.Context, path string, q url.Values, v any) error {
	return a.read(ctx, paged(path, q), v, 0)
}

func (a *slowAPI) GetJSONAllowing(ctx context.Context, path string, q url.Values, v any, extra time.Duration) error {
	return a.read(ctx, paged(path, q), v, extra)
}

func (a *slowAPI) queues() string {
	return `[{"vhost":"v","name":"work","arguments":{"x-dead-letter-exchange":"work.dlx"},"messages_ready":1,"messages_unacknowledged":0},{"vhost":"v","name":"work.dlq","messages_ready":0,"messages_unacknowledged":0}]`
}

// paged names a page read path?page=N.
func paged(path string, q url.Values) string {
	if p := q.Get("page"); p != "" {
		return path + "?page=" + p
	}
	return path
}

func (a *slowAPI) read(ctx context.Context, path string, v any, extra time.Duration) error {
	if a.blackHole {
		if path == "overview" {
			a.askedOnce.Do(func() { close(a.asked) })
			<-ctx.Done()
			return ctx.Err()
		}
		<-a.asked
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if extra > 0 {
		a.reads, a.extra = append(a.reads, path+"+"), extra
	} else {
		a.reads = append(a.reads, path)
	}
	key := path
	if extra > 0 {
		key += "+"
	}
	if err := a.fail[key]; err != nil {
		return err
	}
	if a.slow[path] && (extra == 0 || a.always[path]) {
		return fmt.Errorf("get %s: %w", path, timeout{})
	}
	body := map[string]string{
		"overview":    `{"object_totals":{"queues":5000,"exchanges":2514,"channels":0}}`,
		"queues/v":    a.queues(),
		"bindings/v":  `[{"vhost":"v","source":"work.dlx","destination":"work.dlq","destination_type":"queue","routing_key":"work"}]`,
		"exchanges/v": `[{"vhost":"v","name":"work.dlx","type":"fanout"}]`,
	}[path]
	if path == "queues/v?page=1" {
		body = `{"page_count":1,"items":` + a.queues() + `}`
	}
	return json.Unmarshal([]byte(body), v)
}

// A read that runs out of time is read once more, with time for the
// broker's size, after the API answered how large the broker is; a read
// refused, or an API that answers nothing, is never read twice.
func TestListsThatRunOutOfTimeAreReadAgainWithTimeForTheBrokersSize(t *testing.T) {
	for _, tc := range []struct {
		name      string
		slow      []string
		fail      map[string]error
		always    bool // the slow reads run out of the extra time too
		wantReads []string
		wantErr   string
	}{
		{name: "answered", wantReads: []string{"bindings/v", "exchanges/v", "queues/v"}},
		{name: "queue list too large", slow: []string{"queues/v"},
			wantReads: []string{"bindings/v", "exchanges/v", "overview", "queues/v", "queues/v+"}},
		{name: "every list too large", slow: []string{"queues/v", "bindings/v", "exchanges/v"},
			wantReads: []string{"bindings/v", "bindings/v+", "exchanges/v+", "overview", "queues/v", "queues/v+"}},
		{name: "black hole", slow: []string{"queues/v", "bindings/v", "exchanges/v", "overview"},
			wantReads: []string{"bindings/v", "overview", "queues/v"}, wantErr: "Timeout"},
		{name: "refused", fail: map[string]error{"queues/v": errors.New("HTTP 401")},
			wantReads: []string{"bindings/v", "exchanges/v", "queues/v"}, wantErr: "HTTP 401"},
		{name: "too large even then: pages", slow: []string{"queues/v"}, always: true,
			wantReads: []string{"bindings/v", "exchanges/v", "overview", "queues/v", "queues/v+", "queues/v?page=1+"}},
		{name: "cut by the API: pages", slow: []string{"queues/v"}, fail: map[string]error{"queues/v+": fmt.Errorf("get: %w", io.EOF)},
			wantReads: []string{"bindings/v", "exchanges/v", "overview", "queues/v", "queues/v+", "queues/v?page=1+"}},
		{name: "even pages too slow", slow: []string{"queues/v", "queues/v?page=1"}, always: true,
			wantReads: []string{"bindings/v", "exchanges/v", "overview", "queues/v", "queues/v+", "queues/v?page=1+"}, wantErr: "page 1"},
	} {
		api := &slowAPI{slow: map[string]bool{}, always: map[string]bool{}, fail: tc.fail, probeAfter: time.Hour}
		for _, p := range tc.slow {
			api.slow[p], api.always[p] = true, tc.always
		}
		snap, err := Fetch(context.Background(), HTTPSource{API: api, NoRates: true}, "v", 0)
		slices.Sort(api.reads)
		if !slices.Equal(api.reads, tc.wantReads) {
			t.Errorf("%s: reads %v, want %v", tc.name, api.reads, tc.wantReads)
		}
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err %v, want one saying %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if d := snap.Graph().DLQs(); len(snap.Queues) != 2 || len(d) != 1 || d[0].Name != "work.dlq" {
			t.Errorf("%s: %d queues, DLQs %+v: want both queues and work.dlq linked", tc.name, len(snap.Queues), d)
		}
		if len(tc.slow) > 0 && api.extra != (5000+2514)*PerObject {
			t.Errorf("%s: extra time %s, want %s (PerObject for each queue and exchange)", tc.name, api.extra, (5000+2514)*PerObject)
		}
	}

	// A black hole: the question of its size, asked beside the lists,
	// has no answer when they run out of time, and Fetch ends there
	// instead of waiting for it.
	hole := &slowAPI{slow: map[string]bool{"queues/v": true, "bindings/v": true}, blackHole: true, asked: make(chan struct{}), probeAfter: time.Nanosecond}
	if _, err := Fetch(context.Background(), HTTPSource{API: hole}, "v", 0); err == nil || !strings.Contains(err.Error(), "Timeout") {
		t.Errorf("black hole, asked beside: err %v, want the lists' timeout", err)
	}

	// FetchQueues alone retries the same way.
	api := &slowAPI{slow: map[string]bool{"queues/v": true}, probeAfter: time.Hour}
	if qs, err := FetchQueues(context.Background(), HTTPSource{API: api}, "v", 0); err != nil || len(qs) != 2 {
		t.Errorf("FetchQueues: %d queues, err %v", len(qs), err)
	}
}

func (f *fakeSource) QueuePage(ctx context.Context, vhost string, page, size int) (Page, error) {
	f.mu.Lock()
	f.pageCalls = append(f.pageCalls, page)
	f.mu.Unlock()
	if f.failPage > 0 && page == f.failPage {
		return Page{}, errors.New("boom")
	}
	if page == 0 {
		if f.wholeErr != nil {
			return Page{}, f.wholeErr
		}
		return Page{Queues: f.snap.Queues, PageCount: 1}, nil
	}
	n := len(f.snap.Queues)
	pc := (n + size - 1) / size
	lo, hi := min((page-1)*size, n), min(page*size, n)
	return Page{Queues: f.snap.Queues[lo:hi], PageCount: pc}, nil
}

func (f *fakeSource) Bindings(context.Context, string) ([]deadletter.Binding, error) {
	return f.snap.Bindings, f.bindErr
}
func (f *fakeSource) Exchanges(context.Context, string) ([]deadletter.Exchange, error) {
	return f.snap.Exchanges, nil
}

func TestFetchReadsEveryPageOnce(t *testing.T) {
	defer goleak.VerifyNone(t) // page readers end, also after a failed page
	var qs []QueueStat
	for i := range 1234 {
		qs = append(qs, QueueStat{Vhost: "v", Name: fmt.Sprintf("q%04d", i)})
	}
	src := &fakeSource{snap: Snapshot{Queues: qs}}
	snap, err := Fetch(context.Background(), src, "v", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Queues) != 1234 {
		t.Fatalf("got %d queues, want 1234", len(snap.Queues))
	}
	for i, q := range snap.Queues {
		if q.Name != fmt.Sprintf("q%04d", i) {
			t.Fatalf("queue %d is %s: pages out of order", i, q.Name)
		}
	}
	slices.Sort(src.pageCalls)
	if want := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}; !reflect.DeepEqual(src.pageCalls, want) {
		t.Errorf("pages read %v, want %v", src.pageCalls, want)
	}

	src = &fakeSource{snap: Snapshot{Queues: qs}, failPage: 7}
	if _, err := Fetch(context.Background(), src, "v", 100); err == nil || !strings.Contains(err.Error(), "page 7") {
		t.Errorf("failing page: err = %v", err)
	}
	// Out-of-range page sizes fall back to the API's maximum.
	src = &fakeSource{snap: Snapshot{Queues: qs}}
	if _, err := Fetch(context.Background(), src, "v", 5000); err != nil || len(src.pageCalls) != 3 {
		t.Errorf("page size 5000: %v, %d calls", err, len(src.pageCalls))
	}
}

func TestFetchDeduplicatesShiftedPages(t *testing.T) {
	// A queue created between two page reads pushes the last item of page
	// 1 onto page 2.
	src := &shiftingSource{}
	snap, err := Fetch(context.Background(), src, "v", 2)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, q := range snap.Queues {
		names = append(names, q.Name)
	}
	if want := []string{"a", "b", "c"}; !reflect.DeepEqual(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
}

type shiftingSource struct{ fakeSource }

func (s *shiftingSource) QueuePage(_ context.Context, _ string, page, _ int) (Page, error) {
	if page == 1 {
		return Page{Queues: []QueueStat{{Vhost: "v", Name: "a"}, {Vhost: "v", Name: "b"}}, PageCount: 2}, nil
	}
	return Page{Queues: []QueueStat{{Vhost: "v", Name: "b"}, {Vhost: "v", Name: "c"}}, PageCount: 2}, nil
}

// topology: the retry pattern for email, a policy DLX for points, a
// hand-made pattern for coupon, a topic DLX for audit, a quorum queue
// below quorum.
func testSnapshot() Snapshot {
	ts := time.Date(2026, 1, 1, 11, 59, 0, 0, time.UTC)
	s := Snapshot{
		Taken: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC),
		Queues: []QueueStat{
			{Vhost: "v", Name: "email", Type: "quorum", State: "running", Ready: ptr(5), Unacked: ptr(2), Consumers: ptr(0),
				Arguments: map[string]any{"x-dead-letter-exchange": "email.dlx", "x-dead-letter-routing-key": "email"},
				Leader:    "n1", Members: []string{"n1", "n2", "n3"}, Online: []string{"n1"}},
			{Vhost: "v", Name: "email.retry.1", Type: "quorum", Ready: ptr(3),
				Arguments: map[string]any{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "email"}},
			{Vhost: "v", Name: "email.dlq", Type: "classic", Ready: ptr(4)},
			{Vhost: "v", Name: "points", Type: "classic", Ready: ptr(10), Consumers: ptr(2), HeadStamp: &ts, Publish: ptr(1.5), Deliver: ptr(2.5),
				Policy: map[string]any{"dead-letter-exchange": "graveyard"}},
			{Vhost: "v", Name: "points.dead", Type: "classic"},
			{Vhost: "v", Name: "coupon", Type: "classic", Ready: ptr(0), Consumers: ptr(1)},
			{Vhost: "v", Name: "coupon.dlq", Type: "classic", Ready: ptr(0)},
			{Vhost: "v", Name: "audit", Type: "classic", Ready: ptr(1), Consumers: ptr(1),
				Arguments: map[string]any{"x-dead-letter-exchange": "dead.topic", "x-dead-letter-routing-key": "audit.failed"}},
			{Vhost: "v", Name: "audit.failures", Type: "classic", Ready: ptr(7)},
			{Vhost: "v", Name: "other.failures", Type: "classic", Ready: ptr(100)},
		},
		Exchanges: []deadletter.Exchange{{Vhost: "v", Name: "email.dlx", Type: "direct"}, {Vhost: "v", Name: "graveyard", Type: "fanout"}, {Vhost: "v", Name: "dead.topic", Type: "topic"}},
		Bindings: []deadletter.Binding{
			{Vhost: "v", Source: "email.dlx", Queue: "email.dlq", RoutingKey: "email"},
			{Vhost: "v", Source: "email.dlx", Queue: "other.failures", RoutingKey: "not-email"},
			{Vhost: "v", Source: "graveyard", Queue: "points.dead", RoutingKey: "whatever"},
			{Vhost: "v", Source: "dead.topic", Queue: "audit.failures", RoutingKey: "audit.#"},
			{Vhost: "v", Source: "dead.topic", Queue: "other.failures", RoutingKey: "billing.*"},
		},
	}
	for i := range s.Queues {
		s.Queues[i] = sampled(s.Queues[i])
	}
	return s
}

// sampled gives a queue the figures a broker with metrics collection on
// reports: counts, consumers and rates default to 0, not unknown.
func sampled(q QueueStat) QueueStat {
	zero := func(n **int) {
		if *n == nil {
			*n = ptr(0)
		}
	}
	zero(&q.Ready)
	zero(&q.Unacked)
	zero(&q.Consumers)
	for _, r := range []**float64{&q.Publish, &q.Deliver, &q.Ack} {
		if *r == nil {
			*r = ptr(0.0)
		}
	}
	return q
}

func row(t *testing.T, rep Report, name string) Row {
	t.Helper()
	for _, r := range rep.Queues {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no row %s", name)
	return Row{}
}

func TestBuildLinksDLQs(t *testing.T) {
	rep := Build(testSnapshot(), "v", NewMatcher(nil), SortReady)
	cases := []struct {
		queue  string
		link   *deadletter.Link
		role   deadletter.Role
		dlqMsg int
	}{
		{"email", &deadletter.Link{Source: deadletter.SourceArguments, Exchange: "email.dlx", RoutingKey: "email", Queues: []string{"email.dlq"}}, deadletter.RoleWork, 4},
		{"email.retry.1", nil, deadletter.RoleRetry, 0},
		{"email.dlq", nil, deadletter.RoleDLQ, 0},
		{"points", &deadletter.Link{Source: deadletter.SourcePolicy, Exchange: "graveyard", RoutingKey: "", Queues: []string{"points.dead"}}, deadletter.RoleWork, 0},
		{"points.dead", nil, deadletter.RoleDLQ, 0},
		{"coupon", &deadletter.Link{Source: deadletter.SourcePattern, Exchange: "coupon.dlx", RoutingKey: "coupon", Queues: []string{"coupon.dlq"}}, deadletter.RoleWork, 0},
		{"audit", &deadletter.Link{Source: deadletter.SourceArguments, Exchange: "dead.topic", RoutingKey: "audit.failed", Queues: []string{"audit.failures"}}, deadletter.RoleWork, 7},
		{"other.failures", nil, deadletter.RoleWork, 0},
	}
	for _, c := range cases {
		r := row(t, rep, c.queue)
		if !reflect.DeepEqual(r.DeadLetter, c.link) || r.Role != c.role || r.DLQMessages == nil || *r.DLQMessages != c.dlqMsg {
			t.Errorf("%s: link %+v role %s dlq %v; want %+v %s %d", c.queue, r.DeadLetter, r.Role, r.DLQMessages, c.link, c.role, c.dlqMsg)
		}
	}
	if d := row(t, rep, "email").DLQs; !reflect.DeepEqual(d, []DLQ{{"email.dlq", ptr(4)}}) {
		t.Errorf("email dlqs %v", d)
	}
}

func TestBuildWarningsSortAndSummary(t *testing.T) {
	rep := Build(testSnapshot(), "v", NewMatcher(nil), SortReady)
	var order []string
	for _, r := range rep.Queues {
		order = append(order, r.Name)
	}
	want := []string{"other.failures", "points", "audit.failures", "email", "email.dlq", "email.retry.1", "audit", "coupon", "coupon.dlq", "points.dead"}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("order %v\nwant  %v", order, want)
	}
	warn := map[string][]Warning{
		"email":          {WarnNoConsumer, WarnDLQNotEmpty, WarnBelowQuorum},
		"email.dlq":      {WarnDLQNotEmpty},
		"email.retry.1":  {}, // no consumer by design
		"other.failures": {WarnNoConsumer},
		"points":         {},
		"audit":          {WarnDLQNotEmpty},
		"audit.failures": {WarnDLQNotEmpty},
	}
	for q, w := range warn {
		if got := row(t, rep, q).Warnings; !reflect.DeepEqual(got, w) {
			t.Errorf("%s warnings %v, want %v", q, got, w)
		}
	}
	// email.dlq 4 + points.dead 0 + coupon.dlq 0 + audit.failures 7, each once.
	wantSum := Summary{Queues: 10, Messages: ptr(132), Ready: ptr(130), Unacked: ptr(2), DLQMessages: ptr(11), Warnings: 5}
	if !reflect.DeepEqual(rep.Summary, wantSum) {
		t.Errorf("summary %+v, want %+v", rep.Summary, wantSum)
	}
	p := row(t, rep, "points")
	if p.OldestMessageAgeSeconds == nil || *p.OldestMessageAgeSeconds != 60 || *p.PublishRate != 1.5 || *p.DeliverRate != 2.5 {
		t.Errorf("points age/rates: %+v", p)
	}
	if e := row(t, rep, "email"); e.MembersOnline != 1 || e.Leader != "n1" || len(e.Members) != 3 {
		t.Errorf("email quorum fields %+v", e)
	}

	rep = Build(testSnapshot(), "v", NewMatcher([]string{"email*", "coup?n"}), SortName)
	order = nil
	for _, r := range rep.Queues {
		order = append(order, r.Name)
	}
	if want := []string{"coupon", "email", "email.dlq", "email.retry.1"}; !reflect.DeepEqual(order, want) {
		t.Errorf("globbed %v, want %v", order, want)
	}
	if rep.Summary.DLQMessages == nil || *rep.Summary.DLQMessages != 4 {
		t.Errorf("globbed dlq messages %v, want 4 (email.dlq once)", rep.Summary.DLQMessages)
	}
}

func TestJSONFieldsAlwaysPresent(t *testing.T) {
	rep := Build(Snapshot{Queues: []QueueStat{sampled(QueueStat{Vhost: "v", Name: "q", Type: "classic"})}}, "v", NewMatcher(nil), SortReady)
	b, _ := json.Marshal(rep.Queues[0])
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"vhost", "name", "type", "state", "role", "ready", "unacked", "messages", "consumers",
		"publish_rate", "deliver_rate", "ack_rate", "oldest_message_at", "oldest_message_age_seconds",
		"dead_letter", "dlqs", "dlq_messages", "leader", "members", "online", "members_online", "warnings"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %s missing: %s", k, b)
		}
	}
	for _, k := range []string{"dlqs", "members", "online", "warnings"} {
		if m[k] == nil {
			t.Errorf("%s is null, want []", k)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestEvaluateEveryGateBothWays(t *testing.T) {
	rep := Build(testSnapshot(), "v", NewMatcher([]string{"points", "email"}), SortReady)
	// points: 10 ready, 0 unacked, 2 consumers, oldest 60 s, DLQ empty.
	// email: 5 ready, 2 unacked, 0 consumers, quorum (no age), DLQ 4.
	cases := []struct {
		name   string
		limits Limits
		want   []string // queue/check of each violation
	}{
		{"ready holds", Limits{MaxReady: ptr(10)}, nil},
		{"ready violated", Limits{MaxReady: ptr(9)}, []string{"points/max_ready"}},
		{"unacked holds", Limits{MaxUnacked: ptr(2)}, nil},
		{"unacked violated", Limits{MaxUnacked: ptr(1)}, []string{"email/max_unacked"}},
		{"dlq holds", Limits{MaxDLQ: ptr(4)}, nil},
		{"dlq violated", Limits{MaxDLQ: ptr(3)}, []string{"email/max_dlq"}},
		{"consumers hold", Limits{MinConsumers: ptr(0)}, nil},
		{"consumers violated", Limits{MinConsumers: ptr(1)}, []string{"email/min_consumers"}},
		{"age holds", Limits{MaxAge: ptr(time.Minute)}, nil},
		{"age violated", Limits{MaxAge: ptr(59 * time.Second)}, []string{"points/max_age"}},
		{"age required", Limits{MaxAge: ptr(time.Hour), RequireAge: true}, []string{"email/max_age"}},
	}
	for _, c := range cases {
		v := Evaluate(rep, c.limits, nil)
		var got []string
		for _, x := range v.Violations {
			got = append(got, x.Queue+"/"+string(x.Check))
		}
		if !reflect.DeepEqual(got, c.want) || v.OK != (len(c.want) == 0) || v.Checked != 2 {
			t.Errorf("%s: violations %v ok %v checked %d, want %v", c.name, got, v.OK, v.Checked, c.want)
		}
	}
	v := Evaluate(rep, Limits{MaxAge: ptr(time.Hour)}, nil)
	if len(v.Unchecked) != 1 || v.Unchecked[0].Queue != "email" || !strings.Contains(v.Unchecked[0].Reason, "quorum") {
		t.Errorf("unknown age should be reported as unchecked: %+v", v.Unchecked)
	}
	v = Evaluate(rep, Limits{MaxDLQ: ptr(3)}, nil)
	if x := v.Violations[0]; x.Actual != 4 || x.Limit != 3 || !strings.Contains(x.Message, "email.dlq holds 4") {
		t.Errorf("dlq violation %+v", x)
	}
	v = Evaluate(rep, Limits{}, []string{"emial"})
	if v.OK || v.Violations[0].Check != CheckMatch {
		t.Errorf("unmatched glob: %+v", v)
	}
	// A matched DLQ is gated by --max-dlq, once, even when its origin is
	// matched too.
	rep = Build(testSnapshot(), "v", NewMatcher([]string{"email*"}), SortReady)
	v = Evaluate(rep, Limits{MaxDLQ: ptr(0), MaxReady: ptr(0), MinConsumers: ptr(1)}, nil)
	var got []string
	for _, x := range v.Violations {
		got = append(got, x.Queue+"/"+string(x.Check))
	}
	if want := []string{"email/max_dlq", "email/max_ready", "email/min_consumers"}; !reflect.DeepEqual(got, want) {
		t.Errorf("email*: %v, want %v", got, want)
	}
}

func TestMatcherUnmatched(t *testing.T) {
	m := NewMatcher([]string{"a.*", "b?", "[x]"})
	if !m.Match("a.b/c") || !m.Match("bc") || m.Match("b") || !m.Match("[x]") {
		t.Error("match semantics")
	}
	if got := m.Unmatched([]string{"a.1"}); !reflect.DeepEqual(got, []string{"b?", "[x]"}) {
		t.Errorf("unmatched %v", got)
	}
}

func TestHistoryTrend(t *testing.T) {
	h := NewHistory(4)
	for _, n := range []int{0, 4, 8, 2, 6} {
		h.Record(Report{Queues: []Row{{Vhost: "v", Name: "q", Ready: ptr(n)}}})
	}
	r := Row{Vhost: "v", Name: "q"}
	if h.Delta(r) != 4 || h.Arrow(r) != "↑" {
		t.Errorf("delta %d arrow %s", h.Delta(r), h.Arrow(r))
	}
	if s := h.Sparkline(r); s != "▃█▁▅" {
		t.Errorf("sparkline %q", s)
	}
	h.Record(Report{Queues: []Row{{Vhost: "v", Name: "q", Ready: ptr(1)}}})
	if h.Arrow(r) != "↓" {
		t.Error("want ↓")
	}
	h.Record(Report{})
	if h.Arrow(r) != "→" || h.Sparkline(r) != "" {
		t.Error("a queue gone from the report should be forgotten")
	}
}

// fakeGetter returns canned JSON per path.
type fakeGetter map[string]string

func (g fakeGetter) GetJSON(_ context.Context, path string, q url.Values, v any) error {
	if q.Get("enable_queue_totals") == "true" {
		if q.Get("disable_stats") != "true" || q.Get("columns") != totalsColumns {
			return fmt.Errorf("bad totals query %v", q)
		}
		path += "#totals"
	}
	body, ok := g[path]
	if !ok {
		return fmt.Errorf("unexpected path %s", path)
	}
	if path == "queues/a%2Fb" && (q.Has("page") || !strings.Contains(q.Get("columns"), "head_message_timestamp") ||
		!strings.Contains(q.Get("columns"), "message_stats.ack_details.rate")) {
		return fmt.Errorf("bad query %v", q)
	}
	if strings.HasPrefix(path, "queues/") && !q.Has("page") {
		// Without page the API sends the whole list as an array.
		var pg struct{ Items json.RawMessage }
		if err := json.Unmarshal([]byte(body), &pg); err != nil {
			return err
		}
		body = string(pg.Items)
	}
	return json.Unmarshal([]byte(body), v)
}

func TestHTTPSourceDecodes(t *testing.T) {
	g := fakeGetter{
		"queues/a%2Fb": `{"page_count":1,"items":[
			{"vhost":"a/b","name":"c","type":"classic","state":"running","arguments":[],"effective_policy_definition":{"dead-letter-exchange":"d"},
			 "messages_ready":3,"messages_unacknowledged":1,"consumers":2,"head_message_timestamp":1700000000,
			 "message_stats":{"publish_details":{"rate":1.5},"deliver_get_details":{"rate":2},"ack_details":{"rate":0.5}}},
			{"vhost":"a/b","name":"q","type":"quorum","arguments":{"x-queue-type":"quorum"},"effective_policy_definition":[],
			 "head_message_timestamp":"","leader":"n1","members":["n1","n2"],"online":["n1"]}]}`,
		// q has no statistics: its counts come from queue totals.
		"queues/a%2Fb#totals": `{"page_count":1,"items":[{"vhost":"a/b","name":"c","messages_ready":3,"messages_unacknowledged":1},
			{"vhost":"a/b","name":"q","messages_ready":4,"messages_unacknowledged":0}]}`,
		"bindings/a%2Fb":  `[{"vhost":"a/b","source":"","destination":"c","destination_type":"queue","routing_key":"c"},{"vhost":"a/b","source":"d","destination":"c","destination_type":"queue","routing_key":"k"},{"vhost":"a/b","source":"d","destination":"e","destination_type":"exchange","routing_key":"k"}]`,
		"exchanges/a%2Fb": `[{"vhost":"a/b","name":"d","type":"fanout"}]`,
	}
	snap, err := Fetch(context.Background(), HTTPSource{API: g}, "a/b", 0)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 0).UTC()
	want := []QueueStat{
		{Vhost: "a/b", Name: "c", Type: "classic", State: "running", Policy: map[string]any{"dead-letter-exchange": "d"},
			Ready: ptr(3), Unacked: ptr(1), Consumers: ptr(2), Publish: ptr(1.5), Deliver: ptr(2.0), Ack: ptr(0.5), HeadStamp: &ts},
		{Vhost: "a/b", Name: "q", Type: "quorum", Arguments: map[string]any{"x-queue-type": "quorum"},
			Ready: ptr(4), Unacked: ptr(0), Leader: "n1", Members: []string{"n1", "n2"}, Online: []string{"n1"}},
	}
	if !reflect.DeepEqual(snap.Queues, want) {
		t.Errorf("queues\n%+v\nwant\n%+v", snap.Queues, want)
	}
	if want := []deadletter.Binding{{Vhost: "a/b", Source: "d", Queue: "c", RoutingKey: "k"}}; !reflect.DeepEqual(snap.Bindings, want) {
		t.Errorf("bindings %+v", snap.Bindings)
	}
	if want := []deadletter.Exchange{{Vhost: "a/b", Name: "d", Type: "fanout"}}; !reflect.DeepEqual(snap.Exchanges, want) {
		t.Errorf("exchanges %+v", snap.Exchanges)
	}
	if _, err := Fetch(context.Background(), HTTPSource{API: fakeGetter{}}, "", 0); err == nil {
		t.Error("all vhosts: expected the fake to refuse unknown paths")
	}
}

func TestHTTPSourceNoRatesAsksForFewerColumns(t *testing.T) {
	var asked string
	g := getterFunc(func(q url.Values, v any) error {
		asked = q.Get("columns")
		return json.Unmarshal([]byte(`{"page_count":1,"items":[]}`), v)
	})
	if _, err := (HTTPSource{API: g, NoRates: true}).QueuePage(context.Background(), "v", 1, 500); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(asked, "message_stats") || !strings.Contains(asked, "consumers") {
		t.Errorf("columns %q", asked)
	}
}

type getterFunc func(url.Values, any) error

func (f getterFunc) GetJSON(_ context.Context, _ string, q url.Values, v any) error { return f(q, v) }

func TestParseSort(t *testing.T) {
	if k, err := ParseSort("dlq"); err != nil || k != SortDLQ {
		t.Error(k, err)
	}
	if _, err := ParseSort("size"); err == nil || !strings.Contains(err.Error(), "publish_rate") {
		t.Error(err)
	}
}

func TestUnroutableDeadLetters(t *testing.T) {
	snap := Snapshot{
		Queues: []QueueStat{
			sampled(QueueStat{Vhost: "v", Name: "lost", Type: "classic", Arguments: map[string]any{"x-dead-letter-exchange": "nowhere"}}),
			sampled(QueueStat{Vhost: "v", Name: "back", Type: "classic", Arguments: map[string]any{"x-dead-letter-exchange": ""}}),
		},
	}
	rep := Build(snap, "v", NewMatcher(nil), SortName)
	if w := row(t, rep, "lost").Warnings; !reflect.DeepEqual(w, []Warning{WarnNoDLQ}) {
		t.Errorf("lost: %v", w)
	}
	// Dead-lettering back through the default exchange under the
	// message's own key names no DLQ and is not a warning.
	if r := row(t, rep, "back"); r.DeadLetter != nil || len(r.Warnings) != 0 {
		t.Errorf("back: %+v", r)
	}
}

// metricsOffGetter is a broker with management metrics collection off:
// the queue list has no counts, consumers, rates or timestamps; queue
// totals have counts for every queue but "gone" (deleted between reads).
// As 3.x and 4.0 do, it gives no effective_policy_definition, only the
// policy's name.
func metricsOffGetter(t *testing.T) getterFunc {
	return func(q url.Values, v any) error {
		if q.Get("columns") == "vhost,name,definition" {
			return json.Unmarshal([]byte(`[{"vhost":"v","name":"audit-dlx","definition":{"dead-letter-exchange":"","dead-letter-routing-key":"email.dlq"}},
				{"vhost":"other","name":"audit-dlx","definition":{}}]`), v)
		}
		if q.Get("enable_queue_totals") == "true" {
			return json.Unmarshal([]byte(`{"page_count":1,"items":[
				{"vhost":"v","name":"email","messages_ready":10,"messages_unacknowledged":2},
				{"vhost":"v","name":"email.dlq","messages_ready":3,"messages_unacknowledged":0},
				{"vhost":"v","name":"cl","messages_ready":0,"messages_unacknowledged":0},
				{"vhost":"v","name":"audit","messages_ready":0,"messages_unacknowledged":0}]}`), v)
		}
		if !strings.Contains(q.Get("columns"), "messages_ready") {
			t.Errorf("columns %q", q.Get("columns"))
		}
		return json.Unmarshal([]byte(`{"page_count":1,"items":[
			{"vhost":"v","name":"email","type":"quorum","state":"running","arguments":{"x-dead-letter-exchange":"","x-dead-letter-routing-key":"email.dlq"}},
			{"vhost":"v","name":"email.dlq","type":"classic","state":"live","arguments":{}},
			{"vhost":"v","name":"cl","type":"classic","state":"live","arguments":{}},
			{"vhost":"v","name":"gone","type":"classic","state":"live","arguments":{"x-dead-letter-exchange":"","x-dead-letter-routing-key":"gone.dlq"}},
			{"vhost":"v","name":"gone.dlq","type":"classic","state":"live","arguments":{}},
			{"vhost":"v","name":"audit","type":"classic","state":"live","arguments":{},"policy":"audit-dlx"}]}`), v)
	}
}

func TestBacklogMetricsOffCountsFromQueueTotalsElseUnknown(t *testing.T) {
	page, err := HTTPSource{API: metricsOffGetter(t)}.QueuePage(context.Background(), "v", 1, 500)
	if err != nil {
		t.Fatal(err)
	}
	rep := Build(Snapshot{Queues: page.Queues}, "v", NewMatcher(nil), SortReady)
	email := row(t, rep, "email")
	if email.Ready == nil || *email.Ready != 10 || *email.Unacked != 2 || *email.Messages != 12 {
		t.Errorf("email counts should come from queue totals: %+v", email)
	}
	if email.Consumers != nil || email.PublishRate != nil || email.DeliverRate != nil || email.AckRate != nil {
		t.Errorf("email consumers and rates should be unknown, not 0: %+v", email)
	}
	if d := email.DLQs; len(d) != 1 || d[0].Messages == nil || *d[0].Messages != 3 || *email.DLQMessages != 3 {
		t.Errorf("email dlq %+v", d)
	}
	// Without consumers known, "no consumer" cannot be claimed; the DLQ's
	// known depth still warns.
	if !reflect.DeepEqual(email.Warnings, []Warning{WarnDLQNotEmpty}) {
		t.Errorf("email warnings %v", email.Warnings)
	}
	gone := row(t, rep, "gone")
	if gone.Ready != nil || gone.Unacked != nil || gone.Messages != nil || gone.DLQMessages != nil {
		t.Errorf("gone: counts should be unknown: %+v", gone)
	}
	if !reflect.DeepEqual(gone.Warnings, []Warning{WarnCountsUnknown}) {
		t.Errorf("gone warnings %v", gone.Warnings)
	}
	want := &deadletter.Link{Source: deadletter.SourcePolicy, Exchange: "", RoutingKey: "email.dlq", Queues: []string{"email.dlq"}}
	if a := row(t, rep, "audit"); !reflect.DeepEqual(a.DeadLetter, want) {
		t.Errorf("audit: its policy's dead-letter exchange should be found by the policy's name: %+v", a.DeadLetter)
	}
	if w := row(t, rep, "cl").Warnings; len(w) != 0 {
		t.Errorf(`state "live" is a running queue on 3.x without statistics: %v`, w)
	}
	if s := rep.Summary; s.Messages != nil || s.Ready != nil || s.Unacked != nil || s.DLQMessages != nil || s.CountsUnknown != 2 {
		t.Errorf("summary should have unknown totals: %+v", s)
	}
	// Unknown sorts after known, whatever the key.
	if last := rep.Queues[len(rep.Queues)-1].Name; last != "gone" && last != "gone.dlq" {
		t.Errorf("order: %s last", last)
	}
	b, _ := json.Marshal(gone)
	for _, k := range []string{`"ready":null`, `"unacked":null`, `"messages":null`, `"consumers":null`, `"publish_rate":null`, `"dlq_messages":null`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("JSON lacks %s: %s", k, b)
		}
	}

	v := Evaluate(rep, Limits{MaxReady: ptr(5), MaxUnacked: ptr(100), MaxDLQ: ptr(100), MinConsumers: ptr(1), MaxAge: ptr(time.Hour)}, nil)
	if v.OK {
		t.Fatal("check passed on unknown figures")
	}
	got := map[string]Violation{}
	for _, x := range v.Violations {
		got[x.Queue+"/"+string(x.Check)] = x
	}
	for _, want := range []struct {
		key     string
		unknown bool
	}{
		{"email/max_ready", false}, // 10 > 5, known from totals
		{"email/min_consumers", true},
		{"gone/max_ready", true}, {"gone/max_unacked", true}, {"gone/min_consumers", true},
		{"gone/max_age", true}, {"gone/max_dlq", true},
	} {
		x, ok := got[want.key]
		if !ok {
			t.Errorf("no violation %s in %+v", want.key, v.Violations)
			continue
		}
		if x.Unknown != want.unknown || (want.unknown && (x.Actual != -1 || !strings.Contains(x.Message, "cannot evaluate --"+strings.ReplaceAll(string(x.Check), "_", "-")))) {
			t.Errorf("%s: %+v", want.key, x)
		}
	}
	if _, ok := got["cl/min_consumers"]; !ok {
		t.Error("cl: consumers unknown should fail --min-consumers")
	}
	if _, ok := got["cl/max_age"]; ok {
		t.Error("cl holds no ready message: --max-age holds")
	}
	// A quorum queue never reports the age: that stays a note, as with
	// metrics on.
	if len(v.Unchecked) != 1 || v.Unchecked[0].Queue != "email" {
		t.Errorf("unchecked %+v", v.Unchecked)
	}
}

// A QueueTotals read is one request with disable_stats and queue totals,
// decoded as 3.10 answers it: counts known, consumers, rates and head
// timestamp unknown (nil), a queue without counts left unknown rather
// than read again, and a policy found by its name.
func TestHTTPSourceQueueTotals(t *testing.T) {
	var asked []url.Values
	g := getterFunc(func(q url.Values, v any) error {
		asked = append(asked, q)
		if q.Get("columns") == "vhost,name,definition" {
			return json.Unmarshal([]byte(`[{"vhost":"v","name":"audit-dlx","definition":{"dead-letter-exchange":"graveyard"}}]`), v)
		}
		return json.Unmarshal([]byte(`[
			{"vhost":"v","name":"audit","type":"classic","state":"running","arguments":{},"policy":"audit-dlx",
			 "messages_ready":5,"messages_unacknowledged":0},
			{"vhost":"v","name":"email","type":"quorum","state":"running","arguments":{"x-queue-type":"quorum"},
			 "messages_ready":5,"messages_unacknowledged":2,"leader":"n1","members":["n1"],"online":["n1"]},
			{"vhost":"v","name":"new","type":"classic","state":"running","arguments":{}}]`), v)
	})
	page, err := HTTPSource{API: g, NoRates: true, QueueTotals: true}.QueuePage(context.Background(), "v", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 2 {
		t.Fatalf("want the queue list and the policies, got %v", asked)
	}
	q := asked[0]
	if q.Get("disable_stats") != "true" || q.Get("enable_queue_totals") != "true" {
		t.Errorf("not a queue totals read: %v", q)
	}
	for _, c := range []string{"consumers", "head_message_timestamp", "message_stats"} {
		if strings.Contains(q.Get("columns"), c) {
			t.Errorf("columns %q ask for %s, which a queue totals read does not give", q.Get("columns"), c)
		}
	}
	want := []QueueStat{
		{Vhost: "v", Name: "audit", Type: "classic", State: "running", Policy: map[string]any{"dead-letter-exchange": "graveyard"},
			Ready: ptr(5), Unacked: ptr(0)},
		{Vhost: "v", Name: "email", Type: "quorum", State: "running", Arguments: map[string]any{"x-queue-type": "quorum"},
			Ready: ptr(5), Unacked: ptr(2), Leader: "n1", Members: []string{"n1"}, Online: []string{"n1"}},
		{Vhost: "v", Name: "new", Type: "classic", State: "running"},
	}
	if !reflect.DeepEqual(page.Queues, want) {
		t.Errorf("queues\n%+v\nwant\n%+v", page.Queues, want)
	}
}

func TestLimitsNeedStatistics(t *testing.T) {
	for _, c := range []struct {
		l    Limits
		want bool
	}{
		{Limits{MaxReady: ptr(1), MaxUnacked: ptr(1), MaxDLQ: ptr(0)}, false},
		{Limits{MaxDLQ: ptr(0), MinConsumers: ptr(0)}, true},
		{Limits{MaxReady: ptr(1), MaxAge: ptr(time.Minute)}, true},
	} {
		if got := c.l.NeedStatistics(); got != c.want {
			t.Errorf("%+v: NeedStatistics %v, want %v", c.l, got, c.want)
		}
	}
}
