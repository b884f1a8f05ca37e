package backlog

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Getter reads one management API resource as JSON (broker.MgmtReader).
type Getter interface {
	GetJSON(ctx context.Context, path string, query url.Values, v any) error
}

// HTTPSource is the Source over the management HTTP API. It asks only for
// the columns backlog reads, which keeps a page of 500 queues small.
type HTTPSource struct {
	API Getter
	// NoRates leaves out the message rates (backlog check needs none),
	// sparing the broker that part of its per-queue statistics work.
	NoRates bool
}

// queueColumns are the columns backlog reads; nested ones use the API's
// dotted form.
var queueColumns = []string{
	"vhost", "name", "type", "state", "arguments", "effective_policy_definition",
	"messages_ready", "messages_unacknowledged", "consumers", "head_message_timestamp",
	"leader", "members", "online",
}

var rateColumns = []string{
	"message_stats.publish_details.rate", "message_stats.deliver_get_details.rate",
	"message_stats.ack_details.rate",
}

func (s HTTPSource) columns() string {
	if s.NoRates {
		return strings.Join(queueColumns, ",")
	}
	return strings.Join(append(queueColumns[:len(queueColumns):len(queueColumns)], rateColumns...), ",")
}

type apiRate struct {
	Rate float64 `json:"rate"`
}

type apiQueue struct {
	Vhost     string          `json:"vhost"`
	Name      string          `json:"name"`
	Type      string          `json:"type"`
	State     string          `json:"state"`
	Arguments json.RawMessage `json:"arguments"`
	Policy    json.RawMessage `json:"effective_policy_definition"`
	Ready     int             `json:"messages_ready"`
	Unacked   int             `json:"messages_unacknowledged"`
	Consumers int             `json:"consumers"`
	Stats     struct {
		Publish    apiRate `json:"publish_details"`
		DeliverGet apiRate `json:"deliver_get_details"`
		Ack        apiRate `json:"ack_details"`
	} `json:"message_stats"`
	HeadStamp json.RawMessage `json:"head_message_timestamp"`
	Leader    string          `json:"leader"`
	Members   []string        `json:"members"`
	Online    []string        `json:"online"`
}

type apiPage struct {
	Items     []apiQueue `json:"items"`
	PageCount int        `json:"page_count"`
}

func vhostPath(resource, vhost string) string {
	if vhost == "" {
		return resource
	}
	return resource + "/" + url.PathEscape(vhost)
}

// QueuePage implements Source.
func (s HTTPSource) QueuePage(ctx context.Context, vhost string, page, size int) (Page, error) {
	q := url.Values{
		"page":      {strconv.Itoa(page)},
		"page_size": {strconv.Itoa(size)},
		"columns":   {s.columns()},
	}
	var ap apiPage
	if err := s.API.GetJSON(ctx, vhostPath("queues", vhost), q, &ap); err != nil {
		return Page{}, err
	}
	out := Page{PageCount: ap.PageCount, Queues: make([]QueueStat, len(ap.Items))}
	for i, a := range ap.Items {
		out.Queues[i] = QueueStat{
			Vhost: a.Vhost, Name: a.Name, Type: a.Type, State: a.State,
			Arguments: objectOrNil(a.Arguments),
			Policy:    objectOrNil(a.Policy),
			Ready:     a.Ready, Unacked: a.Unacked, Consumers: a.Consumers,
			Publish: a.Stats.Publish.Rate, Deliver: a.Stats.DeliverGet.Rate, Ack: a.Stats.Ack.Rate,
			HeadStamp: timestamp(a.HeadStamp),
			Leader:    a.Leader, Members: a.Members, Online: a.Online,
		}
	}
	return out, nil
}

// objectOrNil decodes a JSON object; Erlang's empty proplist arrives as [].
func objectOrNil(raw json.RawMessage) map[string]any {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil || len(m) == 0 {
		return nil
	}
	return m
}

// timestamp reads head_message_timestamp: AMQP seconds since the epoch, or
// "" / null / absent when the head message has none or the queue type does
// not report it.
func timestamp(raw json.RawMessage) *time.Time {
	var n float64
	if len(raw) == 0 || json.Unmarshal(raw, &n) != nil || n <= 0 {
		return nil
	}
	t := time.Unix(int64(n), 0).UTC()
	return &t
}

// Bindings implements Source.
func (s HTTPSource) Bindings(ctx context.Context, vhost string) ([]Binding, error) {
	var raw []struct {
		Vhost       string `json:"vhost"`
		Source      string `json:"source"`
		Destination string `json:"destination"`
		DestType    string `json:"destination_type"`
		RoutingKey  string `json:"routing_key"`
	}
	q := url.Values{"columns": {"vhost,source,destination,destination_type,routing_key"}}
	if err := s.API.GetJSON(ctx, vhostPath("bindings", vhost), q, &raw); err != nil {
		return nil, err
	}
	out := make([]Binding, 0, len(raw))
	for _, b := range raw {
		// The default exchange's implicit bindings are implied by queue
		// names; skipping them halves the data kept.
		if b.DestType != "queue" || b.Source == "" {
			continue
		}
		out = append(out, Binding{Vhost: b.Vhost, Source: b.Source, Queue: b.Destination, RoutingKey: b.RoutingKey})
	}
	return out, nil
}

// Exchanges implements Source.
func (s HTTPSource) Exchanges(ctx context.Context, vhost string) ([]Exchange, error) {
	var raw []Exchange
	var dec []struct {
		Vhost string `json:"vhost"`
		Name  string `json:"name"`
		Type  string `json:"type"`
	}
	q := url.Values{"columns": {"vhost,name,type"}}
	if err := s.API.GetJSON(ctx, vhostPath("exchanges", vhost), q, &dec); err != nil {
		return nil, err
	}
	for _, e := range dec {
		raw = append(raw, Exchange(e))
	}
	return raw, nil
}
