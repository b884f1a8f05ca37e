package topology

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/mqctl/mqctl/internal/inputfile"
)

// Definitions is the subset of a RabbitMQ definitions document (the JSON of
// GET/POST /api/definitions) that topology manages, in RabbitMQ's own field
// names, so it can be read from an export and sent to the broker's import.
type Definitions struct {
	Queues    []DefQueue    `json:"queues"`
	Exchanges []DefExchange `json:"exchanges"`
	Bindings  []DefBinding  `json:"bindings"`
	Policies  []DefPolicy   `json:"policies"`
}

// DefQueue is a queue as RabbitMQ's definitions describe it.
type DefQueue struct {
	Name       string         `json:"name"`
	Vhost      string         `json:"vhost"`
	Durable    bool           `json:"durable"`
	AutoDelete bool           `json:"auto_delete"`
	Arguments  map[string]any `json:"arguments"`
}

// DefExchange is an exchange as RabbitMQ's definitions describe it.
type DefExchange struct {
	Name       string         `json:"name"`
	Vhost      string         `json:"vhost"`
	Type       string         `json:"type"`
	Durable    bool           `json:"durable"`
	AutoDelete bool           `json:"auto_delete"`
	Internal   bool           `json:"internal"`
	Arguments  map[string]any `json:"arguments"`
}

// DefBinding is a binding as RabbitMQ's definitions describe it.
type DefBinding struct {
	Source          string         `json:"source"`
	Vhost           string         `json:"vhost"`
	Destination     string         `json:"destination"`
	DestinationType string         `json:"destination_type"`
	RoutingKey      string         `json:"routing_key"`
	Arguments       map[string]any `json:"arguments"`
}

// DefPolicy is a policy as RabbitMQ's definitions describe it.
type DefPolicy struct {
	Name       string         `json:"name"`
	Vhost      string         `json:"vhost"`
	Pattern    string         `json:"pattern"`
	ApplyTo    string         `json:"apply-to"`
	Priority   int            `json:"priority"`
	Definition map[string]any `json:"definition"`
}

// Type is the queue's type from its x-queue-type argument; RabbitMQ reports
// no argument for classic queues declared without one.
func (q DefQueue) Type() string {
	if t, ok := q.Arguments["x-queue-type"].(string); ok && t != "" {
		return t
	}
	return Classic
}

// Key identifies the binding: RabbitMQ treats two bindings with the same
// source, destination, key and arguments as one.
func (b DefBinding) Key() string {
	return bindingKey(b.Source, b.Destination, b.DestinationType, b.RoutingKey, b.Arguments)
}

func bindingKey(src, dst, dtype, key string, args map[string]any) string {
	return fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%s", src, dtype, dst, key, canonical(args))
}

// ForVhost returns the definitions with every object's vhost set to vhost.
func (d *Definitions) ForVhost(vhost string) *Definitions {
	out := &Definitions{Queues: []DefQueue{}, Exchanges: []DefExchange{}, Bindings: []DefBinding{}, Policies: []DefPolicy{}}
	for _, q := range d.Queues {
		q.Vhost = vhost
		q.Arguments = orEmpty(q.Arguments)
		out.Queues = append(out.Queues, q)
	}
	for _, e := range d.Exchanges {
		e.Vhost = vhost
		e.Arguments = orEmpty(e.Arguments)
		out.Exchanges = append(out.Exchanges, e)
	}
	for _, b := range d.Bindings {
		b.Vhost = vhost
		b.Arguments = orEmpty(b.Arguments)
		out.Bindings = append(out.Bindings, b)
	}
	for _, p := range d.Policies {
		p.Vhost = vhost
		out.Policies = append(out.Policies, p)
	}
	return out
}

func (d *Definitions) count() int {
	return len(d.Queues) + len(d.Exchanges) + len(d.Bindings) + len(d.Policies)
}

// Empty reports whether there is nothing in d.
func (d *Definitions) Empty() bool {
	return len(d.Queues)+len(d.Exchanges)+len(d.Bindings)+len(d.Policies) == 0
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// canonical renders a value as sorted JSON with every number as a float, so
// YAML integers and JSON numbers compare equal.
func canonical(v any) string {
	b, err := json.Marshal(normalize(v))
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// normalize turns numbers into float64 and nested maps into
// map[string]any; encoding/json sorts map keys.
func normalize(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case map[string]any:
		if len(x) == 0 {
			return nil
		}
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = normalize(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = normalize(e)
		}
		return s
	}
	if f, ok := asFloat(v); ok {
		return f
	}
	return v
}

func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint:
		return float64(x), true
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

func asInt(v any) (int64, bool) {
	f, ok := asFloat(v)
	if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

func sameValue(a, b any) bool { return canonical(a) == canonical(b) }

// sortDefinitions puts every list in a stable order (by name/key).
func sortDefinitions(d *Definitions) {
	sort.Slice(d.Queues, func(i, j int) bool { return d.Queues[i].Name < d.Queues[j].Name })
	sort.Slice(d.Exchanges, func(i, j int) bool { return d.Exchanges[i].Name < d.Exchanges[j].Name })
	sort.Slice(d.Bindings, func(i, j int) bool { return d.Bindings[i].Key() < d.Bindings[j].Key() })
	sort.Slice(d.Policies, func(i, j int) bool { return d.Policies[i].Name < d.Policies[j].Name })
}

// ReadDefinitionsFile reads a RabbitMQ definitions JSON file (as written
// by `rabbitmqctl export_definitions`, the management UI or GET
// /api/definitions) and returns it per vhost, as ReadDefinitions does. A
// file over inputfile.MaxDefinitionsFile, or one that is not UTF-8 text, is
// refused before decoding.
func ReadDefinitionsFile(path string) (map[string]*Definitions, error) {
	data, err := inputfile.ReadFile(path, "a definitions file", inputfile.MaxDefinitionsFile)
	if err != nil {
		return nil, err
	}
	return ReadDefinitions(path, data)
}

// definitionsDocument is what ReadDefinitions decodes: the managed
// objects plus the version fields every RabbitMQ export carries, which
// tell a definitions file from some other JSON.
type definitionsDocument struct {
	Definitions
	RabbitVersion   *string `json:"rabbit_version"`
	RabbitMQVersion *string `json:"rabbitmq_version"`
}

// ReadDefinitions decodes a RabbitMQ definitions JSON document and
// returns it per vhost. A single-vhost export names no vhost on its
// objects; those land under "". Invalid input is inputfile.Problems naming
// name, line and column: bad JSON, a wrong type, text after the document,
// or JSON that is not a definitions export at all.
func ReadDefinitions(name string, data []byte) (map[string]*Definitions, error) {
	if p := inputfile.CheckText(name, data); p != nil {
		return nil, inputfile.Problems{*p}
	}
	problem := func(off int64, format string, a ...any) error {
		line, col := inputfile.Position(data, int(off))
		return inputfile.Problems{{File: name, Line: line, Column: col, Message: fmt.Sprintf(format, a...)}}
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, problem(0, "empty file: want a RabbitMQ definitions JSON document (rabbitmqctl export_definitions)")
	}
	if trimmed[0] != '{' {
		return nil, problem(int64(len(data)-len(trimmed)), "not a RabbitMQ definitions document: want a JSON object with queues, exchanges, bindings and policies")
	}
	var doc definitionsDocument
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		p := inputfile.JSONProblem(name, data, err)
		p.Message = strings.TrimPrefix(p.Message, "Definitions.") // the embedded struct's Go name
		return nil, inputfile.Problems{p}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, problem(dec.InputOffset()-1, "text after the end of the JSON document")
	}
	d := doc.Definitions
	if doc.RabbitVersion == nil && doc.RabbitMQVersion == nil && d.Queues == nil && d.Exchanges == nil && d.Bindings == nil && d.Policies == nil {
		return nil, problem(int64(len(data)-len(trimmed)), "not a RabbitMQ definitions document: no rabbit_version, queues, exchanges, bindings or policies")
	}
	for i := range d.Queues {
		d.Queues[i].Arguments = numbersToFloat(d.Queues[i].Arguments)
	}
	for i := range d.Exchanges {
		d.Exchanges[i].Arguments = numbersToFloat(d.Exchanges[i].Arguments)
	}
	for i := range d.Bindings {
		d.Bindings[i].Arguments = numbersToFloat(d.Bindings[i].Arguments)
	}
	for i := range d.Policies {
		d.Policies[i].Definition = numbersToFloat(d.Policies[i].Definition)
	}
	if singleVhost(&d) {
		// GET /api/definitions/{vhost} names no vhost on its queues,
		// exchanges and bindings but does on its policies: they belong
		// with the rest.
		for i := range d.Policies {
			d.Policies[i].Vhost = ""
		}
	}
	return SplitByVhost(&d), nil
}

// singleVhost reports whether d is a single-vhost export: queues,
// exchanges or bindings without a vhost, and none with one.
func singleVhost(d *Definitions) bool {
	without := false
	for _, q := range d.Queues {
		if q.Vhost != "" {
			return false
		}
		without = true
	}
	for _, x := range d.Exchanges {
		if x.Vhost != "" {
			return false
		}
		without = true
	}
	for _, b := range d.Bindings {
		if b.Vhost != "" {
			return false
		}
		without = true
	}
	return without
}

// numbersToFloat turns every json.Number in a decoded value into a
// float64, as the management API's JSON arrives.
func numbersToFloat(m map[string]any) map[string]any {
	for k, v := range m {
		m[k] = numberToFloat(v)
	}
	return m
}

func numberToFloat(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case map[string]any:
		return numbersToFloat(x)
	case []any:
		for i, e := range x {
			x[i] = numberToFloat(e)
		}
	}
	return v
}
