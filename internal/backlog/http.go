package backlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mqctl/mqctl/internal/deadletter"
)

// Getter reads one management API resource as JSON (broker.MgmtReader).
type Getter interface {
	GetJSON(ctx context.Context, path string, query url.Values, v any) error
}

// HTTPSource is the Source over the management HTTP API. It asks only for
// the columns backlog reads, which keeps a page of 500 queues small.
//
// With management metrics collection off (management_agent.disable_metrics_collector
// on 3.x, the deprecated feature management_metrics_collection on 4.x) the
// queue list carries no message counts, consumers, rates or head timestamp
// at all. A page that lacks counts is read a second time as queue totals
// (disable_stats=true&enable_queue_totals=true), which the broker serves
// without the statistics database; what is still missing stays unknown
// (nil), never 0. 3.x and 4.0 then also leave out
// effective_policy_definition: a queue's policy is then looked up by name
// in the vhost's policies, so a dead-letter exchange set by policy is
// still seen.
type HTTPSource struct {
	API Getter
	// NoRates leaves out the message rates (backlog check needs none),
	// sparing the broker that part of its per-queue statistics work.
	NoRates bool
	// QueueTotals reads the queue list as queue totals alone
	// (disable_stats=true&enable_queue_totals=true): the broker then
	// skips its statistics database and takes the counts from the
	// queues' own counters: at 5,000 queues on 3.10.8 about half the
	// broker CPU of a read with statistics, and the counts are fresher
	// (a classic queue's at once, a quorum queue's within its next tick,
	// not the next 5-second sample). The read gives counts, type, state, arguments, the policy's name and
	// quorum membership (checked on 3.10.8, 4.0.5 and 4.3.6), but no
	// consumers, rates or head timestamp: those stay nil (unknown), so
	// use it only where nothing reads them (see Limits.NeedStatistics).
	// 3.10 and 4.0 never give effective_policy_definition in it, 4.3
	// only for quorum queues: a policy is then found by its name.
	QueueTotals bool
	// extra is the time list reads get beyond --timeout (see Patient).
	extra time.Duration
}

// patientGetter reads with extra time beyond --timeout
// (broker.MgmtReader.GetJSONAllowing).
type patientGetter interface {
	GetJSONAllowing(ctx context.Context, path string, query url.Values, v any, extra time.Duration) error
}

// PerObject is the time a list read is allowed beyond --timeout for each
// queue and exchange the broker holds, once a read has run out of time:
// at 50,000 queues on 3.10.8 one queue list with statistics took the
// broker 52 s (about 1 ms a queue) on the 2-core machine at load 4.
const PerObject = 2 * time.Millisecond

// Patient implements PatientSource: it reads the broker's object counts
// (GET /api/overview, which costs the broker little at any size) and
// returns s with list reads allowed PerObject for each queue and
// exchange.
func (s HTTPSource) Patient(ctx context.Context) (Source, error) {
	if _, ok := s.API.(patientGetter); !ok {
		return nil, errors.New("the management API reader cannot wait longer than --timeout")
	}
	var ov struct {
		Totals struct {
			Queues    int `json:"queues"`
			Exchanges int `json:"exchanges"`
		} `json:"object_totals"`
	}
	if err := s.API.GetJSON(ctx, "overview", url.Values{"columns": {"object_totals"}}, &ov); err != nil {
		return nil, err
	}
	s.extra = time.Duration(ov.Totals.Queues+ov.Totals.Exchanges) * PerObject
	return s, nil
}

// ProbeAfter implements PatientSource: half of --timeout, when the reader
// says what that is; with no bound at all (--timeout 0) only a list the
// API cuts short asks.
func (s HTTPSource) ProbeAfter() time.Duration {
	t, ok := s.API.(interface{ Timeout() time.Duration })
	switch {
	case !ok:
		return 0
	case t.Timeout() <= 0:
		return math.MaxInt64
	}
	return t.Timeout() / 2
}

// get reads one resource, with the extra time Patient gave.
func (s HTTPSource) get(ctx context.Context, path string, q url.Values, v any) error {
	if pg, ok := s.API.(patientGetter); ok && s.extra > 0 {
		return pg.GetJSONAllowing(ctx, path, q, v, s.extra)
	}
	return s.API.GetJSON(ctx, path, q, v)
}

// queueColumns are the columns backlog reads; nested ones use the API's
// dotted form.
var queueColumns = []string{
	"vhost", "name", "type", "state", "arguments", "policy", "effective_policy_definition",
	"messages_ready", "messages_unacknowledged", "consumers", "head_message_timestamp",
	"leader", "members", "online",
}

var rateColumns = []string{
	"message_stats.publish_details.rate", "message_stats.deliver_get_details.rate",
	"message_stats.ack_details.rate",
}

// totalsQueueColumns are what a QueueTotals read asks for: what such a
// read gives of queueColumns.
var totalsQueueColumns = []string{
	"vhost", "name", "type", "state", "arguments", "policy", "effective_policy_definition",
	"messages_ready", "messages_unacknowledged", "leader", "members", "online",
}

// totalsColumns are what a queue-totals read for the counts a read with
// statistics lacked asks for.
const totalsColumns = "vhost,name,messages_ready,messages_unacknowledged"

// totalsQuery marks a queue list read as queue totals.
func totalsQuery(q url.Values) url.Values {
	q.Set("disable_stats", "true")
	q.Set("enable_queue_totals", "true")
	return q
}

func (s HTTPSource) columns() string {
	if s.QueueTotals {
		return strings.Join(totalsQueueColumns, ",")
	}
	if s.NoRates {
		return strings.Join(queueColumns, ",")
	}
	return strings.Join(append(queueColumns[:len(queueColumns):len(queueColumns)], rateColumns...), ",")
}

type apiRate struct {
	Rate float64 `json:"rate"`
}

// apiQueue is one queue of the list. Counts are pointers: absent (metrics
// collection off) must not read as 0.
type apiQueue struct {
	Vhost     string          `json:"vhost"`
	Name      string          `json:"name"`
	Type      string          `json:"type"`
	State     string          `json:"state"`
	Arguments json.RawMessage `json:"arguments"`
	// PolicyName is the policy applied ("" or null: none).
	PolicyName *string         `json:"policy"`
	Policy     json.RawMessage `json:"effective_policy_definition"`
	Ready      *int            `json:"messages_ready"`
	Unacked    *int            `json:"messages_unacknowledged"`
	Consumers  *int            `json:"consumers"`
	Stats      struct {
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
	q := url.Values{"columns": {s.columns()}}
	if s.QueueTotals {
		q = totalsQuery(q)
	}
	ap, err := s.queues(ctx, vhost, page, size, q)
	if err != nil {
		return Page{}, err
	}
	out := Page{PageCount: ap.PageCount, Queues: make([]QueueStat, len(ap.Items))}
	missing := false
	var unresolved []int // queues with a policy but no effective definition
	for i, a := range ap.Items {
		qs := QueueStat{
			Vhost: a.Vhost, Name: a.Name, Type: a.Type, State: a.State,
			Arguments: objectOrNil(a.Arguments),
			Policy:    objectOrNil(a.Policy),
			Ready:     a.Ready, Unacked: a.Unacked, Consumers: a.Consumers,
			HeadStamp: timestamp(a.HeadStamp),
			Leader:    a.Leader, Members: a.Members, Online: a.Online,
		}
		// Counts present mean the queue is in the statistics database:
		// then an absent message_stats is a queue without traffic (0/s).
		if a.Ready != nil && !s.NoRates && !s.QueueTotals {
			qs.Publish, qs.Deliver, qs.Ack = &a.Stats.Publish.Rate, &a.Stats.DeliverGet.Rate, &a.Stats.Ack.Rate
		}
		// A queue totals read that lacks counts has nothing to fall back
		// on: they stay unknown.
		if (a.Ready == nil || a.Unacked == nil) && !s.QueueTotals {
			missing = true
		}
		if len(bytes.TrimSpace(a.Policy)) == 0 && a.PolicyName != nil && *a.PolicyName != "" {
			unresolved = append(unresolved, i)
		}
		out.Queues[i] = qs
	}
	if missing {
		if err := s.fillTotals(ctx, vhost, page, size, out.Queues); err != nil {
			return Page{}, err
		}
	}
	if len(unresolved) > 0 {
		defs, err := s.policies(ctx, vhost)
		if err != nil {
			return Page{}, err
		}
		for _, i := range unresolved {
			q := &out.Queues[i]
			q.Policy = defs[qkey{q.Vhost, *ap.Items[i].PolicyName}]
		}
	}
	return out, nil
}

// queues reads the queue list with query q: page (1-based) of size
// queues, or with page 0 the whole list in one response — a plain array,
// which the broker builds once instead of once per page.
func (s HTTPSource) queues(ctx context.Context, vhost string, page, size int, q url.Values) (apiPage, error) {
	path := vhostPath("queues", vhost)
	if page == 0 {
		ap := apiPage{PageCount: 1}
		return ap, s.get(ctx, path, q, &ap.Items)
	}
	q.Set("page", strconv.Itoa(page))
	q.Set("page_size", strconv.Itoa(size))
	var ap apiPage
	return ap, s.get(ctx, path, q, &ap)
}

// policies reads the policies' definitions by vhost and name.
func (s HTTPSource) policies(ctx context.Context, vhost string) (map[qkey]map[string]any, error) {
	var raw []struct {
		Vhost      string          `json:"vhost"`
		Name       string          `json:"name"`
		Definition json.RawMessage `json:"definition"`
	}
	q := url.Values{"columns": {"vhost,name,definition"}}
	if err := s.get(ctx, vhostPath("policies", vhost), q, &raw); err != nil {
		return nil, fmt.Errorf("read policies (the API gives no effective policy per queue): %w", err)
	}
	out := make(map[qkey]map[string]any, len(raw))
	for _, p := range raw {
		out[qkey{p.Vhost, p.Name}] = objectOrNil(p.Definition)
	}
	return out, nil
}

// fillTotals reads the same page as queue totals and takes the counts of
// the queues that lack them. Queues are matched by name: one created or
// deleted between the two reads shifts the page, and a queue not found
// keeps unknown counts.
func (s HTTPSource) fillTotals(ctx context.Context, vhost string, page, size int, queues []QueueStat) error {
	ap, err := s.queues(ctx, vhost, page, size, totalsQuery(url.Values{"columns": {totalsColumns}}))
	if err != nil {
		return fmt.Errorf("read queue totals (the API reports no message counts): %w", err)
	}
	totals := make(map[qkey]apiQueue, len(ap.Items))
	for _, a := range ap.Items {
		totals[qkey{a.Vhost, a.Name}] = a
	}
	for i := range queues {
		qs := &queues[i]
		if qs.Ready != nil && qs.Unacked != nil {
			continue
		}
		if t, ok := totals[qkey{qs.Vhost, qs.Name}]; ok && t.Ready != nil && t.Unacked != nil {
			qs.Ready, qs.Unacked = t.Ready, t.Unacked
		} else {
			qs.Ready, qs.Unacked = nil, nil
		}
	}
	return nil
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
func (s HTTPSource) Bindings(ctx context.Context, vhost string) ([]deadletter.Binding, error) {
	var raw []struct {
		Vhost       string `json:"vhost"`
		Source      string `json:"source"`
		Destination string `json:"destination"`
		DestType    string `json:"destination_type"`
		RoutingKey  string `json:"routing_key"`
	}
	q := url.Values{"columns": {"vhost,source,destination,destination_type,routing_key"}}
	if err := s.get(ctx, vhostPath("bindings", vhost), q, &raw); err != nil {
		return nil, err
	}
	out := make([]deadletter.Binding, 0, len(raw))
	for _, b := range raw {
		// The default exchange's implicit bindings are implied by queue
		// names; skipping them halves the data kept.
		if b.DestType != "queue" || b.Source == "" {
			continue
		}
		out = append(out, deadletter.Binding{Vhost: b.Vhost, Source: b.Source, Queue: b.Destination, RoutingKey: b.RoutingKey})
	}
	return out, nil
}

// Exchanges implements Source.
func (s HTTPSource) Exchanges(ctx context.Context, vhost string) ([]deadletter.Exchange, error) {
	var raw []struct {
		Vhost string `json:"vhost"`
		Name  string `json:"name"`
		Type  string `json:"type"`
	}
	q := url.Values{"columns": {"vhost,name,type"}}
	if err := s.get(ctx, vhostPath("exchanges", vhost), q, &raw); err != nil {
		return nil, err
	}
	out := make([]deadletter.Exchange, len(raw))
	for i, e := range raw {
		out[i] = deadletter.Exchange(e)
	}
	return out, nil
}
