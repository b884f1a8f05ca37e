package topology

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/mqctl/mqctl/internal/inputfile"
)

// What each RabbitMQ version does with the settings below was checked on
// 3.10.8, 4.0.5 and 4.3.6 (definitions import, HTTP declare and policy
// PUT), and against the 4.3.0 release notes and the broker's source:
//
//	setting                      3.10   4.0.5                  4.3.6
//	x-queue-master-locator       ok     ok (deprecated)        import 204, queue skipped (feature denied)
//	  on a quorum queue          400    400                    400
//	policy queue-master-locator  ok     ok                     400 (feature denied)
//	x-queue-leader-locator       400 on classic queues; ok on quorum; ok from 4.0
//	x-queue-version: 1           ok     ok                     400 (CQv1 removed in 4.3.0)
//	policy queue-version: 1      ok     ok                     ok (no effect)
//	x-queue-mode / queue-mode    ok     ok                     ok (no effect since 3.12; the
//	                                                           4.3.0 notes announce a refusal
//	                                                           that 4.3.6 does not make)
//	policy ha-* keys             ok     400                    400 (mirroring removed in 4.0)
//	durable: false (transient)   ok     ok (deprecated)        ok: Debian's 4.3.6 lists
//	                                                           transient_nonexcl_queues as
//	                                                           permitted, upstream 4.3.0 denies it
//
// So deprecated features are judged by the broker's own list (GET
// /api/deprecated-features, 3.13+; its per-feature "state" from 4.3) and
// only without it by the version they are denied from by default.

// Compat is a setting of a topology file whose fate depends on the
// RabbitMQ version: a deprecated setting that newer brokers ignore, deny
// or refuse, or a newer one that older brokers refuse.
type Compat struct {
	// Pos is where the setting is written.
	Pos Pos `json:"-"`
	// Kind and Name name the object: KindQueue or KindPolicy.
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Setting is what the file says, e.g. "x-queue-master-locator",
	// "ha-mode, ha-params" or "durable: false".
	Setting string `json:"setting"`
	// Deprecated is true for settings RabbitMQ deprecates; validate warns
	// about those. The others are refused only by some versions.
	Deprecated bool `json:"deprecated"`
	// Problem says what RabbitMQ versions do with the setting.
	Problem string `json:"problem"`
	// Instead says what to write instead.
	Instead string `json:"instead"`

	// feature is the deprecated feature that governs the setting, and
	// deniedFrom the version that denies it by default; without a feature,
	// refusedFrom (and refusedBefore) are plain version rules.
	feature       string
	deniedFrom    Version
	refusedFrom   Version
	refusedBefore Version
	// effect says how a refusing broker fails.
	effect string
}

// Version is a RabbitMQ version, major.minor.patch.
type Version struct{ Major, Minor, Patch int }

// ParseVersion reads "4.3.6" (anything after the numbers, as in
// "4.0.5+2.g1a2b3c", is ignored); ok is false when s holds no version.
func ParseVersion(s string) (Version, bool) {
	var v Version
	nums := []*int{&v.Major, &v.Minor, &v.Patch}
	for i, part := range strings.SplitN(s, ".", 3) {
		end := 0
		for end < len(part) && part[end] >= '0' && part[end] <= '9' {
			end++
		}
		if end == 0 {
			return v, i == 2 // major and minor are required
		}
		*nums[i], _ = strconv.Atoi(part[:end])
		if end < len(part) {
			return v, i >= 1
		}
		if i == 2 {
			return v, true
		}
	}
	return v, strings.Count(s, ".") >= 1
}

// Less reports whether v is older than w.
func (v Version) Less(w Version) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	if v.Minor != w.Minor {
		return v.Minor < w.Minor
	}
	return v.Patch < w.Patch
}

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

func (v Version) zero() bool { return v == Version{} }

// BrokerFacts is what plan and apply know about the broker a file goes to.
type BrokerFacts struct {
	// Version is the broker's rabbitmq_version (GET /api/overview).
	Version string `json:"version"`
	// Features are the broker's deprecated features by name (GET
	// /api/deprecated-features); nil when the broker has no such list
	// (before 3.13) or mqctl could not read it.
	Features map[string]DeprecatedFeature `json:"deprecated_features,omitempty"`
}

// DeprecatedFeature is one entry of GET /api/deprecated-features.
type DeprecatedFeature struct {
	Name string `json:"name"`
	// Phase is permitted_by_default, denied_by_default, disconnected or
	// removed.
	Phase string `json:"deprecation_phase"`
	// State is permitted or denied: the phase with the node's
	// deprecated_features.permit.* settings applied (4.3+; older brokers
	// give only the phase).
	State string `json:"state,omitempty"`
}

// featureDenied says whether b denies the deprecated feature, and why.
func (b BrokerFacts) featureDenied(name string, deniedFrom Version) (bool, string) {
	if b.Features != nil {
		f, ok := b.Features[name]
		switch {
		case !ok:
			return false, "" // not deprecated on this version
		case f.State == "denied":
			return true, fmt.Sprintf("its deprecated feature %s is denied", name)
		case f.State != "":
			return false, ""
		case f.Phase == "removed" || f.Phase == "disconnected":
			return true, fmt.Sprintf("its deprecated feature %s is %s", name, f.Phase)
		case f.Phase == "denied_by_default":
			return true, fmt.Sprintf("it denies deprecated feature %s by default (deprecated_features.permit.%s = true in rabbitmq.conf allows it)", name, name)
		}
		return false, ""
	}
	v, ok := ParseVersion(b.Version)
	if ok && !deniedFrom.zero() && !v.Less(deniedFrom) {
		return true, fmt.Sprintf("RabbitMQ %s and later deny deprecated feature %s by default (this broker's own list could not be read)", deniedFrom, name)
	}
	return false, ""
}

// Refusal returns why broker b refuses the setting ("" when it accepts it).
func (c Compat) Refusal(b BrokerFacts) string {
	if c.feature != "" {
		if denied, why := b.featureDenied(c.feature, c.deniedFrom); denied {
			return why + "; " + c.effect
		}
		return ""
	}
	v, ok := ParseVersion(b.Version)
	if !ok {
		return ""
	}
	if !c.refusedFrom.zero() && !v.Less(c.refusedFrom) {
		return c.effect
	}
	if !c.refusedBefore.zero() && v.Less(c.refusedBefore) {
		return c.effect
	}
	return ""
}

func (c Compat) object() string { return fmt.Sprintf("%s %q", c.Kind, c.Name) }

// Compats lists the file's version-dependent settings, offline, in file
// order.
func Compats(f *File) []Compat {
	var out []Compat
	for _, q := range f.Queues {
		if q.Name == "" {
			continue
		}
		out = append(out, queueCompats(f, q)...)
	}
	for _, p := range f.Policies {
		if p.Name == "" {
			continue
		}
		out = append(out, policyCompats(p)...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Pos.Line != out[j].Pos.Line {
			return out[i].Pos.Line < out[j].Pos.Line
		}
		return out[i].Pos.Column < out[j].Pos.Column
	})
	return out
}

var (
	v4_0 = Version{4, 0, 0}
	v4_3 = Version{4, 3, 0}
)

func queueCompats(f *File, q Queue) []Compat {
	var out []Compat
	typ := f.QueueTypeOf(q)
	at := func(k string) Pos {
		if p, ok := q.argPos[k]; ok {
			return p
		}
		return q.Pos
	}
	base := Compat{Kind: KindQueue, Name: q.Name}
	for _, k := range sortedKeys(q.Arguments) {
		v := q.Arguments[k]
		c := base
		c.Pos, c.Setting = at(k), k
		switch {
		case k == "x-queue-master-locator" && typ == Classic:
			c.Deprecated, c.feature, c.deniedFrom = true, "queue_master_locator", v4_3
			c.Problem = "x-queue-master-locator is deprecated: RabbitMQ 4.3 denies it by default, and its definitions import then skips the queue without an error"
			c.Instead = fmt.Sprintf("use x-queue-leader-locator: %s instead (classic queues accept it from RabbitMQ 4.0)", LeaderLocatorFor(v))
			c.effect = "its definitions import would skip the queue without an error"
		case k == "x-queue-leader-locator" && typ == Classic:
			c.refusedBefore = v4_0
			c.Problem = "classic queues accept x-queue-leader-locator only from RabbitMQ 4.0"
			c.Instead = "on RabbitMQ 3.x use x-queue-master-locator, or leave the argument out"
			c.effect = "classic queues accept x-queue-leader-locator only from RabbitMQ 4.0 (HTTP 400 before)"
		case k == "x-queue-version" && isOne(v):
			c.Setting = "x-queue-version: 1"
			c.Deprecated, c.refusedFrom = true, v4_3
			c.Problem = "classic queue storage version 1 is removed in RabbitMQ 4.3, which refuses x-queue-version: 1"
			c.Instead = "remove the argument (version 2 is the only one from 4.3)"
			c.effect = "classic queue storage version 1 is removed there (HTTP 400)"
		case k == "x-queue-mode":
			c.Deprecated = true
			c.Problem = "x-queue-mode has had no effect since RabbitMQ 3.12 (every classic queue keeps messages on disk), and the 4.3 release notes announce that declaring it fails (4.3.6 still accepts it)"
			c.Instead = "remove the argument"
		default:
			continue
		}
		out = append(out, c)
	}
	if !q.durable() && typ == Classic {
		c := base
		c.Pos, c.Setting = q.durablePos, "durable: false"
		if c.Pos == (Pos{}) {
			c.Pos = q.Pos
		}
		c.Deprecated, c.feature, c.deniedFrom = true, "transient_nonexcl_queues", v4_3
		c.Problem = "a non-durable queue declared by mqctl is a transient non-exclusive queue, a deprecated combination (feature transient_nonexcl_queues) that RabbitMQ 4.3 denies by default unless the broker permits it"
		c.Instead = "make the queue durable (remove `durable: false`), with arguments {x-expires: MILLISECONDS} if it should go away when unused"
		c.effect = "it would not declare the queue"
		out = append(out, c)
	}
	return out
}

func policyCompats(p Policy) []Compat {
	var out []Compat
	at := func(k string) Pos {
		if pos, ok := p.keyPos[k]; ok {
			return pos
		}
		return p.Pos
	}
	base := Compat{Kind: KindPolicy, Name: p.Name}
	var ha []string
	for _, k := range sortedKeys(p.Definition) {
		if strings.HasPrefix(k, "ha-") {
			ha = append(ha, k)
		}
	}
	if len(ha) > 0 {
		c := base
		c.Pos, c.Setting = at(ha[0]), strings.Join(ha, ", ")
		for _, k := range ha[1:] {
			if pos := at(k); pos.Line < c.Pos.Line || (pos.Line == c.Pos.Line && pos.Column < c.Pos.Column) {
				c.Pos = pos
			}
		}
		c.Deprecated, c.feature, c.deniedFrom = true, "classic_queue_mirroring", v4_0
		c.Problem = fmt.Sprintf("ha-* keys (%s) configure classic queue mirroring, removed in RabbitMQ 4.0, which refuses the policy", c.Setting)
		c.Instead = "remove the ha-* keys (and the policy if nothing is left); replicate with quorum queues (type: quorum) instead"
		c.effect = "it refuses the policy (HTTP 400)"
		out = append(out, c)
	}
	for _, k := range sortedKeys(p.Definition) {
		v := p.Definition[k]
		c := base
		c.Pos, c.Setting = at(k), k
		switch {
		case k == "queue-master-locator":
			c.Deprecated, c.feature, c.deniedFrom = true, "queue_master_locator", v4_3
			c.Problem = "queue-master-locator is deprecated: RabbitMQ 4.3 denies it by default and refuses the policy"
			c.Instead = fmt.Sprintf("use queue-leader-locator: %s instead", LeaderLocatorFor(v))
			c.effect = "it refuses the policy (HTTP 400)"
		case k == "queue-version" && isOne(v):
			c.Setting = "queue-version: 1"
			c.Deprecated = true
			c.Problem = "classic queue storage version 1 is removed in RabbitMQ 4.3; the key has no effect there"
			c.Instead = "remove the key"
		case k == "queue-mode":
			c.Deprecated = true
			c.Problem = "queue-mode has had no effect since RabbitMQ 3.12 (every classic queue keeps messages on disk)"
			c.Instead = "remove the key"
		default:
			continue
		}
		out = append(out, c)
	}
	return out
}

func isOne(v any) bool {
	n, ok := asInt(v)
	return ok && n == 1
}

// LeaderLocatorFor translates a queue-master-locator value into the
// queue-leader-locator value RabbitMQ maps it to: client-local stays,
// min-masters, random and anything else become balanced.
func LeaderLocatorFor(master any) string {
	if s, _ := master.(string); s == "client-local" {
		return "client-local"
	}
	return "balanced"
}

// Warnings lists the file's deprecated settings for validate, which knows
// no broker: each says what RabbitMQ versions do with it and what to use
// instead.
func Warnings(f *File) inputfile.Problems {
	var out inputfile.Problems
	for _, c := range Compats(f) {
		if c.Deprecated {
			out = append(out, c.problem(f.Name, c.Problem+"; "+c.Instead))
		}
	}
	return out
}

// CheckBroker splits the file's version-dependent settings for broker b:
// refused are those b would refuse (plan and apply stop before changing
// anything), warnings the deprecated ones b still accepts.
func CheckBroker(f *File, b BrokerFacts) (refused, warnings inputfile.Problems) {
	version := b.Version
	if version == "" {
		version = "(version unknown)"
	}
	for _, c := range Compats(f) {
		if why := c.Refusal(b); why != "" {
			refused = append(refused, c.problem(f.Name, fmt.Sprintf("RabbitMQ %s refuses %s: %s; %s", version, c.Setting, why, c.Instead)))
			continue
		}
		if c.Deprecated {
			warnings = append(warnings, c.problem(f.Name, c.Problem+"; "+c.Instead))
		}
	}
	return refused, warnings
}

func (c Compat) problem(file, msg string) inputfile.Problem {
	return inputfile.Problem{File: file, Line: c.Pos.Line, Column: c.Pos.Column, Message: c.object() + ": " + msg}
}

// Conversion is one change Modernize made to a definitions document.
type Conversion struct {
	Vhost  string `json:"vhost"`
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Change string `json:"change"`
}

func (c Conversion) String() string {
	return fmt.Sprintf("%s %q (vhost %s): %s", c.Kind, c.Name, c.Vhost, c.Change)
}

// Modernize rewrites, in place, the settings of d (one vhost's
// definitions) that RabbitMQ 4.x denies or ignores and that have a
// translation: x-queue-master-locator becomes x-queue-leader-locator,
// x-queue-mode and x-queue-version 1 go, and so do the ha-* keys,
// queue-mode and queue-version 1 of policies (queue-master-locator becomes
// queue-leader-locator); a policy left empty goes too. It returns one
// Conversion per change, in a stable order. What has no translation
// (a transient queue) stays; Warnings reports it on the exported file.
func Modernize(vhost string, d *Definitions) []Conversion {
	var out []Conversion
	queues := append([]DefQueue(nil), d.Queues...)
	sort.SliceStable(queues, func(i, j int) bool { return queues[i].Name < queues[j].Name })
	for _, q := range queues {
		note := func(format string, a ...any) {
			out = append(out, Conversion{Vhost: vhost, Kind: KindQueue, Name: q.Name, Change: fmt.Sprintf(format, a...)})
		}
		args := q.Arguments
		if v, ok := args["x-queue-master-locator"]; ok {
			delete(args, "x-queue-master-locator")
			if have, ok := args["x-queue-leader-locator"]; ok {
				note("dropped x-queue-master-locator %v: x-queue-leader-locator %v is set (RabbitMQ 4.3 denies x-queue-master-locator)", v, have)
			} else {
				args["x-queue-leader-locator"] = LeaderLocatorFor(v)
				note("x-queue-master-locator %v → x-queue-leader-locator %s (RabbitMQ 4.3 denies x-queue-master-locator; classic queues accept x-queue-leader-locator from 4.0)", v, LeaderLocatorFor(v))
			}
		}
		if v, ok := args["x-queue-mode"]; ok {
			delete(args, "x-queue-mode")
			note("dropped x-queue-mode %v (no effect since RabbitMQ 3.12; the 4.3 release notes announce it is refused)", v)
		}
		if v, ok := args["x-queue-version"]; ok && isOne(v) {
			delete(args, "x-queue-version")
			note("dropped x-queue-version 1 (RabbitMQ 4.3 refuses it; version 2 is the only one there)")
		}
	}

	kept := d.Policies[:0]
	policies := append([]DefPolicy(nil), d.Policies...)
	sort.SliceStable(policies, func(i, j int) bool { return policies[i].Name < policies[j].Name })
	dropped := map[string]bool{}
	for _, p := range policies {
		note := func(format string, a ...any) {
			out = append(out, Conversion{Vhost: vhost, Kind: KindPolicy, Name: p.Name, Change: fmt.Sprintf(format, a...)})
		}
		def := p.Definition
		changed := false
		var ha []string
		for _, k := range sortedKeys(def) {
			if strings.HasPrefix(k, "ha-") {
				ha = append(ha, k)
				delete(def, k)
			}
		}
		if len(ha) > 0 {
			changed = true
			note("dropped %s (classic queue mirroring is removed in RabbitMQ 4.0; use quorum queues for replication)", strings.Join(ha, ", "))
		}
		if v, ok := def["queue-master-locator"]; ok {
			changed = true
			delete(def, "queue-master-locator")
			if _, ok := def["queue-leader-locator"]; ok {
				note("dropped queue-master-locator %v: queue-leader-locator is set (RabbitMQ 4.3 denies queue-master-locator)", v)
			} else {
				def["queue-leader-locator"] = LeaderLocatorFor(v)
				note("queue-master-locator %v → queue-leader-locator %s (RabbitMQ 4.3 denies queue-master-locator)", v, LeaderLocatorFor(v))
			}
		}
		if v, ok := def["queue-mode"]; ok {
			changed = true
			delete(def, "queue-mode")
			note("dropped queue-mode %v (no effect since RabbitMQ 3.12)", v)
		}
		if v, ok := def["queue-version"]; ok && isOne(v) {
			changed = true
			delete(def, "queue-version")
			note("dropped queue-version 1 (classic queue storage version 1 is removed in RabbitMQ 4.3)")
		}
		if changed && len(def) == 0 {
			dropped[p.Name] = true
			note("dropped the policy: nothing is left of its definition")
		}
	}
	for _, p := range d.Policies {
		if !dropped[p.Name] {
			kept = append(kept, p)
		}
	}
	d.Policies = kept
	return out
}
