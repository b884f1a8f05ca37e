package dlq

import (
	"context"
	"sort"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/backlog"
	"github.com/mqctl/mqctl/internal/deadletter"
)

// Topology is what Find reads: one vhost's lists from the management API,
// as rabbit-hole decodes them.
type Topology struct {
	Queues    []rabbithole.QueueInfo
	Exchanges []rabbithole.ExchangeInfo
	Bindings  []rabbithole.BindingInfo
	Policies  []rabbithole.Policy
	// Depths are the queues' message counts (ready + unacknowledged) by
	// name, where the management API gives them. A DLQ not in Depths has
	// an unknown depth (Messages nil): QueueInfo.Messages is not read,
	// because the API leaves counts out, and rabbit-hole turns that
	// into 0, when management metrics collection is off.
	Depths map[string]int
}

// DLQ is a queue that receives dead letters.
type DLQ struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Messages is the management API's figure (sampled every 5 s); nil
	// (JSON null) when the API gives none (see Topology.Depths).
	Messages *int `json:"messages"`
	// Origins are the queues whose dead letters land here.
	Origins []string `json:"origins"`
	// FoundBy says why this is a DLQ, strongest first: "arguments",
	// "policy" (an origin's dead-letter settings route here), "pattern"
	// (mqctl's naming: X.dlq, or routed to from X.dlx with key X).
	FoundBy []string `json:"found_by"`
	// Filled in by a peek:
	Peeked      int           `json:"peeked"`
	TopReasons  []ReasonCount `json:"top_reasons"`
	OldestDeath *string       `json:"oldest_death,omitempty"`
	PeekError   string        `json:"peek_error,omitempty"`
	Warning     string        `json:"warning,omitempty"`
}

// ReasonCount is how many peeked messages died for one reason.
type ReasonCount struct {
	Reason string `json:"reason"`
	Count  int    `json:"count"`
}

// Discover reads vhost's queues, exchanges and bindings in one snapshot
// through src, backlog's reader (so with management statistics off a
// depth comes from queue totals, else is unknown, and a policy missing
// from the queue list is found by name), and returns the vhost's
// dead-letter queues by name: the DLQs, origins and depths `mqctl backlog`
// shows, from the same deadletter model.
func Discover(ctx context.Context, src backlog.Source, vhost string) ([]DLQ, error) {
	snap, err := backlog.Fetch(ctx, src, vhost, 0)
	if err != nil {
		return nil, err
	}
	stats := make(map[[2]string]*backlog.QueueStat, len(snap.Queues))
	for i, q := range snap.Queues {
		stats[[2]string{q.Vhost, q.Name}] = &snap.Queues[i]
	}
	return fromGraph(snap.Graph(), func(vhost, name string) (string, *int) {
		q := stats[[2]string{vhost, name}]
		return q.Type, q.Messages()
	}), nil
}

// Find lists the dead-letter queues of t, as Discover does from its own
// read: the deadletter model over rabbit-hole's types, for callers that
// hold those.
func Find(t Topology) []DLQ {
	policies := make(map[string]map[string]any, len(t.Policies))
	for _, p := range t.Policies {
		policies[p.Name] = p.Definition
	}
	// One vhost: its name is left out, so lists that lack it still match.
	queues := make([]deadletter.Queue, len(t.Queues))
	types := make(map[string]string, len(t.Queues))
	for i, q := range t.Queues {
		queues[i] = deadletter.Queue{Name: q.Name, Arguments: q.Arguments, Policy: policies[q.Policy]}
		types[q.Name] = q.Type
	}
	exchanges := make([]deadletter.Exchange, len(t.Exchanges))
	for i, e := range t.Exchanges {
		exchanges[i] = deadletter.Exchange{Name: e.Name, Type: e.Type}
	}
	var bindings []deadletter.Binding
	for _, b := range t.Bindings {
		if b.DestinationType == "queue" && b.Source != "" {
			bindings = append(bindings, deadletter.Binding{Source: b.Source, Queue: b.Destination, RoutingKey: b.RoutingKey})
		}
	}
	return fromGraph(deadletter.New(queues, exchanges, bindings), func(_, name string) (string, *int) {
		if n, ok := t.Depths[name]; ok {
			return types[name], &n
		}
		return types[name], nil
	})
}

// fromGraph lists g's DLQs; info gives a queue's type and depth (nil:
// unknown).
func fromGraph(g *deadletter.Graph, info func(vhost, name string) (typ string, depth *int)) []DLQ {
	found := g.DLQs()
	out := make([]DLQ, len(found))
	for i, f := range found {
		d := DLQ{Name: f.Name, Origins: f.Origins, FoundBy: make([]string, len(f.FoundBy)), TopReasons: []ReasonCount{}}
		d.Type, d.Messages = info(f.Vhost, f.Name)
		for j, src := range f.FoundBy {
			d.FoundBy[j] = string(src)
		}
		if d.Type == "quorum" {
			d.Warning = "quorum DLQ: every peek counts toward its delivery limit (4.x default 20); use a classic DLQ"
		}
		out[i] = d
	}
	return out
}

// PeekReasons fills each DLQ's top reasons and oldest death from a
// non-destructive peek at its first limit messages (see Peek), over one
// connection from dial, and a new one after a peek that closed it. Quorum
// and stream DLQs are not peeked: a peek counts toward a quorum queue's
// delivery limit. A failed peek is noted in its DLQ (PeekError, through
// redact, as a password may be in it) and the others go on; the error
// returned is the context's or a failed dial's.
func PeekReasons(ctx context.Context, dial func(context.Context) (*amqp.Connection, error), dlqs []DLQ, limit int, redact func(string) string) error {
	if limit <= 0 || len(dlqs) == 0 {
		return nil
	}
	conn, err := dial(ctx)
	if err != nil {
		return err
	}
	defer func() { conn.Close() }()
	for i := range dlqs {
		d := &dlqs[i]
		if d.Type == "quorum" || d.Type == "stream" {
			d.PeekError = "not peeked (" + d.Type + ")"
			continue
		}
		var recs []Record
		_, err := Peek(ctx, conn, d.Name, limit, func(r Record) error {
			r.Body = nil
			recs = append(recs, r)
			return nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			d.PeekError = redact(err.Error())
			if conn.IsClosed() {
				next, err := dial(ctx)
				if err != nil {
					return err
				}
				conn = next
			}
		}
		d.tally(recs)
	}
	return nil
}

// tally fills a DLQ's reasons and oldest death from peeked records.
func (d *DLQ) tally(recs []Record) {
	counts := map[string]int{}
	var oldest string
	for _, r := range recs {
		counts[ReasonText(r.Death)]++
		if t := r.Death.FirstDeathAt; t != nil {
			s := t.UTC().Format("2006-01-02T15:04:05Z07:00")
			if oldest == "" || s < oldest {
				oldest = s
			}
		}
	}
	d.Peeked = len(recs)
	d.TopReasons = d.TopReasons[:0]
	for r, c := range counts {
		d.TopReasons = append(d.TopReasons, ReasonCount{Reason: r, Count: c})
	}
	sort.Slice(d.TopReasons, func(i, j int) bool {
		a, b := d.TopReasons[i], d.TopReasons[j]
		return a.Count > b.Count || (a.Count == b.Count && a.Reason < b.Reason)
	})
	if len(d.TopReasons) > 3 {
		d.TopReasons = d.TopReasons[:3]
	}
	if oldest != "" {
		d.OldestDeath = &oldest
	}
}

// ReasonText is a death's reason for humans: the broker's reason, or the
// consumer's failure text.
func ReasonText(d Death) string {
	switch {
	case d.Source == "":
		return "unknown"
	case d.Failure != "":
		f := d.Failure
		if len(f) > 60 {
			f = f[:60] + "…"
		}
		return "failed: " + f
	}
	return d.Reason
}
