// Package topology is topology as code for RabbitMQ: the mqctl/v1 file
// model, its parser and validator (every problem with file, line and
// column), the expansion of the retry and dead_letter patterns into real
// broker objects (following internal/pattern), the plan (a pure diff against
// the broker's definitions), apply, export and the flow drawing.
//
// The package never prints: it returns data, and the CLI renders it.
package topology

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// APIVersion is the only file version this package reads and writes.
const APIVersion = "mqctl/v1"

// Queue types.
const (
	Quorum  = "quorum"
	Classic = "classic"
	Stream  = "stream"
)

// DefaultDeliveryLimit is the x-delivery-limit a quorum work queue gets when
// it has retry or dead_letter and the file sets no delivery_limit.
const DefaultDeliveryLimit = 10

// Pos is where something was written in the file (1-based; zero when the
// object did not come from a file).
type Pos struct {
	Line   int `json:"-" yaml:"-"`
	Column int `json:"-" yaml:"-"`
}

// File is one parsed topology file.
type File struct {
	APIVersion string     `json:"apiVersion" yaml:"apiVersion"`
	Vhost      string     `json:"vhost,omitempty" yaml:"vhost,omitempty"`
	Defaults   Defaults   `json:"defaults,omitzero" yaml:"defaults,omitempty"`
	Exchanges  []Exchange `json:"exchanges,omitempty" yaml:"exchanges,omitempty"`
	Queues     []Queue    `json:"queues,omitempty" yaml:"queues,omitempty"`
	Bindings   []Binding  `json:"bindings,omitempty" yaml:"bindings,omitempty"`
	Policies   []Policy   `json:"policies,omitempty" yaml:"policies,omitempty"`

	// Name is the file name used in problems.
	Name string `json:"-" yaml:"-"`
}

// Defaults apply to every object that does not say otherwise.
type Defaults struct {
	QueueType string `json:"queue_type,omitempty" yaml:"queue_type,omitempty"`
	// QueueSettings says where the retry and dead_letter patterns put
	// their settings: SettingsPolicies (the default) or SettingsArguments.
	QueueSettings string `json:"queue_settings,omitempty" yaml:"queue_settings,omitempty"`
}

// Where the patterns' settings go (Defaults.QueueSettings).
const (
	// SettingsPolicies: dead-letter exchange and key, delivery limit,
	// overflow, dead-letter strategy and the delay queues' TTL are
	// policies mqctl owns (named PolicyPrefix + queue), so an app's own
	// declaration of a queue (`durable=True`, no arguments) stays
	// equivalent and the settings can change in place.
	SettingsPolicies = "policies"
	// SettingsArguments: the same settings as queue x-arguments, as mqctl
	// wrote them before policies; every declaration must repeat them and
	// changing one means re-creating the queue.
	SettingsArguments = "arguments"
)

// PolicyPrefix starts the name of every policy mqctl composes for a queue.
const PolicyPrefix = "mqctl."

// settingsInPolicies reports whether the file's patterns use policies.
func (f *File) settingsInPolicies() bool { return f.Defaults.QueueSettings != SettingsArguments }

// Exchange is a declared exchange.
type Exchange struct {
	Name       string         `json:"name" yaml:"name"`
	Type       string         `json:"type" yaml:"type"`
	Durable    *bool          `json:"durable,omitempty" yaml:"durable,omitempty"`
	AutoDelete bool           `json:"auto_delete,omitempty" yaml:"auto_delete,omitempty"`
	Internal   bool           `json:"internal,omitempty" yaml:"internal,omitempty"`
	Arguments  map[string]any `json:"arguments,omitempty" yaml:"arguments,omitempty"`
	Pos        Pos            `json:"-" yaml:"-"`
}

// Queue is a declared work queue, optionally with the retry and dead_letter
// patterns.
type Queue struct {
	Name          string         `json:"name" yaml:"name"`
	Type          string         `json:"type,omitempty" yaml:"type,omitempty"`
	Durable       *bool          `json:"durable,omitempty" yaml:"durable,omitempty"`
	AutoDelete    bool           `json:"auto_delete,omitempty" yaml:"auto_delete,omitempty"`
	Arguments     map[string]any `json:"arguments,omitempty" yaml:"arguments,omitempty"`
	DeliveryLimit *int           `json:"delivery_limit,omitempty" yaml:"delivery_limit,omitempty"`
	Bindings      []QueueBinding `json:"bindings,omitempty" yaml:"bindings,omitempty"`
	Retry         *Retry         `json:"retry,omitempty" yaml:"retry,omitempty"`
	DeadLetter    DeadLetter     `json:"dead_letter,omitzero" yaml:"dead_letter,omitempty"`
	Pos           Pos            `json:"-" yaml:"-"`

	// durablePos and argPos say where `durable` and each argument were
	// written, so a problem with one of them points at it.
	durablePos Pos
	argPos     map[string]Pos
}

// QueueBinding binds the enclosing queue to an exchange.
type QueueBinding struct {
	Exchange   string         `json:"exchange" yaml:"exchange"`
	RoutingKey string         `json:"routing_key,omitempty" yaml:"routing_key,omitempty"`
	Arguments  map[string]any `json:"arguments,omitempty" yaml:"arguments,omitempty"`
	Pos        Pos            `json:"-" yaml:"-"`
}

// Retry is the retry pattern: max_attempts processing attempts in all,
// waiting Backoff[i] before attempt i+2 (the last value repeats).
type Retry struct {
	MaxAttempts int        `json:"max_attempts" yaml:"max_attempts"`
	Backoff     []Duration `json:"backoff,omitempty" yaml:"backoff,omitempty"`
	Pos         Pos        `json:"-" yaml:"-"`
	// backoffBad is set when a backoff value was already reported.
	backoffBad bool
}

// DeadLetter is the dead_letter pattern: `true` for "<queue>.dlq", a queue
// name, or absent/false for none.
type DeadLetter struct {
	Queue string // "" when disabled
	// Default is true when the file said `true` (Queue is then "<queue>.dlq").
	Default bool
	Pos     Pos
}

// Enabled reports whether the queue has a dead-letter queue.
func (d DeadLetter) Enabled() bool { return d.Queue != "" }

// IsZero lets encoders omit a disabled dead_letter.
func (d DeadLetter) IsZero() bool { return d.Queue == "" }

// MarshalJSON writes the queue name.
func (d DeadLetter) MarshalJSON() ([]byte, error) {
	if d.Queue == "" {
		return []byte("false"), nil
	}
	if d.Default {
		return []byte("true"), nil
	}
	return []byte(strconv.Quote(d.Queue)), nil
}

// MarshalYAML writes the queue name.
func (d DeadLetter) MarshalYAML() (any, error) {
	if d.Queue == "" {
		return false, nil
	}
	if d.Default {
		return true, nil
	}
	return d.Queue, nil
}

// Binding is a top-level binding; the destination may be a queue or an
// exchange.
type Binding struct {
	Source          string         `json:"source" yaml:"source"`
	Destination     string         `json:"destination" yaml:"destination"`
	DestinationType string         `json:"destination_type" yaml:"destination_type"`
	RoutingKey      string         `json:"routing_key,omitempty" yaml:"routing_key,omitempty"`
	Arguments       map[string]any `json:"arguments,omitempty" yaml:"arguments,omitempty"`
	Pos             Pos            `json:"-" yaml:"-"`
}

// Policy is a RabbitMQ policy.
type Policy struct {
	Name       string         `json:"name" yaml:"name"`
	Pattern    string         `json:"pattern" yaml:"pattern"`
	ApplyTo    string         `json:"apply_to,omitempty" yaml:"apply_to,omitempty"`
	Priority   int            `json:"priority,omitempty" yaml:"priority,omitempty"`
	Definition map[string]any `json:"definition" yaml:"definition"`
	Pos        Pos            `json:"-" yaml:"-"`

	// keyPos says where each definition key was written.
	keyPos map[string]Pos
}

// Duration is a time.Duration written like "5s", "2m", "1h30m".
type Duration time.Duration

// String writes d compactly: "2m", not "2m0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalJSON writes the compact form.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(d.String())), nil }

// MarshalYAML writes the compact form.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// ParseDuration reads a positive duration of at least one millisecond (the
// unit of x-message-ttl).
func ParseDuration(s string) (Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: want e.g. 5s, 30s, 2m, 1h", s)
	}
	if d < time.Millisecond {
		return 0, fmt.Errorf("bad duration %q: must be at least 1ms", s)
	}
	if d%time.Millisecond != 0 {
		return 0, fmt.Errorf("bad duration %q: RabbitMQ TTLs are whole milliseconds", s)
	}
	return Duration(d), nil
}

func (q Queue) durable() bool { return q.Durable == nil || *q.Durable }

func (e Exchange) durable() bool { return e.Durable == nil || *e.Durable }

// QueueTypeOf returns q's effective type given the file's defaults.
func (f *File) QueueTypeOf(q Queue) string {
	if q.Type != "" {
		return q.Type
	}
	if f.Defaults.QueueType != "" {
		return f.Defaults.QueueType
	}
	return Quorum
}

// VhostOrDefault is the file's vhost, "/" when unset.
func (f *File) VhostOrDefault() string {
	if f.Vhost == "" {
		return "/"
	}
	return f.Vhost
}
