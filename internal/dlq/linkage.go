package dlq

import (
	"context"
	"errors"
	"fmt"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/backlog"
	"github.com/mqctl/mqctl/internal/deadletter"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/pattern"
)

// Linkage is what the dead-letter model says about the queue a dlq
// command was pointed at: whether it is a DLQ, whose, and of what type.
// The dlq commands check it before they read a single message, so a typo
// (`email` for `email.dlq`) never raises the delivery count of a work
// queue.
type Linkage struct {
	Queue string
	// Listed says the management API listed the queue; when it did not
	// (unreachable, or the queue is new), only the AMQP-visible facts
	// were used: the name and whether QUEUE.dlq exists.
	Listed bool
	// Type is the queue's type (classic, quorum, stream); "" when unknown.
	Type string
	// IsDLQ says some queue dead-letters into Queue, or mqctl's naming
	// makes it a DLQ.
	IsDLQ bool
	// Origins are the queues whose dead letters land in Queue; nil when
	// unknown (only the name was checked).
	Origins []string
	// FoundBy says why it is a DLQ (arguments, policy, pattern).
	FoundBy []string
	// Role is the queue's role when it is not a DLQ (work, retry).
	Role string
	// DeadLettersTo describes where Queue's own dead letters go ("" for
	// nowhere), for the refusal.
	DeadLettersTo string
	// Suggest is QUEUE.dlq (or the queue Queue dead-letters into) when it
	// exists: what the user probably meant.
	Suggest string
	// Others are up to five DLQs of the vhost, with their origins, for
	// the refusal.
	Others []string
	// Note says how the answer was reached when the management API did
	// not give it.
	Note string
}

// LinkageOf answers for queue in vhost from the dead-letter graph g
// (backlog.Snapshot.Graph: the model `dlq ls` and `backlog` use) and the
// queues' types.
func LinkageOf(g *deadletter.Graph, types map[string]string, vhost, queue string) Linkage {
	l := Linkage{Queue: queue, Type: types[queue], Role: string(g.Role(vhost, queue))}
	_, l.Listed = types[queue]
	var others []string
	for _, d := range g.DLQs() {
		if d.Vhost != vhost {
			continue
		}
		if d.Name == queue {
			l.IsDLQ, l.Origins = true, d.Origins
			for _, s := range d.FoundBy {
				l.FoundBy = append(l.FoundBy, string(s))
			}
			continue
		}
		if len(others) < 5 {
			o := d.Name
			if len(d.Origins) > 0 {
				o += " (from " + strings.Join(d.Origins, ", ") + ")"
			}
			others = append(others, o)
		}
	}
	l.Others = others
	if link := g.Link(vhost, queue); link != nil {
		to := "nowhere"
		if len(link.Queues) > 0 {
			to = strings.Join(link.Queues, ", ")
			l.Suggest = link.Queues[0]
		}
		ex := link.Exchange
		if ex == "" {
			ex = "the default exchange"
		}
		l.DeadLettersTo = fmt.Sprintf("it dead-letters into %s (through %s, set by %s)", to, ex, link.Source)
	}
	if _, ok := types[pattern.DefaultDLQ(queue)]; ok {
		l.Suggest = pattern.DefaultDLQ(queue)
	}
	return l
}

// Refusal is the usage error of a dlq command pointed at a queue that is
// not a dead-letter queue; nil when it is one.
func (l Linkage) Refusal() error {
	if l.IsDLQ {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s is not a dead-letter queue: no queue dead-letters into it and no mqctl pattern names it", l.Queue)
	switch {
	case l.Role == string(deadletter.RoleRetry):
		b.WriteString("; it is a retry delay queue")
	case l.DeadLettersTo != "":
		b.WriteString("; " + l.DeadLettersTo)
	}
	if l.Note != "" {
		b.WriteString(" (" + l.Note + ")")
	}
	end := "."
	if l.Suggest != "" {
		fmt.Fprintf(&b, "; did you mean %s?", l.Suggest)
		end = "" // the question ends the sentence
	} else if len(l.Others) > 0 {
		fmt.Fprintf(&b, "; the vhost's dead-letter queues: %s", strings.Join(l.Others, ", "))
	}
	b.WriteString(end + " Nothing was read: reading a work queue takes its messages from its consumers and, on a quorum queue, raises their delivery count. Pass --force if it really holds dead letters")
	return fail.Usagef("%s", b.String())
}

// QuorumWarning is what a person must know before mqctl reads a quorum
// DLQ; "" for other types.
func (l Linkage) QuorumWarning() string {
	if l.Type != "quorum" {
		return ""
	}
	return fmt.Sprintf("%s is a quorum queue: mqctl reads it by taking each message and returning it, and every return raises the message's x-delivery-count; at the queue's delivery limit (x-delivery-limit; 20 by default on RabbitMQ 4.x) the broker drops or dead-letters it. Read it as few times as you can (show --groups once, then replay or purge), or make the DLQ a classic queue", l.Queue)
}

// DiscoverLinkage reads vhost through src (one snapshot, as `dlq ls`
// does) and answers for queue.
func DiscoverLinkage(ctx context.Context, src backlog.Source, vhost, queue string) (Linkage, error) {
	snap, err := backlog.Fetch(ctx, src, vhost, 0)
	if err != nil {
		return Linkage{}, err
	}
	types := make(map[string]string, len(snap.Queues))
	for _, q := range snap.Queues {
		if q.Vhost == vhost || q.Vhost == "" {
			types[q.Name] = q.Type
		}
	}
	return LinkageOf(snap.Graph(), types, vhost, queue), nil
}

// NamedLinkage answers from what AMQP shows, for when the management API
// gave no answer (why says so): mqctl's naming (X.dlq, origin X) and
// whether QUEUE.dlq exists, by a passive declare on a throwaway channel.
// Origins stay unknown (nil) unless the name says them.
func NamedLinkage(conn *amqp.Connection, queue, why string) (Linkage, error) {
	l := Linkage{Queue: queue, Role: string(deadletter.RoleWork)}
	if origin, ok := strings.CutSuffix(queue, pattern.DefaultDLQ("")); ok && origin != "" {
		l.IsDLQ, l.FoundBy, l.Role = true, []string{string(deadletter.SourcePattern)}, string(deadletter.RoleDLQ)
		l.Note = fmt.Sprintf("%s; taken as a dead-letter queue by mqctl's naming (X.dlq) alone", why)
		return l, nil
	}
	l.Note = fmt.Sprintf("%s, so only its name could be checked, and it is not mqctl's X.dlq", why)
	ok, err := QueueExists(conn, pattern.DefaultDLQ(queue))
	if err != nil {
		return l, err
	}
	if ok {
		l.Suggest = pattern.DefaultDLQ(queue)
	}
	return l, nil
}

// QueueExists reports whether queue exists in the connection's vhost, by
// a passive declare on a channel of its own (a missing queue closes the
// channel).
func QueueExists(conn *amqp.Connection, queue string) (bool, error) {
	ch, err := conn.Channel()
	if err != nil {
		return false, fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	_, err = ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	var ae *amqp.Error
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ae) && ae.Code == amqp.NotFound:
		return false, nil
	}
	return false, fmt.Errorf("look up queue %q: %w", queue, err)
}
