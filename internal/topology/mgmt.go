package topology

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/fail"
)

// MgmtBroker is Broker over the management HTTP API. Each call is bounded
// by the client's timeout.
type MgmtBroker struct {
	Client *rabbithole.Client
	// Counter, when set, counts a queue's ready messages and consumers
	// exactly (an AMQP passive declare) for the emptiness check before a
	// prune; the management API's figures are up to 5 s old, or missing.
	// An AMQP connection reaches one vhost, CounterVhost: queues of other
	// vhosts are checked by the management figures alone.
	Counter      QueueCounter
	CounterVhost string
	// Reader, when set, reads what rabbit-hole does not know (the
	// broker's deprecated features); without it Facts has the version only.
	Reader JSONGetter
	// Timeout is the client's own timeout (--timeout). An import is
	// bounded by ImportTimeout(Timeout, defs) instead, never less than 30 s,
	// whatever timeout Client has, or by ImportLimit when set
	// (--import-timeout).
	Timeout     time.Duration
	ImportLimit time.Duration
}

// ErrImportCut is an import whose request ran out of time: the broker goes
// on with it, so what it created is only what it had created so far.
var ErrImportCut = errors.New("the import's request ran out of time")

// JSONPoster sends a JSON body with POST /api/<path> within limit;
// broker.MgmtReader is one.
type JSONPoster interface {
	PostJSON(ctx context.Context, path string, body []byte, limit time.Duration) error
}

// ImportTimeout bounds one definitions import, given the client's
// timeout. A busy broker takes seconds for a few hundred objects and goes
// on with an import whose request was cut, so the request gets at least
// 30 s plus 20 ms per object, 200 ms per quorum queue or stream, each of
// which starts a replicated log, and 100 ms per policy, each of which the
// broker writes and applies on its own (500 classic objects: 40 s; 500
// quorum queues: 2 min 10 s; 500 policies: 1 min 20 s). Measured on the
// 2-core machine under a load of 8: a batch of 500 quorum queues took
// 31–45 s; policies 17–28 ms each and over 80 ms each while another node
// imported 50,000 queues.
func ImportTimeout(timeout time.Duration, defs *Definitions) time.Duration {
	replicated := 0
	for _, q := range defs.Queues {
		if t := q.Type(); t == Quorum || t == Stream {
			replicated++
		}
	}
	policies := len(defs.Policies)
	per := time.Duration(defs.count()-replicated-policies)*20*time.Millisecond +
		time.Duration(replicated)*200*time.Millisecond + time.Duration(policies)*100*time.Millisecond
	return max(timeout, 30*time.Second) + per
}

// QueueCounter reads one queue's exact ready message and consumer counts
// in the vhost it is connected to; *broker.Dialer is one.
type QueueCounter interface {
	QueueCounts(ctx context.Context, queue string) (messages, consumers int, err error)
}

// JSONGetter decodes GET /api/<path> into v; broker.MgmtReader is one.
type JSONGetter interface {
	GetJSON(ctx context.Context, path string, query url.Values, v any) error
}

// Facts reads the broker's version (GET /api/overview) and, with a
// Reader, its deprecated features (GET /api/deprecated-features, 3.13+).
// A broker without that list, or a user who may not read it, leaves
// Features nil: the version rules decide then.
func (m *MgmtBroker) Facts(ctx context.Context) (BrokerFacts, error) {
	ov, err := m.Client.Overview()
	if err != nil {
		return BrokerFacts{}, err
	}
	facts := BrokerFacts{Version: ov.RabbitMQVersion}
	if m.Reader == nil {
		return facts, nil
	}
	var list []DeprecatedFeature
	if err := m.Reader.GetJSON(ctx, "deprecated-features", nil, &list); err != nil {
		var er rabbithole.ErrorResponse
		// Before 3.13 the endpoint does not exist: 404, or 406 when the
		// request asks for JSON (3.10).
		if k, _ := fail.KindOf(err); k == fail.Auth || (errors.As(err, &er) &&
			(er.StatusCode == http.StatusNotFound || er.StatusCode == http.StatusNotAcceptable || er.StatusCode == http.StatusForbidden)) {
			return facts, nil
		}
		return facts, fmt.Errorf("read the broker's deprecated features: %w", err)
	}
	facts.Features = make(map[string]DeprecatedFeature, len(list))
	for _, f := range list {
		facts.Features[f.Name] = f
	}
	return facts, nil
}

// DefaultQueueType reads the vhost's default queue type (GET
// /api/vhosts/{vhost}; 3.11+, "" before, or without a Reader), which 4.0+
// assumes for a declaration without x-queue-type.
func (m *MgmtBroker) DefaultQueueType(ctx context.Context, vhost string) (string, error) {
	if m.Reader == nil {
		return "", nil
	}
	var v struct {
		DefaultQueueType string `json:"default_queue_type"`
	}
	if err := m.Reader.GetJSON(ctx, "vhosts/"+url.PathEscape(vhost), nil, &v); err != nil {
		return "", err
	}
	if v.DefaultQueueType == "undefined" {
		return "", nil
	}
	return v.DefaultQueueType, nil
}

// ExclusiveQueues lists the vhost's exclusive queues, which definitions
// leave out: a queue of the same name makes an import skip the file's
// queue without an error.
func (m *MgmtBroker) ExclusiveQueues(ctx context.Context, vhost string) (map[string]bool, error) {
	qs, err := m.Client.ListQueuesWithParametersIn(vhost, url.Values{"columns": {"name,exclusive"}})
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, q := range qs {
		if q.Exclusive {
			out[q.Name] = true
		}
	}
	return out, nil
}

// Definitions implements Broker with GET /api/definitions/{vhost}. That
// endpoint wants the administrator tag (RabbitMQ 3.10); for a user without
// it (monitoring or management, read on the vhost) the same objects are
// read from the four lists such a user may read: queues, exchanges,
// bindings and policies of the vhost.
func (m *MgmtBroker) Definitions(ctx context.Context, vhost string) (*Definitions, error) {
	exp, err := m.Client.ListVhostDefinitions(vhost)
	if k, _ := fail.KindOf(err); k == fail.Auth {
		return m.listDefinitions(vhost)
	}
	if err != nil {
		return nil, err
	}
	return convertExport(exp)
}

// listDefinitions reads a vhost's objects the way a user without the
// administrator tag can, keeping what a definitions export keeps: no
// exclusive queues, no default or amq.* exchanges, no bindings of the
// default exchange.
func (m *MgmtBroker) listDefinitions(vhost string) (*Definitions, error) {
	d := &Definitions{}
	qs, err := m.Client.ListQueuesWithParametersIn(vhost, url.Values{"columns": {"name,vhost,durable,auto_delete,exclusive,arguments"}})
	if err != nil {
		return nil, err
	}
	for _, q := range qs {
		if !q.Exclusive {
			d.Queues = append(d.Queues, DefQueue{Name: q.Name, Vhost: q.Vhost, Durable: q.Durable, AutoDelete: bool(q.AutoDelete), Arguments: q.Arguments})
		}
	}
	xs, err := m.Client.ListExchangesIn(vhost)
	if err != nil {
		return nil, err
	}
	for _, e := range xs {
		if managedExchange(e.Name) {
			d.Exchanges = append(d.Exchanges, DefExchange{Name: e.Name, Vhost: e.Vhost, Type: e.Type, Durable: e.Durable, AutoDelete: bool(e.AutoDelete), Internal: e.Internal, Arguments: e.Arguments})
		}
	}
	bs, err := m.Client.ListBindingsIn(vhost)
	if err != nil {
		return nil, err
	}
	for _, b := range bs {
		if b.Source != "" {
			d.Bindings = append(d.Bindings, DefBinding{Source: b.Source, Vhost: b.Vhost, Destination: b.Destination, DestinationType: b.DestinationType, RoutingKey: b.RoutingKey, Arguments: b.Arguments})
		}
	}
	ps, err := m.Client.ListPoliciesIn(vhost)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		d.Policies = append(d.Policies, DefPolicy{Name: p.Name, Vhost: p.Vhost, Pattern: p.Pattern, ApplyTo: p.ApplyTo, Priority: p.Priority, Definition: p.Definition})
	}
	return d, nil
}

// listVhostNames reads the vhosts the user may see, by name only
// (broker.VhostNames) when it has a raw reader.
func (m *MgmtBroker) listVhostNames(ctx context.Context) ([]string, error) {
	if m.Reader != nil {
		return broker.VhostNames(ctx, m.Reader)
	}
	all, err := m.Client.ListVhosts()
	names := make([]string, len(all))
	for i, v := range all {
		names[i] = v.Name
	}
	return names, err
}

// AllDefinitions reads GET /api/definitions and splits it per vhost;
// without the administrator tag, every vhost the user may see one by one.
func (m *MgmtBroker) AllDefinitions(ctx context.Context) (map[string]*Definitions, error) {
	exp, err := m.Client.ListDefinitions()
	if k, _ := fail.KindOf(err); k == fail.Auth {
		vhosts, err := m.listVhostNames(ctx)
		if err != nil {
			return nil, err
		}
		out := map[string]*Definitions{}
		for _, v := range vhosts {
			if out[v], err = m.listDefinitions(v); err != nil {
				return nil, fmt.Errorf("vhost %s: %w", v, err)
			}
		}
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	all, err := convertExport(exp)
	if err != nil {
		return nil, err
	}
	return SplitByVhost(all), nil
}

// convertExport copies rabbit-hole's types into ours field by field (a
// JSON round trip costs a noticeable part of a 5,000-queue plan).
func convertExport(exp *rabbithole.ExportedDefinitions) (*Definitions, error) {
	d := &Definitions{}
	if exp.Queues != nil {
		d.Queues = make([]DefQueue, 0, len(*exp.Queues))
		for _, q := range *exp.Queues {
			d.Queues = append(d.Queues, DefQueue{Name: q.Name, Vhost: q.Vhost, Durable: q.Durable, AutoDelete: bool(q.AutoDelete), Arguments: q.Arguments})
		}
	}
	if exp.Exchanges != nil {
		d.Exchanges = make([]DefExchange, 0, len(*exp.Exchanges))
		for _, e := range *exp.Exchanges {
			d.Exchanges = append(d.Exchanges, DefExchange{Name: e.Name, Vhost: e.Vhost, Type: e.Type, Durable: e.Durable, AutoDelete: bool(e.AutoDelete), Internal: e.Internal, Arguments: e.Arguments})
		}
	}
	if exp.Bindings != nil {
		d.Bindings = make([]DefBinding, 0, len(*exp.Bindings))
		for _, b := range *exp.Bindings {
			d.Bindings = append(d.Bindings, DefBinding{Source: b.Source, Vhost: b.Vhost, Destination: b.Destination, DestinationType: b.DestinationType, RoutingKey: b.RoutingKey, Arguments: b.Arguments})
		}
	}
	if exp.Policies != nil && len(*exp.Policies) > 0 {
		// Policies arrive as plain maps; they are few.
		b, err := json.Marshal(*exp.Policies)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &d.Policies); err != nil {
			return nil, fmt.Errorf("read policies: %w", err)
		}
	}
	return d, nil
}

// QueueStates implements Broker with one GET /api/queues/{vhost}?columns=….
func (m *MgmtBroker) QueueStates(ctx context.Context, vhost string) (map[string]QueueState, error) {
	qs, err := m.Client.ListQueuesWithParametersIn(vhost, url.Values{"columns": {"name,messages,consumers"}})
	if err != nil {
		return nil, err
	}
	out := make(map[string]QueueState, len(qs))
	for _, q := range qs {
		out[q.Name] = QueueState{Messages: q.Messages, Consumers: q.Consumers}
	}
	return out, nil
}

// Import implements Broker with POST /api/definitions/{vhost} (through a
// Reader that can post; else POST /api/definitions, the objects carrying
// their vhost). A vhost-scoped import is what RabbitMQ offers for one
// vhost's objects, and the broker does no work for the others.
func (m *MgmtBroker) Import(ctx context.Context, vhost string, defs *Definitions) error {
	b, err := json.Marshal(defs)
	if err != nil {
		return err
	}
	limit := m.ImportLimit
	if limit <= 0 {
		limit = ImportTimeout(m.Timeout, defs)
	}
	var res *http.Response
	if p, ok := m.Reader.(JSONPoster); ok {
		err = p.PostJSON(ctx, "definitions/"+url.PathEscape(vhost), b, limit)
	} else {
		var exp rabbithole.ExportedDefinitions
		if err := json.Unmarshal(b, &exp); err != nil {
			return err
		}
		client := *m.Client
		client.SetTimeout(limit)
		if res, err = client.UploadDefinitions(&exp); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Timeout() {
		// Not the generic "did not answer within --timeout": the API
		// answered everything else, and the import goes on server-side.
		return fmt.Errorf("the broker did not finish the import of %d objects within %s (--import-timeout) and may still be carrying it out: %w", defs.count(), limit, ErrImportCut)
	}
	if err != nil {
		var er rabbithole.ErrorResponse
		if errors.As(err, &er) {
			er.Reason = BrokerText(er.Reason)
			if strings.Contains(er.Message, "cannot unmarshal array") {
				// RabbitMQ 3.x sends some reasons as Erlang character
				// lists, which the client cannot decode.
				er.Message = ""
				er.Reason = "the broker's reason came in a form mqctl cannot read (RabbitMQ 3.x); its log has it"
			}
			return er
		}
		return err
	}
	return nil
}

// DeleteBinding implements Broker; it looks the binding's properties key up
// first, which the delete URL needs and definitions do not carry.
func (m *MgmtBroker) DeleteBinding(ctx context.Context, vhost string, b DefBinding) error {
	var list []rabbithole.BindingInfo
	var err error
	if b.DestinationType == "exchange" {
		list, err = m.Client.ListExchangeBindingsBetween(vhost, b.Source, b.Destination)
	} else {
		list, err = m.Client.ListQueueBindingsBetween(vhost, b.Source, b.Destination)
	}
	if err != nil {
		return err
	}
	for _, l := range list {
		if l.RoutingKey == b.RoutingKey && sameValue(l.Arguments, b.Arguments) {
			l.Vhost = vhost
			_, err := m.Client.DeleteBinding(vhost, l)
			return err
		}
	}
	return nil // already gone
}

// DeletePolicy implements Broker.
func (m *MgmtBroker) DeletePolicy(ctx context.Context, vhost, name string) error {
	_, err := m.Client.DeletePolicy(vhost, name)
	return err
}

// DeleteExchange implements Broker.
func (m *MgmtBroker) DeleteExchange(ctx context.Context, vhost, name string) error {
	_, err := m.Client.DeleteExchange(vhost, name)
	return err
}

// DeleteQueueIfEmpty implements Broker. Quorum queues do not support
// if-empty on delete, so the counts are checked here: the management
// figures (messages including unacknowledged, consumers) and, when Counter
// reaches the vhost, the exact ready count. Classic queues also get
// if-empty/if-unused.
//
// A broker with management statistics off reports no counts at all
// (rabbit-hole reads them as 0): then only the AMQP count decides, and
// without it (a queue of another vhost than --url's) the queue is kept.
func (m *MgmtBroker) DeleteQueueIfEmpty(ctx context.Context, vhost, name string) (string, error) {
	why, q, err := m.inUse(ctx, vhost, name)
	if err != nil || why != "" {
		return why, err
	}
	var opts []rabbithole.QueueDeleteOptions
	if q.Type == "" || q.Type == Classic {
		opts = append(opts, rabbithole.QueueDeleteOptions{IfEmpty: true, IfUnused: true})
	}
	if _, err := m.Client.DeleteQueue(vhost, name, opts...); err != nil {
		return "", err
	}
	return "", nil
}

// QueueInUse implements Broker with DeleteQueueIfEmpty's checks.
func (m *MgmtBroker) QueueInUse(ctx context.Context, vhost, name string) (string, error) {
	why, _, err := m.inUse(ctx, vhost, name)
	return why, err
}

func (m *MgmtBroker) inUse(ctx context.Context, vhost, name string) (string, liveQueue, error) {
	q, err := m.queueCounts(ctx, vhost, name)
	if err != nil {
		return "", q, err
	}
	if q.Messages != nil && q.Consumers != nil && (*q.Messages > 0 || *q.Consumers > 0) {
		return fmt.Sprintf("holds %d messages, %d consumers", *q.Messages, *q.Consumers), q, nil
	}
	if m.Counter != nil && vhost == m.CounterVhost {
		messages, consumers, err := m.Counter.QueueCounts(ctx, name)
		if err != nil {
			return "", q, fmt.Errorf("check that queue %s is empty: %w", name, err)
		}
		if messages > 0 || consumers > 0 {
			return fmt.Sprintf("holds %d messages, %d consumers", messages, consumers), q, nil
		}
	} else if q.Messages == nil || q.Consumers == nil {
		return "its message count is unknown: the broker keeps no management statistics, and mqctl counts over AMQP only in the vhost of --url", q, nil
	}
	return "", q, nil
}

// liveQueue is what the emptiness check reads of a queue; counts are nil
// when the broker did not report them.
type liveQueue struct {
	Type      string `json:"type"`
	Messages  *int   `json:"messages"`
	Consumers *int   `json:"consumers"`
}

// queueCounts reads GET /api/queues/{vhost}/{name}, through Reader when set
// so that missing counts stay missing.
func (m *MgmtBroker) queueCounts(ctx context.Context, vhost, name string) (liveQueue, error) {
	var q liveQueue
	if m.Reader != nil {
		err := m.Reader.GetJSON(ctx, "queues/"+url.PathEscape(vhost)+"/"+url.PathEscape(name), nil, &q)
		return q, err
	}
	info, err := m.Client.GetQueue(vhost, name)
	if err != nil {
		return q, err
	}
	return liveQueue{Type: info.Type, Messages: &info.Messages, Consumers: &info.Consumers}, nil
}

// SplitByVhost groups a whole-broker definitions document per vhost.
func SplitByVhost(d *Definitions) map[string]*Definitions {
	out := map[string]*Definitions{}
	get := func(v string) *Definitions {
		if out[v] == nil {
			out[v] = &Definitions{}
		}
		return out[v]
	}
	for _, q := range d.Queues {
		get(q.Vhost).Queues = append(get(q.Vhost).Queues, q)
	}
	for _, e := range d.Exchanges {
		get(e.Vhost).Exchanges = append(get(e.Vhost).Exchanges, e)
	}
	for _, b := range d.Bindings {
		get(b.Vhost).Bindings = append(get(b.Vhost).Bindings, b)
	}
	for _, p := range d.Policies {
		get(p.Vhost).Policies = append(get(p.Vhost).Policies, p)
	}
	return out
}

var (
	erlangBinary      = regexp.MustCompile(`<<"((?:[^"\\]|\\.)*)">>`)
	wholeErlangBinary = regexp.MustCompile(`^<<"((?:[^"\\]|\\.)*)">>$`)
)

// BrokerText makes an error text of the management API readable: 4.0
// (and 3.x) HTML-escape some of them (&lt;&lt;, &#39;), and policy
// validation errors arrive as printed Erlang binaries, <<"...\n...">>
// with escaped quotes and newlines. The result is one line.
func BrokerText(s string) string {
	s = html.UnescapeString(s)
	if m := wholeErlangBinary.FindStringSubmatch(s); m != nil {
		s = unescapeErlang(m[1])
	}
	s = erlangBinary.ReplaceAllStringFunc(s, func(b string) string {
		return strconv.Quote(unescapeErlang(b[3 : len(b)-3]))
	})
	return strings.Join(strings.Fields(s), " ")
}

func unescapeErlang(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
