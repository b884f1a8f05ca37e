package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/mqctl/mqctl/internal/backlog"
	"github.com/mqctl/mqctl/internal/deadletter"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// terminal is streams whose stdout is a colour terminal of that width.
func terminal(width int) (*iostreams.IOStreams, *strings.Builder) {
	ios, _, _, _ := iostreams.Test()
	out := &strings.Builder{}
	ios.Out = out
	ios.SetTTY(false, true, false)
	ios.SetTerminalWidth(width)
	return ios, out
}

// thirteenQueues is a vhost of the size that used to take 45 lines at 120
// columns: six work queues with a DLQ each, a retry queue, quorum queues
// below quorum, queues with no consumer.
func thirteenQueues() *snapshotAPI {
	snap := backlog.Snapshot{}
	quorum := func(q backlog.QueueStat, online int) backlog.QueueStat {
		q.Type = "quorum"
		q.Leader = "rabbit@mq-prod-eu-west-1a"
		q.Members = []string{"rabbit@mq-prod-eu-west-1a", "rabbit@mq-prod-eu-west-1b", "rabbit@mq-prod-eu-west-1c"}
		q.Online = q.Members[:online]
		return q
	}
	for i, name := range []string{"registration.email", "registration.points", "billing.invoice.render",
		"orders.payment.capture", "orders.fulfilment.warehouse-eu-west-1", "notifications.sms.provider-twilio"} {
		work := backlog.QueueStat{Vhost: "v", Name: name, Type: "classic", State: "running",
			Ready: ref(1200 * i), Unacked: ref(3 * i), Consumers: ref(i % 3),
			Publish: ref(12.5 * float64(i)), Deliver: ref(11.25 * float64(i)), Ack: ref(11.0 * float64(i)),
			Arguments: map[string]any{"x-dead-letter-exchange": name + ".dlx", "x-dead-letter-routing-key": name}}
		if i%2 == 0 {
			work = quorum(work, 1+i%3)
		}
		dead := backlog.QueueStat{Vhost: "v", Name: name + ".dlq", Type: "classic", State: "running",
			Ready: ref(17 * i), Unacked: ref(0), Consumers: ref(0), Publish: ref(0.2), Deliver: ref(0.0), Ack: ref(0.0)}
		snap.Queues = append(snap.Queues, work, dead)
		snap.Exchanges = append(snap.Exchanges, deadletter.Exchange{Vhost: "v", Name: name + ".dlx", Type: "direct"})
		snap.Bindings = append(snap.Bindings, deadletter.Binding{Vhost: "v", Source: name + ".dlx", Queue: name + ".dlq", RoutingKey: name})
	}
	snap.Queues = append(snap.Queues, backlog.QueueStat{Vhost: "v", Name: "audit.events.archive", Type: "classic", State: "running",
		Ready: ref(40213), Unacked: ref(0), Consumers: ref(0), Publish: ref(310.4), Deliver: ref(0.0), Ack: ref(0.0)})
	return &snapshotAPI{snap: snap}
}

// checkFits checks that a table printed on a terminal of that width has
// one line per row, none wider than the terminal, and every want string
// (an id, a queue name) whole on some line.
func checkFits(t *testing.T, out string, width, rows int, want []string) (header string, under []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	tableLines := rows + 4 // top rule, header, header rule, rows, bottom rule
	if len(lines) < tableLines || !strings.HasPrefix(ansi.Strip(lines[tableLines-1]), "╰") {
		t.Fatalf("want %d rows of one line each between the rules:\n%s", rows, ansi.Strip(out))
	}
	for _, line := range lines[:tableLines] {
		if w := ansi.StringWidth(line); w > width {
			t.Errorf("line %d wide on a %d-column terminal: %q", w, width, ansi.Strip(line))
		}
	}
	table := ansi.Strip(strings.Join(lines[:tableLines], "\n"))
	for _, w := range want {
		if !strings.Contains(table, "│ "+w+" ") {
			t.Errorf("%q is not whole in a cell of:\n%s", w, table)
		}
	}
	return ansi.Strip(lines[1]), lines[tableLines:]
}

func TestBacklogThirteenQueuesOneLineEachAt120Columns(t *testing.T) {
	api := thirteenQueues()
	var names []string
	for _, q := range api.snap.Queues {
		names = append(names, q.Name)
	}
	for _, c := range []struct {
		width  int
		shown  []string
		hidden string // the note under the table, "" for none
	}{
		{80, []string{"queue", "ready", "warnings"},
			"(columns hidden to fit 80 columns: type, unacked, consumers, pub/s, deliver/s, oldest, dlq, quorum; widen the terminal or use -o json)"},
		{120, []string{"queue", "ready", "unacked", "oldest", "dlq", "warnings"},
			"(columns hidden to fit 120 columns: type, consumers, pub/s, deliver/s, quorum; widen the terminal or use -o json)"},
		{200, []string{"queue", "type", "ready", "unacked", "consumers", "pub/s", "deliver/s", "oldest", "dlq", "quorum", "warnings"}, ""},
	} {
		ios, out := terminal(c.width)
		if err := backlogRun(context.Background(), fakeBacklogOpts(ios, output.Table, api)); err != nil {
			t.Fatal(err)
		}
		header, under := checkFits(t, out.String(), c.width, 13, names)
		for _, h := range c.shown {
			if !strings.Contains(header, " "+h+" ") {
				t.Errorf("width %d: column %q hidden: %q", c.width, h, header)
			}
		}
		if len(under) == 0 || !strings.HasPrefix(ansi.Strip(under[0]), "13 queues") {
			t.Errorf("width %d: want the summary under the table: %q", c.width, under)
		}
		note := ""
		if len(under) > 1 {
			note = ansi.Strip(under[1])
		}
		if note != c.hidden || len(under) > 2 {
			t.Errorf("width %d: lines under the table %q, want the summary and %q", c.width, under, c.hidden)
		}
	}
}

// Piped, the backlog is as it always was: every column, every value whole.
func TestBacklogPipedKeepsEveryColumn(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	ios.SetTerminalWidth(80)
	if err := backlogRun(context.Background(), fakeBacklogOpts(ios, output.Table, thirteenQueues())); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 15 || strings.Contains(out.String(), "…") || strings.Contains(out.String(), "hidden") {
		t.Fatalf("want header, 13 whole rows and the summary:\n%s", out)
	}
	for _, h := range []string{"PUB/S", "DELIVER/S", "CONSUMERS", "rabbit@mq-prod-eu-west-1a",
		"orders.fulfilment.warehouse-eu-west-1.dlq 68", "no consumer, dlq not empty"} {
		if !strings.Contains(out.String(), h) {
			t.Errorf("piped output lacks %q", h)
		}
	}
}

func deadLetterGroups() dlqGroupsView {
	ts := func(s string) *dlq.Timestamp {
		tm, _ := time.Parse(time.RFC3339, s)
		v := dlq.NewTimestamp(tm)
		return &v
	}
	str := func(s string) *string { return &s }
	return dlqGroupsView{Queue: "registration.email.dlq", Depth: 5120, Read: 5120, Selected: 5120, GroupBy: "origin,reason,error",
		by: dlq.GroupAll,
		Groups: []dlq.Group{
			{Key: "3fa2c9d1", Origin: str("registration.email"), Reason: str("rejected"),
				Error: str("smtp 421 4.7.0 mx.example.net: service not available, closing transmission channel (try again later)"),
				Count: 4210, FirstDeath: ts("2026-12-01T08:02:11Z"), LastDeath: ts("2026-12-03T13:01:57Z"),
				SampleIDs: []string{"signup-7f3a9c1e-2b4d-4e8f-9a6b-0c1d2e3f4a5b"}},
			{Key: "b71e04aa", Origin: str("registration.email"), Reason: str("delivery_limit"),
				Error: str("template \"welcome_de\" not found: render failed after 20 attempts"),
				Count: 803, FirstDeath: ts("2026-12-02T10:15:00Z"), LastDeath: ts("2026-12-03T12:59:03Z"),
				SampleIDs: []string{"signup-00c2d4e6-8a1b-4c3d-9e5f-7a6b5c4d3e2f"}},
			{Key: "0c9d5e21", Origin: str("registration.email"), Reason: str("expired"), Error: str(""),
				Count: 107, FirstDeath: ts("2026-12-03T00:00:00Z"), LastDeath: ts("2026-12-03T01:00:00Z"),
				SampleIDs: []string{"signup-4b5c6d7e-1f2a-4b3c-8d9e-0f1a2b3c4d5e"}},
		}}
}

func TestDLQGroupsFitTerminal(t *testing.T) {
	v := deadLetterGroups()
	for _, c := range []struct {
		width int
		whole []string
	}{
		{80, []string{"3fa2c9d1", "b71e04aa", "0c9d5e21"}},
		{120, []string{"3fa2c9d1", "b71e04aa", "registration.email", "2026-12-03T13:01:57Z"}},
		{200, []string{"3fa2c9d1", "signup-7f3a9c1e-2b4d-4e8f-9a6b-0c1d2e3f4a5b", "2026-12-01T08:02:11Z"}},
	} {
		ios, out := terminal(c.width)
		if err := output.Print(ios, output.Table, v); err != nil {
			t.Fatal(err)
		}
		header, _ := checkFits(t, out.String(), c.width, len(v.Groups), c.whole)
		for _, h := range []string{"key", "count", "reason", "error"} {
			if !strings.Contains(header, " "+h+" ") {
				t.Errorf("width %d: column %q hidden: %q", c.width, h, header)
			}
		}
		if c.width < 200 && !strings.Contains(out.String(), "smtp 421 4.7.0") {
			t.Errorf("width %d: the error should be cut, not hidden:\n%s", c.width, ansi.Strip(out.String()))
		}
	}
}

func TestDLQShowFitsTerminal(t *testing.T) {
	v := dlqShowView{Queue: "registration.email.dlq", Depth: 2, Read: 2, Shown: 2}
	for i, id := range []string{"signup-7f3a9c1e-2b4d-4e8f-9a6b-0c1d2e3f4a5b", "注文-42"} {
		m := shownMessage{BodyPreview: fmt.Sprintf(`{"user":"user-%d@example.com","plan":"premium"}`, i)}
		m.ID = id
		m.Death.OriginQueue = "registration.email"
		m.Death.Reason = "rejected"
		m.Death.Deaths = 20
		v.Messages = append(v.Messages, m)
	}
	for _, width := range []int{60, 80, 120, 200} {
		ios, out := terminal(width)
		if err := output.Print(ios, output.Table, v); err != nil {
			t.Fatal(err)
		}
		header, _ := checkFits(t, out.String(), width, 2, []string{v.Messages[0].ID, v.Messages[1].ID})
		if !strings.Contains(header, " reason ") {
			t.Errorf("width %d: reason hidden: %q", width, header)
		}
	}
}

func TestDLQListFitsTerminal(t *testing.T) {
	v := dlqListView{DLQs: []dlq.DLQ{
		{Name: "orders.fulfilment.warehouse-eu-west-1.dlq", Type: "quorum", Messages: ref(412),
			Origins:    []string{"orders.fulfilment.warehouse-eu-west-1", "orders.fulfilment.warehouse-eu-west-2"},
			TopReasons: []dlq.ReasonCount{{Reason: "rejected", Count: 80}, {Reason: "delivery_limit", Count: 20}},
			Warning:    "quorum DLQ: every peek raises x-delivery-count"},
		{Name: "email.dlq", Type: "classic", Messages: ref(0)},
	}}
	for _, width := range []int{80, 120} {
		ios, out := terminal(width)
		if err := output.Print(ios, output.Table, v); err != nil {
			t.Fatal(err)
		}
		checkFits(t, out.String(), width, 2, []string{"orders.fulfilment.warehouse-eu-west-1.dlq", "email.dlq"})
	}
}
