package dlq

import (
	"slices"
	"sort"
	"strings"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
)

// Topology is what discovery reads from the management API.
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
	// FoundBy says why this is a DLQ: "arguments", "policy" (another
	// queue's dead-letter settings route here), "pattern" (mqctl naming).
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

// Find lists the dead-letter queues of a vhost: queues that another
// queue's x-dead-letter-exchange (argument or policy) routes to, with
// that queue's x-dead-letter-routing-key or, when it has none, any key
// (the message keeps its own); plus queues named by the mqctl pattern
// (bound to an "X.dlx" exchange, or named "X.dlq").
func Find(t Topology) []DLQ {
	byName := map[string]*DLQ{}
	queueType := map[string]rabbithole.QueueInfo{}
	for _, q := range t.Queues {
		queueType[q.Name] = q
	}
	exType := map[string]string{}
	for _, e := range t.Exchanges {
		exType[e.Name] = e.Type
	}
	policy := map[string]rabbithole.Policy{}
	for _, p := range t.Policies {
		policy[p.Name] = p
	}
	add := func(dlq, origin, how string) {
		q, ok := queueType[dlq]
		if !ok {
			return
		}
		d := byName[dlq]
		if d == nil {
			d = &DLQ{Name: dlq, Type: q.Type}
			if n, ok := t.Depths[dlq]; ok {
				d.Messages = &n
			}
			if q.Type == "quorum" {
				d.Warning = "quorum DLQ: every peek counts toward its delivery limit (4.x default 20); use a classic DLQ"
			}
			byName[dlq] = d
		}
		if origin != "" && !slices.Contains(d.Origins, origin) {
			d.Origins = append(d.Origins, origin)
		}
		if !slices.Contains(d.FoundBy, how) {
			d.FoundBy = append(d.FoundBy, how)
		}
	}
	for _, q := range t.Queues {
		dlx, key, how := deadLetterSettings(q, policy)
		if how == "" || isDelayQueue(q.Name, dlx, key) {
			continue
		}
		for _, b := range t.Bindings {
			if dlx == "" {
				break
			}
			if b.Source != dlx || b.DestinationType != "queue" {
				continue
			}
			if key == "" || routes(exType[dlx], b.RoutingKey, key) {
				add(b.Destination, q.Name, how)
			}
		}
		if dlx == "" && key != "" {
			// The default exchange routes by queue name.
			add(key, q.Name, how)
		}
	}
	for _, b := range t.Bindings {
		if b.DestinationType == "queue" && strings.HasSuffix(b.Source, ".dlx") {
			origin := strings.TrimSuffix(b.Source, ".dlx")
			if _, ok := queueType[origin]; !ok {
				origin = ""
			}
			add(b.Destination, origin, "pattern")
		}
	}
	for _, q := range t.Queues {
		if strings.HasSuffix(q.Name, ".dlq") {
			origin := strings.TrimSuffix(q.Name, ".dlq")
			if _, ok := queueType[origin]; !ok {
				origin = ""
			}
			add(q.Name, origin, "pattern")
		}
	}
	out := make([]DLQ, 0, len(byName))
	for _, d := range byName {
		sort.Strings(d.Origins)
		if d.Origins == nil {
			d.Origins = []string{}
		}
		d.TopReasons = []ReasonCount{}
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// isDelayQueue recognises an mqctl retry delay queue Q.retry.N, whose
// dead letters go back to Q: Q is a work queue, not a DLQ.
func isDelayQueue(name, dlx, key string) bool {
	if dlx != "" || !strings.HasPrefix(name, key+".retry.") {
		return false
	}
	n := strings.TrimPrefix(name, key+".retry.")
	return n != "" && strings.Trim(n, "0123456789") == ""
}

// deadLetterSettings returns a queue's dead-letter exchange and routing
// key; arguments win over a policy, as in RabbitMQ. how is "" when the
// queue has none.
func deadLetterSettings(q rabbithole.QueueInfo, policies map[string]rabbithole.Policy) (dlx, key, how string) {
	if v, ok := q.Arguments["x-dead-letter-exchange"].(string); ok {
		dlx, how = v, "arguments"
		key, _ = q.Arguments["x-dead-letter-routing-key"].(string)
		return dlx, key, how
	}
	if p, ok := policies[q.Policy]; ok && q.Policy != "" {
		if v, ok := p.Definition["dead-letter-exchange"].(string); ok {
			key, _ = p.Definition["dead-letter-routing-key"].(string)
			return v, key, "policy"
		}
	}
	return "", "", ""
}

// routes reports whether a binding key on an exchange of type typ
// matches routing key key. Headers exchanges route on headers, which
// discovery cannot know: they match.
func routes(typ, binding, key string) bool {
	switch typ {
	case "fanout", "headers":
		return true
	case "topic":
		return topicMatch(strings.Split(binding, "."), strings.Split(key, "."))
	default:
		return binding == key
	}
}

func topicMatch(pat, words []string) bool {
	if len(pat) == 0 {
		return len(words) == 0
	}
	switch pat[0] {
	case "#":
		for i := 0; i <= len(words); i++ {
			if topicMatch(pat[1:], words[i:]) {
				return true
			}
		}
		return false
	case "*":
		return len(words) > 0 && topicMatch(pat[1:], words[1:])
	}
	return len(words) > 0 && pat[0] == words[0] && topicMatch(pat[1:], words[1:])
}

// Summarise fills a DLQ's reasons and oldest death from peeked records.
func (d *DLQ) Summarise(recs []Record) {
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
