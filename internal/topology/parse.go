package topology

import (
	"fmt"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"

	"github.com/mqctl/mqctl/internal/inputfile"
	"github.com/mqctl/mqctl/internal/pattern"
)

// Load reads, parses and validates the topology file at path. On invalid
// input the error is inputfile.Problems listing every problem found.
// A file over inputfile.MaxTopologyFile, or one that is not UTF-8 text, is
// refused before parsing.
func Load(path string) (*File, error) {
	data, err := inputfile.ReadFile(path, "a topology file", inputfile.MaxTopologyFile)
	if err != nil {
		return nil, err
	}
	return ParseAndValidate(path, data)
}

// ParseAndValidate parses data and validates the result; every problem of
// both stages is returned at once, sorted by position.
func ParseAndValidate(name string, data []byte) (*File, error) {
	f, _, err := ParseAndCheck(name, data)
	return f, err
}

// LoadChecked is Load that also returns the file's warnings: its
// deprecated settings (see Warnings), found even when the file is invalid.
func LoadChecked(path string) (*File, inputfile.Problems, error) {
	data, err := inputfile.ReadFile(path, "a topology file", inputfile.MaxTopologyFile)
	if err != nil {
		return nil, nil, err
	}
	return ParseAndCheck(path, data)
}

// ParseAndCheck is ParseAndValidate that also returns the file's
// warnings, sorted by position, even when the file is invalid.
func ParseAndCheck(name string, data []byte) (*File, inputfile.Problems, error) {
	f, probs := Parse(name, data)
	var warnings inputfile.Problems
	if f != nil {
		probs = append(probs, Validate(f)...)
		warnings = Warnings(f)
		sortProblems(warnings)
	}
	if len(probs) > 0 {
		sortProblems(probs)
		return nil, warnings, probs
	}
	return f, warnings, nil
}

func sortProblems(ps inputfile.Problems) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Line != ps[j].Line {
			return ps[i].Line < ps[j].Line
		}
		return ps[i].Column < ps[j].Column
	})
}

// Parse reads data (YAML) into a File without semantic checks. It walks the
// YAML syntax tree so that every problem (unknown key, duplicate key, wrong
// type) carries a line and column, and it keeps going after a problem so one
// run reports them all. A nil File means the YAML itself did not parse.
func Parse(name string, data []byte) (*File, inputfile.Problems) {
	if len(data) > inputfile.MaxTopologyFile {
		return nil, inputfile.Problems{{File: name, Message: fmt.Sprintf("a topology file may be at most %s; this one holds %s", inputfile.Bytes(inputfile.MaxTopologyFile), inputfile.Bytes(int64(len(data))))}}
	}
	if p := inputfile.CheckText(name, data); p != nil {
		return nil, inputfile.Problems{*p}
	}
	astFile, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, inputfile.Problems{inputfile.FromError(name, err)}
	}
	r := &reader{file: name}
	f := &File{Name: name}
	var body ast.Node
	for _, d := range astFile.Docs {
		if d == nil || d.Body == nil {
			continue
		}
		if body != nil {
			r.addf(d.Body, "a topology file holds one YAML document; found another")
			continue
		}
		body = d.Body
	}
	if body == nil {
		r.probs = append(r.probs, inputfile.Problem{File: name, Line: 1, Column: 1, Message: "empty file: want `apiVersion: " + APIVersion + "` and at least one exchange or queue"})
		return f, r.probs
	}
	r.fields(body, "the topology file", map[string]func(ast.Node){
		"apiVersion": func(n ast.Node) {
			f.APIVersion = r.str(n, "apiVersion")
			if f.APIVersion != APIVersion && f.APIVersion != "" {
				r.addf(n, "unsupported apiVersion %q: want %q", f.APIVersion, APIVersion)
			}
		},
		"vhost": func(n ast.Node) { f.Vhost = r.str(n, "vhost") },
		"defaults": func(n ast.Node) {
			r.fields(n, "defaults", map[string]func(ast.Node){
				"queue_type": func(n ast.Node) { f.Defaults.QueueType = r.enum(n, "queue_type", Quorum, Classic, Stream) },
				"queue_settings": func(n ast.Node) {
					f.Defaults.QueueSettings = r.enum(n, "queue_settings", SettingsPolicies, SettingsArguments)
				},
			})
		},
		"exchanges": func(n ast.Node) {
			r.seq(n, "exchanges", func(n ast.Node) { f.Exchanges = append(f.Exchanges, r.exchange(n)) })
		},
		"queues": func(n ast.Node) {
			r.seq(n, "queues", func(n ast.Node) { f.Queues = append(f.Queues, r.queue(n)) })
		},
		"bindings": func(n ast.Node) {
			r.seq(n, "bindings", func(n ast.Node) { f.Bindings = append(f.Bindings, r.binding(n)) })
		},
		"policies": func(n ast.Node) {
			r.seq(n, "policies", func(n ast.Node) { f.Policies = append(f.Policies, r.policy(n)) })
		},
	}, "apiVersion")
	return f, r.probs
}

type reader struct {
	file  string
	probs inputfile.Problems
}

func posOf(n ast.Node) Pos {
	if n == nil {
		return Pos{}
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return Pos{Line: tk.Position.Line, Column: tk.Position.Column}
	}
	return Pos{}
}

func (r *reader) addf(n ast.Node, format string, a ...any) {
	p := posOf(n)
	r.probs = append(r.probs, inputfile.Problem{File: r.file, Line: p.Line, Column: p.Column, Message: fmt.Sprintf(format, a...)})
}

// unwrap removes anchors and tags, which do not change the value.
func unwrap(n ast.Node) ast.Node {
	for {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		default:
			return n
		}
	}
}

func kindName(n ast.Node) string {
	switch unwrap(n).(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	case *ast.NullNode, nil:
		return "empty"
	case *ast.AliasNode:
		return "an alias"
	}
	return "a " + unwrap(n).Type().String()
}

// fields reads a mapping: known keys go to their handler, unknown and
// duplicate keys are problems, required keys must be present.
func (r *reader) fields(n ast.Node, what string, handlers map[string]func(ast.Node), required ...string) Pos {
	n = unwrap(n)
	entries, ok := mappingEntries(n)
	if !ok {
		r.addf(n, "%s must be a mapping, not %s", what, kindName(n))
		return posOf(n)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		key := keyOf(e)
		if seen[key] {
			r.addf(e.Key, "duplicate key %q in %s", key, what)
			continue
		}
		seen[key] = true
		h, ok := handlers[key]
		if !ok {
			r.addf(e.Key, "unknown key %q in %s (want one of %s)", key, what, strings.Join(sortedKeys(handlers), ", "))
			continue
		}
		h(e.Value)
	}
	for _, k := range required {
		if !seen[k] {
			r.addf(n, "%s: missing required key %q", what, k)
		}
	}
	if len(entries) > 0 {
		return posOf(entries[0].Key)
	}
	return posOf(n)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (r *reader) seq(n ast.Node, what string, each func(ast.Node)) {
	r.seqOf(n, what, true, each)
}

func (r *reader) seqOf(n ast.Node, what string, mapsOnly bool, each func(ast.Node)) {
	n = unwrap(n)
	switch s := n.(type) {
	case *ast.SequenceNode:
		for _, v := range s.Values {
			switch unwrap(v).(type) {
			case *ast.MappingNode, *ast.MappingValueNode:
				each(v)
			default:
				if mapsOnly {
					r.addf(v, "each entry of %s must be a mapping, not %s", what, kindName(v))
					continue
				}
				each(v)
			}
		}
	case *ast.NullNode:
	default:
		r.addf(n, "%s must be a list, not %s", what, kindName(n))
	}
}

func (r *reader) str(n ast.Node, what string) string {
	switch s := unwrap(n).(type) {
	case *ast.StringNode:
		return s.Value
	case *ast.LiteralNode:
		return s.Value.Value
	}
	r.addf(n, "%s must be a string, not %s", what, kindName(n))
	return ""
}

func (r *reader) enum(n ast.Node, what string, allowed ...string) string {
	s := r.str(n, what)
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	if s != "" || kindName(n) == "a string" {
		r.addf(n, "%s: %q is not one of %s", what, s, strings.Join(allowed, ", "))
	}
	return s
}

func (r *reader) boolean(n ast.Node, what string) bool {
	if b, ok := unwrap(n).(*ast.BoolNode); ok {
		return b.Value
	}
	r.addf(n, "%s must be true or false, not %s", what, kindName(n))
	return false
}

// integer reads an integer that fits in 32 bits; ok is false, and a
// problem recorded, when n holds anything else.
func (r *reader) integer(n ast.Node, what string) (int, bool) {
	if i, ok := unwrap(n).(*ast.IntegerNode); ok {
		switch v := i.Value.(type) {
		case int64:
			if v >= -1<<31 && v < 1<<31 {
				return int(v), true
			}
		case uint64:
			if v < 1<<31 {
				return int(v), true
			}
		}
		r.addf(n, "%s: %s is out of range", what, i.Token.Value)
		return 0, false
	}
	r.addf(n, "%s must be an integer, not %s", what, kindName(n))
	return 0, false
}

// argsAt is args that also returns where each key was written.
func (r *reader) argsAt(n ast.Node, what string) (map[string]any, map[string]Pos) {
	m := r.args(n, what)
	if m == nil {
		return nil, nil
	}
	entries, _ := mappingEntries(unwrap(n))
	pos := make(map[string]Pos, len(entries))
	for _, e := range entries {
		pos[keyOf(e)] = posOf(e.Key)
	}
	return m, pos
}

// args reads a free-form mapping (x-arguments, policy definitions).
func (r *reader) args(n ast.Node, what string) map[string]any {
	u := unwrap(n)
	if _, ok := u.(*ast.NullNode); ok {
		return nil
	}
	switch u.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
	default:
		r.addf(n, "%s must be a mapping, not %s", what, kindName(n))
		return nil
	}
	// An alias would be expanded in place, so a kilobyte of nested aliases
	// could stand for gigabytes of arguments: refuse them.
	if a := findAlias(u); a != nil {
		r.addf(a, "%s: aliases (*name) are not supported here; write the value out", what)
		return nil
	}
	// Duplicate keys inside the mapping are problems too.
	r.fields(n, what, anyKey(u))
	var m map[string]any
	if err := yaml.NodeToValue(u, &m); err != nil {
		r.addf(n, "%s: %v", what, err)
		return nil
	}
	return m
}

// findAlias returns the first alias node under n, or nil.
func findAlias(n ast.Node) ast.Node {
	var found ast.Node
	ast.Walk(aliasFinder{&found}, n)
	return found
}

type aliasFinder struct{ found *ast.Node }

func (v aliasFinder) Visit(n ast.Node) ast.Visitor {
	if *v.found != nil {
		return nil
	}
	if _, ok := n.(*ast.AliasNode); ok {
		*v.found = n
		return nil
	}
	return v
}

// anyKey accepts every key of a mapping (used to find duplicates only).
func anyKey(n ast.Node) map[string]func(ast.Node) {
	h := map[string]func(ast.Node){}
	entries, _ := mappingEntries(n)
	for _, e := range entries {
		h[keyOf(e)] = func(ast.Node) {}
	}
	return h
}

// mappingEntries returns a mapping's entries; a one-entry mapping may come
// as a bare MappingValueNode.
func mappingEntries(n ast.Node) ([]*ast.MappingValueNode, bool) {
	switch m := n.(type) {
	case *ast.MappingNode:
		return m.Values, true
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{m}, true
	}
	return nil, false
}

func keyOf(e *ast.MappingValueNode) string {
	if ks, ok := unwrap(e.Key).(*ast.StringNode); ok {
		return ks.Value
	}
	return strings.TrimSpace(e.Key.String())
}

func (r *reader) exchange(n ast.Node) Exchange {
	var e Exchange
	e.Pos = r.fields(n, "an exchange", map[string]func(ast.Node){
		"name":        func(n ast.Node) { e.Name = r.str(n, "exchange name") },
		"type":        func(n ast.Node) { e.Type = r.str(n, "exchange type") },
		"durable":     func(n ast.Node) { b := r.boolean(n, "durable"); e.Durable = &b },
		"auto_delete": func(n ast.Node) { e.AutoDelete = r.boolean(n, "auto_delete") },
		"internal":    func(n ast.Node) { e.Internal = r.boolean(n, "internal") },
		"arguments":   func(n ast.Node) { e.Arguments = r.args(n, "exchange arguments") },
	}, "name", "type")
	return e
}

func (r *reader) queue(n ast.Node) Queue {
	var q Queue
	q.Pos = r.fields(n, "a queue", map[string]func(ast.Node){
		"name":        func(n ast.Node) { q.Name = r.str(n, "queue name") },
		"type":        func(n ast.Node) { q.Type = r.enum(n, "queue type", Quorum, Classic, Stream) },
		"durable":     func(n ast.Node) { b := r.boolean(n, "durable"); q.Durable, q.durablePos = &b, posOf(n) },
		"auto_delete": func(n ast.Node) { q.AutoDelete = r.boolean(n, "auto_delete") },
		"arguments":   func(n ast.Node) { q.Arguments, q.argPos = r.argsAt(n, "queue arguments") },
		"delivery_limit": func(n ast.Node) {
			v, ok := r.integer(n, "delivery_limit")
			if ok && v < 1 {
				r.addf(n, "delivery_limit must be at least 1")
			}
			q.DeliveryLimit = &v
		},
		"bindings": func(n ast.Node) {
			r.seq(n, "queue bindings", func(n ast.Node) { q.Bindings = append(q.Bindings, r.queueBinding(n)) })
		},
		"retry": func(n ast.Node) { q.Retry = r.retry(n) },
		"dead_letter": func(n ast.Node) {
			q.DeadLetter.Pos = posOf(n)
			switch v := unwrap(n).(type) {
			case *ast.BoolNode:
				if v.Value {
					q.DeadLetter.Queue = "\x00default"
				}
			case *ast.StringNode:
				switch {
				case v.Value == "":
					r.addf(n, "dead_letter: an empty queue name; use true for the default name")
				case yaml11Bool(v.Value) && !quoted(v):
					// YAML 1.2 reads yes/no/on/off as strings: "no" would
					// name a dead-letter queue "no".
					r.addf(n, "dead_letter: %s is a queue name in YAML 1.2, not a boolean (YAML 1.1): write true or false, or quote a queue really named %s", v.Value, v.Value)
				}
				q.DeadLetter.Queue = v.Value
			default:
				r.addf(n, "dead_letter must be true, false or a queue name, not %s", kindName(n))
			}
		},
	}, "name")
	if q.DeadLetter.Queue == "\x00default" {
		q.DeadLetter.Queue, q.DeadLetter.Default = pattern.DefaultDLQ(q.Name), true
	}
	return q
}

// quoted reports whether the string was written in quotes.
func quoted(v *ast.StringNode) bool {
	return v.Token != nil && (v.Token.Type == token.SingleQuoteType || v.Token.Type == token.DoubleQuoteType)
}

// yaml11Bool reports the words YAML 1.1 read as booleans and YAML 1.2
// (this parser) reads as strings.
func yaml11Bool(s string) bool {
	switch strings.ToLower(s) {
	case "y", "yes", "n", "no", "on", "off":
		return true
	}
	return false
}

func (r *reader) queueBinding(n ast.Node) QueueBinding {
	var b QueueBinding
	b.Pos = r.fields(n, "a queue binding", map[string]func(ast.Node){
		"exchange":    func(n ast.Node) { b.Exchange = r.str(n, "binding exchange") },
		"routing_key": func(n ast.Node) { b.RoutingKey = r.str(n, "routing_key") },
		"arguments":   func(n ast.Node) { b.Arguments = r.args(n, "binding arguments") },
	}, "exchange")
	return b
}

func (r *reader) retry(n ast.Node) *Retry {
	rt := &Retry{}
	rt.Pos = r.fields(n, "retry", map[string]func(ast.Node){
		"max_attempts": func(n ast.Node) {
			var ok bool
			rt.MaxAttempts, ok = r.integer(n, "max_attempts")
			if ok && rt.MaxAttempts < 1 {
				r.addf(n, "max_attempts must be at least 1 (it counts the first attempt)")
			}
		},
		"backoff": func(n ast.Node) {
			r.seqOf(n, "backoff", false, func(n ast.Node) {
				s := r.str(n, "backoff duration")
				if s == "" {
					return
				}
				d, err := ParseDuration(s)
				if err != nil {
					r.addf(n, "backoff: %v", err)
					rt.backoffBad = true
					return
				}
				rt.Backoff = append(rt.Backoff, d)
			})
		},
	}, "max_attempts")
	return rt
}

func (r *reader) binding(n ast.Node) Binding {
	var b Binding
	b.Pos = r.fields(n, "a binding", map[string]func(ast.Node){
		"source":           func(n ast.Node) { b.Source = r.str(n, "binding source") },
		"destination":      func(n ast.Node) { b.Destination = r.str(n, "binding destination") },
		"destination_type": func(n ast.Node) { b.DestinationType = r.enum(n, "destination_type", "queue", "exchange") },
		"routing_key":      func(n ast.Node) { b.RoutingKey = r.str(n, "routing_key") },
		"arguments":        func(n ast.Node) { b.Arguments = r.args(n, "binding arguments") },
	}, "source", "destination")
	if b.DestinationType == "" {
		b.DestinationType = "queue"
	}
	return b
}

func (r *reader) policy(n ast.Node) Policy {
	var p Policy
	p.Pos = r.fields(n, "a policy", map[string]func(ast.Node){
		"name":    func(n ast.Node) { p.Name = r.str(n, "policy name") },
		"pattern": func(n ast.Node) { p.Pattern = r.str(n, "policy pattern") },
		"apply_to": func(n ast.Node) {
			p.ApplyTo = r.enum(n, "apply_to", "queues", "exchanges", "all", "classic_queues", "quorum_queues", "streams")
		},
		"priority":   func(n ast.Node) { p.Priority, _ = r.integer(n, "priority") },
		"definition": func(n ast.Node) { p.Definition, p.keyPos = r.argsAt(n, "policy definition") },
	}, "name", "pattern", "definition")
	return p
}
