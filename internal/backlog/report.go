package backlog

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mqctl/mqctl/internal/deadletter"
)

// Warning names a condition an operator should look at.
type Warning string

// Warnings a row can carry.
const (
	// WarnNoConsumer: a work queue has ready messages and no consumer.
	WarnNoConsumer Warning = "no_consumer"
	// WarnDLQNotEmpty: the queue's DLQ (or the DLQ itself) holds messages.
	WarnDLQNotEmpty Warning = "dlq_not_empty"
	// WarnBelowQuorum: fewer quorum queue members online than a majority.
	WarnBelowQuorum Warning = "below_quorum"
	// WarnNoDLQ: the queue dead-letters to an exchange that routes to no
	// queue, so its dead letters are dropped (exchange-to-exchange bindings
	// are not followed).
	WarnNoDLQ Warning = "dead_letters_unroutable"
	// WarnNotRunning: the broker reports the queue in a state other than
	// running or idle (down, crashed, stopped…).
	WarnNotRunning Warning = "not_running"
	// WarnCountsUnknown: the management API gave no message counts for
	// the queue, not even as queue totals, so nothing can say whether it
	// is piling up.
	WarnCountsUnknown Warning = "counts_unknown"
)

// DLQ is a dead-letter queue and its depth (null when unknown).
type DLQ struct {
	Name     string `json:"name"`
	Messages *int   `json:"messages"`
}

// Row is one queue in the backlog report. Every field is always present
// in JSON; the names are part of mqctl's contract.
//
// A figure the management API does not give is null, never 0: with
// management metrics collection off the broker reports no consumers and
// no rates, and message counts only as queue totals (see HTTPSource).
type Row struct {
	Vhost     string          `json:"vhost"`
	Name      string          `json:"name"`
	Type      string          `json:"type"`
	State     string          `json:"state"`
	Role      deadletter.Role `json:"role"`
	Ready     *int            `json:"ready"`
	Unacked   *int            `json:"unacked"`
	Messages  *int            `json:"messages"` // ready + unacked
	Consumers *int            `json:"consumers"`
	// Rates in messages per second over the management API's last sample.
	PublishRate *float64 `json:"publish_rate"`
	DeliverRate *float64 `json:"deliver_rate"`
	AckRate     *float64 `json:"ack_rate"`
	// OldestMessageAt is the timestamp property of the message at the head
	// of the queue, when the broker reports it (classic queues, messages
	// published with a timestamp); null otherwise.
	OldestMessageAt *time.Time `json:"oldest_message_at"`
	// OldestMessageAgeSeconds is now minus OldestMessageAt; null when unknown.
	OldestMessageAgeSeconds *float64 `json:"oldest_message_age_seconds"`
	// DeadLetter is how the queue dead-letters and where; null when it
	// does not.
	DeadLetter *deadletter.Link `json:"dead_letter"`
	DLQs       []DLQ            `json:"dlqs"`
	// DLQMessages sums DLQs; null when any of them is unknown.
	DLQMessages *int `json:"dlq_messages"`
	// Quorum queues: the leader node, all members, the members online.
	Leader        string    `json:"leader"`
	Members       []string  `json:"members"`
	Online        []string  `json:"online"`
	MembersOnline int       `json:"members_online"`
	Warnings      []Warning `json:"warnings"`
}

// Summary totals the rows of a report. A total is null when a count
// that goes into it is unknown: a partial sum would understate the
// backlog.
type Summary struct {
	Queues   int  `json:"queues"`
	Messages *int `json:"messages"`
	Ready    *int `json:"ready"`
	Unacked  *int `json:"unacked"`
	// DLQMessages is the depth of every distinct DLQ linked from a row or
	// shown as a row, each counted once.
	DLQMessages *int `json:"dlq_messages"`
	Warnings    int  `json:"warnings"` // rows with at least one warning
	// CountsUnknown is the number of rows whose message counts are
	// unknown.
	CountsUnknown int `json:"counts_unknown"`
}

// Report is the backlog at one moment.
type Report struct {
	Taken   time.Time `json:"taken"`
	Vhost   string    `json:"vhost"` // "" with --all-vhosts
	Sort    SortKey   `json:"sort"`
	Queues  []Row     `json:"queues"`
	Summary Summary   `json:"summary"`
}

// SortKey orders the report.
type SortKey string

// Sort keys; numbers sort largest first, name alphabetically.
const (
	SortReady     SortKey = "ready"
	SortUnacked   SortKey = "unacked"
	SortMessages  SortKey = "messages"
	SortConsumers SortKey = "consumers"
	SortPublish   SortKey = "publish_rate"
	SortDeliver   SortKey = "deliver_rate"
	SortDLQ       SortKey = "dlq"
	SortName      SortKey = "name"
)

// SortKeys lists the accepted sort keys, for help and validation.
var SortKeys = []SortKey{SortReady, SortUnacked, SortMessages, SortConsumers, SortPublish, SortDeliver, SortDLQ, SortName}

// ParseSort validates a sort key.
func ParseSort(s string) (SortKey, error) {
	for _, k := range SortKeys {
		if string(k) == s {
			return k, nil
		}
	}
	names := make([]string, len(SortKeys))
	for i, k := range SortKeys {
		names[i] = string(k)
	}
	return "", fmt.Errorf("unknown sort key %q: want one of %s", s, strings.Join(names, ", "))
}

// Matcher selects queues by name with shell-style globs: * any run of
// characters (dots and slashes included), ? one character. No globs match
// everything.
type Matcher struct {
	globs []string
	res   []*regexp.Regexp
}

// NewMatcher compiles globs.
func NewMatcher(globs []string) Matcher {
	m := Matcher{globs: globs}
	for _, g := range globs {
		var b strings.Builder
		b.WriteString("^")
		for _, r := range g {
			switch r {
			case '*':
				b.WriteString(".*")
			case '?':
				b.WriteString(".")
			default:
				b.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		b.WriteString("$")
		m.res = append(m.res, regexp.MustCompile(b.String()))
	}
	return m
}

// Match reports whether name matches any glob (or there are none).
func (m Matcher) Match(name string) bool {
	if len(m.res) == 0 {
		return true
	}
	for _, re := range m.res {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// Unmatched returns the globs that match none of names.
func (m Matcher) Unmatched(names []string) []string {
	var out []string
	for i, re := range m.res {
		if !slices.ContainsFunc(names, re.MatchString) {
			out = append(out, m.globs[i])
		}
	}
	return out
}

// Query says which queues a report covers, and how.
type Query struct {
	// Vhost is the vhost read; "" reads every vhost.
	Vhost string
	// Globs select queues by name (see Matcher); none selects all.
	Globs []string
	Sort  SortKey
	// PageSize is the queue list's page size (see FetchQueues): 0 reads
	// the whole list at once; out of 0..MaxPageSize it is MaxPageSize.
	PageSize int
}

// Read takes one snapshot through src and builds the report of the
// queues q selects; unmatched lists the globs that matched no queue.
func Read(ctx context.Context, src Source, q Query) (rep Report, unmatched []string, err error) {
	snap, err := Fetch(ctx, src, q.Vhost, q.PageSize)
	if err != nil {
		return Report{}, nil, err
	}
	m := NewMatcher(q.Globs)
	names := make([]string, len(snap.Queues))
	for i, s := range snap.Queues {
		names[i] = s.Name
	}
	return Build(snap, q.Vhost, m, q.Sort), m.Unmatched(names), nil
}

// Build turns a snapshot into a report of the queues matching m, sorted by
// key, with DLQ links, roles and warnings.
func Build(s Snapshot, vhost string, m Matcher, key SortKey) Report {
	g := s.Graph()
	stats := make(map[qkey]*QueueStat, len(s.Queues))
	for i := range s.Queues {
		stats[qkey{s.Queues[i].Vhost, s.Queues[i].Name}] = &s.Queues[i]
	}
	rep := Report{Taken: s.Taken, Vhost: vhost, Sort: key, Queues: []Row{}}
	sum := struct{ messages, ready, unacked, dlq total }{}
	dlqCounted := map[qkey]bool{}
	countDLQ := func(k qkey, n *int) {
		if !dlqCounted[k] {
			dlqCounted[k] = true
			sum.dlq.add(n)
		}
	}
	for i := range s.Queues {
		q := &s.Queues[i]
		if !m.Match(q.Name) {
			continue
		}
		r := newRow(q, g.Role(q.Vhost, q.Name), g.Link(q.Vhost, q.Name), s.Taken)
		if r.DeadLetter != nil {
			var dlqs total
			for _, d := range r.DeadLetter.Queues {
				n := stats[qkey{q.Vhost, d}].Messages()
				r.DLQs = append(r.DLQs, DLQ{Name: d, Messages: n})
				dlqs.add(n)
				countDLQ(qkey{q.Vhost, d}, n)
			}
			r.DLQMessages = dlqs.value()
		}
		if r.Role == deadletter.RoleDLQ {
			countDLQ(qkey{q.Vhost, q.Name}, r.Messages)
		}
		r.Warnings = warnings(r)
		rep.Queues = append(rep.Queues, r)
		rep.Summary.Queues++
		sum.messages.add(r.Messages)
		sum.ready.add(r.Ready)
		sum.unacked.add(r.Unacked)
		if r.Messages == nil {
			rep.Summary.CountsUnknown++
		}
		if len(r.Warnings) > 0 {
			rep.Summary.Warnings++
		}
	}
	rep.Summary.Messages, rep.Summary.Ready, rep.Summary.Unacked = sum.messages.value(), sum.ready.value(), sum.unacked.value()
	rep.Summary.DLQMessages = sum.dlq.value()
	sortRows(rep.Queues, key)
	return rep
}

// newRow is q's row before its DLQs' depths and warnings are known.
func newRow(q *QueueStat, role deadletter.Role, link *deadletter.Link, taken time.Time) Row {
	r := Row{
		Vhost: q.Vhost, Name: q.Name, Type: q.Type, State: q.State, Role: role,
		Ready: q.Ready, Unacked: q.Unacked, Messages: q.Messages(), Consumers: q.Consumers,
		PublishRate: q.Publish, DeliverRate: q.Deliver, AckRate: q.Ack,
		DeadLetter: link, DLQs: []DLQ{}, DLQMessages: new(int),
		Leader: q.Leader, Members: nonNil(q.Members), Online: nonNil(q.Online), MembersOnline: len(q.Online),
		Warnings: []Warning{},
	}
	if q.HeadStamp != nil && r.Ready != nil && *r.Ready > 0 {
		t := *q.HeadStamp
		age := max(taken.Sub(t).Seconds(), 0)
		r.OldestMessageAt, r.OldestMessageAgeSeconds = &t, &age
	}
	return r
}

// total sums counts some of which may be unknown; an unknown part makes
// the total unknown.
type total struct {
	n       int
	unknown bool
}

func (t *total) add(n *int) {
	if n == nil {
		t.unknown = true
		return
	}
	t.n += *n
}

func (t total) value() *int {
	if t.unknown {
		return nil
	}
	n := t.n
	return &n
}

// positive reports whether n is known and above 0.
func positive(n *int) bool { return n != nil && *n > 0 }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// BelowQuorum reports whether a quorum queue has fewer members online than
// a majority of its members.
func (r Row) BelowQuorum() bool {
	return r.Type == "quorum" && len(r.Members) > 0 && r.MembersOnline < len(r.Members)/2+1
}

func warnings(r Row) []Warning {
	w := []Warning{}
	if r.Messages == nil {
		w = append(w, WarnCountsUnknown)
	}
	if r.Role == deadletter.RoleWork && positive(r.Ready) && r.Consumers != nil && *r.Consumers == 0 {
		w = append(w, WarnNoConsumer)
	}
	if positive(r.DLQMessages) || (r.Role == deadletter.RoleDLQ && positive(r.Messages)) {
		w = append(w, WarnDLQNotEmpty)
	}
	if r.DeadLetter != nil && len(r.DeadLetter.Queues) == 0 {
		w = append(w, WarnNoDLQ)
	}
	if r.BelowQuorum() {
		w = append(w, WarnBelowQuorum)
	}
	// Without statistics 3.x reports "live" for a queue process that runs.
	if r.State != "" && r.State != "running" && r.State != "idle" && r.State != "live" {
		w = append(w, WarnNotRunning)
	}
	return w
}

// sortRows orders rows by key, largest first; an unknown figure sorts
// after every known one.
func sortRows(rows []Row, key SortKey) {
	count := func(n *int) float64 {
		if n == nil {
			return -1
		}
		return float64(*n)
	}
	rate := func(f *float64) float64 {
		if f == nil {
			return -1
		}
		return *f
	}
	num := func(r Row) float64 {
		switch key {
		case SortUnacked:
			return count(r.Unacked)
		case SortMessages:
			return count(r.Messages)
		case SortConsumers:
			return count(r.Consumers)
		case SortPublish:
			return rate(r.PublishRate)
		case SortDeliver:
			return rate(r.DeliverRate)
		case SortDLQ:
			return count(r.DLQMessages)
		}
		return count(r.Ready)
	}
	slices.SortStableFunc(rows, func(a, b Row) int {
		if key != SortName {
			if c := cmp.Compare(num(b), num(a)); c != 0 {
				return c
			}
		}
		if c := cmp.Compare(a.Vhost, b.Vhost); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
}
