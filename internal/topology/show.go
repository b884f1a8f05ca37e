package topology

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/mqctl/mqctl/internal/pattern"
)

// Flow is the message flow a file declares, for drawing.
type Flow struct {
	// Vhost is the file's vhost; "" when it names none (plan and apply
	// then use --vhost or the connection's).
	Vhost     string         `json:"vhost"`
	Exchanges []FlowExchange `json:"exchanges"`
	// Unbound lists work queues no exchange routes to (they can still be
	// published to through the default exchange).
	Unbound []FlowQueue `json:"unbound,omitempty"`
}

// FlowExchange is an exchange and where it routes.
type FlowExchange struct {
	Name   string     `json:"name"`
	Type   string     `json:"type"`
	Routes []FlowEdge `json:"routes"`
}

// FlowEdge is one binding.
type FlowEdge struct {
	RoutingKey      string     `json:"routing_key"`
	DestinationType string     `json:"destination_type"`
	Destination     string     `json:"destination"`
	Queue           *FlowQueue `json:"queue,omitempty"`
}

// FlowQueue is a work queue with its retry and dead-letter path.
type FlowQueue struct {
	Name          string      `json:"name"`
	Type          string      `json:"type"`
	MaxAttempts   int         `json:"max_attempts,omitempty"`
	Delays        []FlowDelay `json:"delays,omitempty"`
	DeadLetterX   string      `json:"dead_letter_exchange,omitempty"`
	DeadLetter    string      `json:"dead_letter_queue,omitempty"`
	DeliveryLimit int         `json:"delivery_limit,omitempty"`
}

// FlowDelay is one delay queue of the retry pattern.
type FlowDelay struct {
	Queue string   `json:"queue"`
	TTL   Duration `json:"ttl"`
}

// BuildFlow describes the flow of a validated file.
func BuildFlow(f *File) *Flow {
	fl := &Flow{Vhost: f.Vhost}
	queues := map[string]FlowQueue{}
	for _, q := range f.Queues {
		fq := FlowQueue{Name: q.Name, Type: f.QueueTypeOf(q)}
		if q.DeadLetter.Enabled() {
			fq.DeadLetterX, fq.DeadLetter = pattern.DeadLetterExchange(q.Name), q.DeadLetter.Queue
			fq.MaxAttempts = 1
			if fq.Type == Quorum {
				fq.DeliveryLimit = DefaultDeliveryLimit
				if q.DeliveryLimit != nil {
					fq.DeliveryLimit = *q.DeliveryLimit
				}
			}
		}
		if q.Retry != nil {
			fq.MaxAttempts = q.Retry.MaxAttempts
			for i := 0; i < q.retrySteps(); i++ {
				fq.Delays = append(fq.Delays, FlowDelay{Queue: pattern.DelayQueue(q.Name, i+1), TTL: q.Retry.Backoff[i]})
			}
		}
		queues[q.Name] = fq
	}
	bound := map[string]bool{}
	edges := map[string][]FlowEdge{}
	add := func(src, dtype, dst, key string) {
		e := FlowEdge{RoutingKey: key, DestinationType: dtype, Destination: dst}
		if q, ok := queues[dst]; ok && dtype == "queue" {
			e.Queue = &q
			bound[dst] = true
		}
		edges[src] = append(edges[src], e)
	}
	for _, q := range f.Queues {
		for _, b := range q.Bindings {
			add(b.Exchange, "queue", q.Name, b.RoutingKey)
		}
	}
	for _, b := range f.Bindings {
		add(b.Source, b.DestinationType, b.Destination, b.RoutingKey)
	}
	seen := map[string]bool{}
	for _, e := range f.Exchanges {
		fl.Exchanges = append(fl.Exchanges, FlowExchange{Name: e.Name, Type: e.Type, Routes: edges[e.Name]})
		seen[e.Name] = true
	}
	for _, src := range sortedKeys(edges) {
		if !seen[src] {
			fl.Exchanges = append(fl.Exchanges, FlowExchange{Name: src, Type: "built-in", Routes: edges[src]})
		}
	}
	for _, q := range f.Queues {
		if !bound[q.Name] {
			fl.Unbound = append(fl.Unbound, queues[q.Name])
		}
	}
	return fl
}

// Text draws the flow as an indented tree.
func (fl *Flow) Text() string {
	var b strings.Builder
	if fl.Vhost == "" {
		b.WriteString("vhost: none in the file (plan and apply use --vhost, else the connection's vhost)\n")
	} else {
		fmt.Fprintf(&b, "vhost %s\n", fl.Vhost)
	}
	for _, e := range fl.Exchanges {
		fmt.Fprintf(&b, "\n%s (%s exchange)\n", e.Name, e.Type)
		if len(e.Routes) == 0 {
			b.WriteString("  (no bindings: messages published here are dropped)\n")
		}
		for i, r := range e.Routes {
			last := i == len(e.Routes)-1
			branch, indent := "├─", "│   "
			if last {
				branch, indent = "└─", "    "
			}
			key := r.RoutingKey
			if key == "" {
				key = `""`
			}
			fmt.Fprintf(&b, "  %s[%s]─▶ %s\n", branch, key, nodeName(r))
			if r.Queue != nil {
				writeQueue(&b, "  "+indent, *r.Queue)
			}
		}
	}
	if len(fl.Unbound) > 0 {
		b.WriteString("\nqueues without bindings (reachable through the default exchange only)\n")
		for _, q := range fl.Unbound {
			fmt.Fprintf(&b, "  %s (%s)\n", q.Name, q.Type)
			writeQueue(&b, "    ", q)
		}
	}
	return b.String()
}

func nodeName(r FlowEdge) string {
	if r.Queue != nil {
		return fmt.Sprintf("%s (%s queue)", r.Destination, r.Queue.Type)
	}
	return fmt.Sprintf("%s (%s)", r.Destination, r.DestinationType)
}

func writeQueue(b *strings.Builder, indent string, q FlowQueue) {
	if q.DeadLetter == "" {
		return
	}
	if len(q.Delays) > 0 {
		var steps []string
		for _, d := range q.Delays {
			steps = append(steps, fmt.Sprintf("%s (%s)", d.Queue, d.TTL))
		}
		fmt.Fprintf(b, "%s├─ attempt fails, attempts left ─▶ %s ─▶ back to %s\n", indent, strings.Join(steps, " | "), q.Name)
		if q.MaxAttempts-1 > len(q.Delays) {
			fmt.Fprintf(b, "%s│     (attempts %d…%d wait in %s again)\n", indent, len(q.Delays)+2, q.MaxAttempts, q.Delays[len(q.Delays)-1].Queue)
		}
	}
	why := fmt.Sprintf("attempt %d fails", q.MaxAttempts)
	if q.MaxAttempts <= 1 {
		why = "processing fails"
	}
	why += ", rejected"
	if q.DeliveryLimit > 0 {
		why += fmt.Sprintf(", or over %d deliveries", q.DeliveryLimit)
	}
	fmt.Fprintf(b, "%s└─ %s ─▶ %s ─[%s]─▶ %s (classic DLQ)\n", indent, why, q.DeadLetterX, q.Name, q.DeadLetter)
}

var mermaidUnsafe = regexp.MustCompile(`[^A-Za-z0-9_]`)

func mermaidID(kind, name string) string {
	return kind + "_" + mermaidUnsafe.ReplaceAllString(name, "_")
}

// Mermaid draws the flow as a mermaid flowchart.
func (fl *Flow) Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	done := map[string]bool{}
	node := func(id, label, shape string) {
		if done[id] {
			return
		}
		done[id] = true
		switch shape {
		case "exchange":
			fmt.Fprintf(&b, "  %s{{%q}}\n", id, label)
		default:
			fmt.Fprintf(&b, "  %s[(%q)]\n", id, label)
		}
	}
	queue := func(q FlowQueue) {
		qid := mermaidID("q", q.Name)
		node(qid, q.Name+" ("+q.Type+")", "queue")
		if q.DeadLetter == "" || done["pattern:"+q.Name] {
			return
		}
		done["pattern:"+q.Name] = true
		for _, d := range q.Delays {
			did := mermaidID("q", d.Queue)
			node(did, d.Queue+" (ttl "+d.TTL.String()+")", "queue")
			fmt.Fprintf(&b, "  %s -. \"retry\" .-> %s\n", qid, did)
			fmt.Fprintf(&b, "  %s -. \"after %s\" .-> %s\n", did, d.TTL, qid)
		}
		xid := mermaidID("x", q.DeadLetterX)
		node(xid, q.DeadLetterX, "exchange")
		lid := mermaidID("q", q.DeadLetter)
		node(lid, q.DeadLetter+" (DLQ)", "queue")
		fmt.Fprintf(&b, "  %s -- \"dead letter\" --> %s\n", qid, xid)
		fmt.Fprintf(&b, "  %s -- %q --> %s\n", xid, q.Name, lid)
	}
	for _, e := range fl.Exchanges {
		xid := mermaidID("x", e.Name)
		node(xid, e.Name+" ("+e.Type+")", "exchange")
		for _, r := range e.Routes {
			label := r.RoutingKey
			if label == "" {
				label = `""`
			}
			var did string
			if r.DestinationType == "exchange" {
				did = mermaidID("x", r.Destination)
				node(did, r.Destination, "exchange")
			} else {
				did = mermaidID("q", r.Destination)
				if r.Queue != nil {
					queue(*r.Queue)
				} else {
					node(did, r.Destination, "queue")
				}
			}
			fmt.Fprintf(&b, "  %s -- %q --> %s\n", xid, label, did)
		}
	}
	for _, q := range fl.Unbound {
		queue(q)
	}
	return b.String()
}
