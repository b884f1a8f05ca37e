package dlq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/fail"
)

// GroupBy names the fields dead letters are grouped by: the newest
// death's origin queue, reason, and normalised error (NormalizeError).
type GroupBy struct{ Origin, Reason, Error bool }

// GroupAll groups by origin, reason and error.
var GroupAll = GroupBy{Origin: true, Reason: true, Error: true}

// allGroupings are the seven non-empty GroupBys: a --group key selects
// whichever of them it was printed for.
var allGroupings = func() []GroupBy {
	var out []GroupBy
	for i := 1; i < 8; i++ {
		out = append(out, GroupBy{Origin: i&1 != 0, Reason: i&2 != 0, Error: i&4 != 0})
	}
	return out
}()

// ParseGroupBy reads a --group-by list: any of origin, reason, error.
func ParseGroupBy(fields []string) (GroupBy, error) {
	var g GroupBy
	for _, f := range fields {
		switch strings.TrimSpace(f) {
		case "origin":
			g.Origin = true
		case "reason":
			g.Reason = true
		case "error":
			g.Error = true
		default:
			return GroupBy{}, fail.Usagef("--group-by %q: want a list of origin, reason, error (e.g. --group-by origin,reason)", f)
		}
	}
	if g == (GroupBy{}) {
		return GroupBy{}, fail.Usagef("--group-by: name at least one of origin, reason, error")
	}
	return g, nil
}

// String is the GroupBy as a --group-by value.
func (g GroupBy) String() string {
	var parts []string
	for _, p := range []struct {
		on   bool
		name string
	}{{g.Origin, "origin"}, {g.Reason, "reason"}, {g.Error, "error"}} {
		if p.on {
			parts = append(parts, p.name)
		}
	}
	return strings.Join(parts, ",")
}

// Key is the group key of a death under g: 8 hex digits of a SHA-256 of
// the grouping and the grouped values, so that a key names one group of
// one grouping and `--group KEY` finds it again.
func (g GroupBy) Key(d Death) string {
	origin, reason, errText := g.values(d)
	sum := sha256.Sum256([]byte(g.String() + "\x00" + origin + "\x00" + reason + "\x00" + errText))
	return hex.EncodeToString(sum[:4])
}

// values are the grouped fields of d, "" for those g leaves out.
func (g GroupBy) values(d Death) (origin, reason, errText string) {
	if g.Origin {
		origin = d.OriginQueue
	}
	if g.Reason {
		reason = d.Reason
		if d.Source == "" {
			reason = "unknown"
		}
	}
	if g.Error {
		errText = NormalizeError(d.Failure)
	}
	return origin, reason, errText
}

// Group is the dead letters that share the grouped fields. Fields not
// grouped by are absent.
type Group struct {
	Key    string  `json:"key"`
	Origin *string `json:"origin,omitempty"`
	Reason *string `json:"reason,omitempty"`
	Error  *string `json:"error,omitempty"`
	Count  int     `json:"count"`
	// FirstDeath and LastDeath are the oldest and the newest of the
	// members' newest deaths.
	FirstDeath *Timestamp `json:"first_death"`
	LastDeath  *Timestamp `json:"last_death"`
	// SampleIDs are the first few members' ids, in queue order.
	SampleIDs []string `json:"sample_ids"`
}

// Grouping counts dead letters into groups. Memory is bounded by the
// number of groups: a group keeps counters, two times and a few ids,
// never a body.
type Grouping struct {
	by      GroupBy
	samples int
	groups  map[string]*Group
}

// NewGrouping groups by by, keeping up to samples ids per group.
func NewGrouping(by GroupBy, samples int) *Grouping {
	return &Grouping{by: by, samples: max(samples, 1), groups: map[string]*Group{}}
}

// Add counts one dead letter.
func (g *Grouping) Add(id string, d Death) {
	key := g.by.Key(d)
	gr, ok := g.groups[key]
	if !ok {
		gr = &Group{Key: key, SampleIDs: []string{}}
		origin, reason, errText := g.by.values(d)
		if g.by.Origin {
			gr.Origin = &origin
		}
		if g.by.Reason {
			gr.Reason = &reason
		}
		if g.by.Error {
			gr.Error = &errText
		}
		g.groups[key] = gr
	}
	gr.Count++
	if len(gr.SampleIDs) < g.samples && !contains(gr.SampleIDs, id) {
		gr.SampleIDs = append(gr.SampleIDs, id)
	}
	if t := d.LastDeathAt; t != nil {
		if gr.FirstDeath == nil || t.Before(gr.FirstDeath.Time) {
			gr.FirstDeath = t
		}
		if gr.LastDeath == nil || t.After(gr.LastDeath.Time) {
			gr.LastDeath = t
		}
	}
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// Groups are the groups, largest first (then by key, so the order is
// stable).
func (g *Grouping) Groups() []Group {
	out := make([]Group, 0, len(g.groups))
	for _, gr := range g.groups {
		out = append(out, *gr)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// GroupResult is what GroupQueue read and found.
type GroupResult struct {
	PeekResult
	Groups []Group
}

// GroupQueue reads up to limit (0: all) messages of queue the way Peek
// does (nothing consumed, every message returned in order), and groups
// those filter selects (nil: all).
func GroupQueue(ctx context.Context, conn *amqp.Connection, queue string, limit int, by GroupBy, filter *Filter) (GroupResult, error) {
	g := NewGrouping(by, 3)
	res, err := peekDeliveries(ctx, conn, queue, limit, func(d amqp.Delivery) error {
		s, err := Summarize(queue, d)
		if err != nil {
			return err
		}
		if !filter.match(d, s.ID, s.Death) {
			return nil
		}
		g.Add(s.ID, s.Death)
		return nil
	})
	out := GroupResult{PeekResult: res, Groups: g.Groups()}
	for _, gr := range out.Groups {
		out.Selected += gr.Count
	}
	return out, err
}
