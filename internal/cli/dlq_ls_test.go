package cli

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/backlog"
	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/deadletter"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

func TestDLQLsFlagsThroughRunF(t *testing.T) {
	for _, c := range []struct {
		args   []string
		peek   int
		format output.Format
	}{
		{[]string{"dlq", "ls"}, 100, output.Table},
		{[]string{"dlq", "list", "--peek", "0", "-o", "json"}, 0, output.JSON},
	} {
		var got *DLQListOptions
		build := func(f *Factory) *cobra.Command {
			return NewCmdDLQList(f, func(o *DLQListOptions) error { got = o; return nil })
		}
		if err := runWithF(t, "dlq ls", build, c.args...); err != nil {
			t.Errorf("%v: %v", c.args, err)
			continue
		}
		if got.Peek != c.peek || got.Format != c.format {
			t.Errorf("%v: peek %d format %s", c.args, got.Peek, got.Format)
		}
		if got.IO == nil || got.Settings == nil || got.MgmtReader == nil || got.Dialer == nil {
			t.Errorf("%v: IO, Settings, MgmtReader and Dialer must be wired", c.args)
		}
	}
	build := func(f *Factory) *cobra.Command {
		return NewCmdDLQList(f, func(*DLQListOptions) error { t.Error("ran with an argument"); return nil })
	}
	if err := runWithF(t, "dlq ls", build, "dlq", "ls", "email.dlq"); err == nil {
		t.Error("dlq ls takes no argument")
	}
}

// agreementSnapshot is a vhost where the two discoveries mqctl had before
// the deadletter model disagreed: x dead-letters into x-failed, not into
// the leftover x.dlq; "stray" is bound to x.dlx with a key other than x;
// gone.dlq's queue was deleted; email.dlq's depth is unknown (no
// statistics, no queue totals). dlq ls listed x.dlq and stray as x's DLQs
// where backlog showed them as work queues, and gone.dlq as a DLQ where
// backlog showed a work queue without consumers.
func agreementSnapshot() *snapshotAPI {
	return &snapshotAPI{snap: backlog.Snapshot{
		Queues: []backlog.QueueStat{
			sampledQueue(backlog.QueueStat{Vhost: "v", Name: "email", Type: "quorum", Ready: ref(1),
				Arguments: map[string]any{"x-dead-letter-exchange": "email.dlx", "x-dead-letter-routing-key": "email"}}),
			{Vhost: "v", Name: "email.dlq", Type: "classic"},
			sampledQueue(backlog.QueueStat{Vhost: "v", Name: "gone.dlq", Type: "classic", Ready: ref(2)}),
			sampledQueue(backlog.QueueStat{Vhost: "v", Name: "stray", Type: "classic"}),
			sampledQueue(backlog.QueueStat{Vhost: "v", Name: "x", Type: "classic",
				Policy: map[string]any{"dead-letter-exchange": "", "dead-letter-routing-key": "x-failed"}}),
			sampledQueue(backlog.QueueStat{Vhost: "v", Name: "x-failed", Type: "quorum", Ready: ref(4)}),
			sampledQueue(backlog.QueueStat{Vhost: "v", Name: "x.dlq", Type: "classic", Ready: ref(5)}),
		},
		Exchanges: []deadletter.Exchange{{Vhost: "v", Name: "email.dlx", Type: "direct"}, {Vhost: "v", Name: "x.dlx", Type: "direct"}},
		Bindings: []deadletter.Binding{
			{Vhost: "v", Source: "email.dlx", Queue: "email.dlq", RoutingKey: "email"},
			{Vhost: "v", Source: "x.dlx", Queue: "stray", RoutingKey: "other"},
		},
	}}
}

// sampledQueue gives q the figures of a queue with statistics: what is not
// set is 0.
func sampledQueue(q backlog.QueueStat) backlog.QueueStat {
	for _, n := range []**int{&q.Ready, &q.Unacked, &q.Consumers} {
		if *n == nil {
			*n = ref(0)
		}
	}
	q.Publish, q.Deliver, q.Ack = ref(0.0), ref(0.0), ref(0.0)
	return q
}

// dlqLsJSON runs `dlq ls --peek 0 -o json` against api and counts the
// management API readers it opened.
func dlqLsJSON(t *testing.T, api backlog.Getter) ([]dlq.DLQ, int) {
	t.Helper()
	ios, _, out, _ := iostreams.Test()
	readers := 0
	opts := &DLQListOptions{IO: ios, Format: output.JSON,
		Settings: func() (config.Settings, error) { return config.Settings{Vhost: "v"}, nil },
		MgmtReader: func(config.Settings) (backlog.Getter, error) {
			readers++
			return api, nil
		},
		Dialer: func(string) (*broker.Dialer, error) { t.Fatal("--peek 0 dialled AMQP"); return nil, nil },
	}
	if err := dlqListRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	var ls struct {
		DLQs []dlq.DLQ `json:"dlqs"`
	}
	if err := json.Unmarshal(out.Bytes(), &ls); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return ls.DLQs, readers
}

func TestDLQLsAndBacklogAgree(t *testing.T) {
	dlqs, readers := dlqLsJSON(t, agreementSnapshot())
	if readers != 1 {
		t.Errorf("dlq ls opened %d management API readers, want one for every request", readers)
	}
	type entry struct {
		origins, foundBy string
		messages         *int
	}
	got := map[string]entry{}
	for _, d := range dlqs {
		got[d.Name] = entry{strings.Join(d.Origins, ","), strings.Join(d.FoundBy, ","), d.Messages}
	}
	want := map[string]entry{
		"email.dlq": {"email", "arguments,pattern", nil},
		"gone.dlq":  {"", "pattern", ref(2)},
		"x-failed":  {"x", "policy", ref(4)},
		"x.dlq":     {"", "pattern", ref(5)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dlq ls %+v\nwant %+v", got, want)
	}

	// backlog on the same vhost: its role-dlq rows are those DLQs, with
	// the same depths, and its rows' DLQs are their origins.
	ios, _, out, _ := iostreams.Test()
	if err := backlogRun(context.Background(), fakeBacklogOpts(ios, output.JSON, agreementSnapshot())); err != nil {
		t.Fatal(err)
	}
	var rep backlog.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	fromBacklog := map[string]entry{}
	origins := map[string][]string{}
	for _, r := range rep.Queues {
		if r.Role == deadletter.RoleDLQ {
			fromBacklog[r.Name] = entry{messages: r.Messages}
		}
		for _, d := range r.DLQs {
			origins[d.Name] = append(origins[d.Name], r.Name)
		}
	}
	for name, e := range fromBacklog {
		e.origins, e.foundBy = strings.Join(origins[name], ","), got[name].foundBy
		fromBacklog[name] = e
	}
	if !reflect.DeepEqual(fromBacklog, got) {
		t.Errorf("backlog's DLQs %+v\ndlq ls's %+v", fromBacklog, got)
	}
}

func TestDLQLsShowsUnknownDepth(t *testing.T) {
	v := dlqListView{DLQs: []dlq.DLQ{{Name: "a.dlq", Type: "classic", Messages: ref(2), Origins: []string{"a"}},
		{Name: "b.dlq", Type: "classic", Origins: []string{"b"}}}}
	td := v.Table()
	if td.Rows[0][2] != "2" || td.Rows[1][2] != "unknown" {
		t.Errorf("rows %v", td.Rows)
	}
	if td.RowLevel(1) != output.LevelWarn || td.RowLevel(0) != output.LevelError {
		t.Error("unknown depth should warn; a known non-empty DLQ is an error")
	}
	b, _ := json.Marshal(v)
	if !strings.Contains(string(b), `"name":"b.dlq","type":"classic","messages":null`) {
		t.Errorf("json %s", b)
	}
}
