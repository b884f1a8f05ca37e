// Package dlq finds dead-letter queues, reads them without consuming
// (peek, export), and moves exactly the messages a human selected: replay
// them to the queue they died in, or purge them into an archive. It never
// prints; the CLI renders what it returns.
//
// The peek method: one exclusive consumer with manual acknowledgements
// reads the messages the queue held when the command started and never
// acknowledges the ones it is not told to remove; closing the channel
// returns them to the queue. On a classic queue a returned message goes
// back to its old position, so order is kept; its redelivered flag is set.
package dlq

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/pattern"
)

// Properties are a message's AMQP basic properties, headers typed.
type Properties struct {
	ContentType     string           `json:"content_type,omitempty"`
	ContentEncoding string           `json:"content_encoding,omitempty"`
	DeliveryMode    uint8            `json:"delivery_mode,omitempty"`
	Priority        uint8            `json:"priority,omitempty"`
	CorrelationID   string           `json:"correlation_id,omitempty"`
	ReplyTo         string           `json:"reply_to,omitempty"`
	Expiration      string           `json:"expiration,omitempty"`
	MessageID       string           `json:"message_id,omitempty"`
	Timestamp       *Timestamp       `json:"timestamp,omitempty"`
	Type            string           `json:"type,omitempty"`
	UserID          string           `json:"user_id,omitempty"`
	AppID           string           `json:"app_id,omitempty"`
	Headers         map[string]Value `json:"headers,omitempty"`
}

// Death summarises why and where a message died: its newest death (the
// reason shown), built from the whole History — x-death, the
// x-first/last-death-* headers, the mqctl failure headers, and the earlier
// lives kept in mqctl-death-history — ordered by time, newest last.
type Death struct {
	// Source is where the newest death was read: "mqctl" (a consumer's
	// failure headers), "x-death" (the broker), or "" when the message
	// carries no death information.
	Source      string `json:"source"`
	OriginQueue string `json:"origin_queue,omitempty"`
	// Reason is rejected, expired, maxlen or delivery_limit for a broker
	// death, "failed" for a consumer's.
	Reason string `json:"reason,omitempty"`
	// Failure is the consumer's error text when the newest death is a
	// consumer's failure; a broker death after it leaves it empty.
	Failure string `json:"failure,omitempty"`
	// ErrorClass is the kind of that error, as the worker stamped it.
	ErrorClass string `json:"error_class,omitempty"`
	// Count is how often the message died the newest way: the x-death
	// count of its (queue, reason), or the attempts a consumer made.
	Count int64 `json:"count,omitempty"`
	// Deaths is how often it died in all, over every life: the counts of
	// every death in History (passes through retry delay queues excluded).
	Deaths       int64      `json:"deaths,omitempty"`
	FirstDeathAt *Timestamp `json:"first_death_at,omitempty"`
	LastDeathAt  *Timestamp `json:"last_death_at,omitempty"`
	// LastError is the newest consumer error in History, even when a
	// broker death came after it (what the consumer saw before the
	// message looped to its delivery limit).
	LastError string `json:"last_error,omitempty"`
	// Exchange and RoutingKeys are where the message was first published.
	Exchange    string   `json:"exchange,omitempty"`
	RoutingKeys []string `json:"routing_keys,omitempty"`
	// History is every death the headers record, oldest first.
	History []DeathEvent `json:"history,omitempty"`
}

// Record is one dead letter as export, purge archives and show write it:
// lossless (body and every property) plus derived fields for humans. One
// JSON object per line.
type Record struct {
	// ID is the identity replay and purge select by: message_id, else
	// "sha256:" and a hash of body and properties (death headers excluded).
	ID          string     `json:"id"`
	IDSource    string     `json:"id_source"` // message_id | hash
	Queue       string     `json:"queue"`     // the DLQ it was read from
	Exchange    string     `json:"exchange"`  // of the delivery into the DLQ
	RoutingKey  string     `json:"routing_key"`
	Redelivered bool       `json:"redelivered"`
	Death       Death      `json:"death"`
	ReplayCount int64      `json:"replay_count,omitempty"`
	Properties  Properties `json:"properties"`
	Body        []byte     `json:"body"` // base64 in JSON
	BodySize    int        `json:"body_size"`
}

// FromDelivery builds the record of a message read from queue.
func FromDelivery(queue string, d amqp.Delivery) (Record, error) {
	h, err := EncodeTable(d.Headers)
	if err != nil {
		return Record{}, fmt.Errorf("message %q: %w", d.MessageId, err)
	}
	p := Properties{
		ContentType: d.ContentType, ContentEncoding: d.ContentEncoding, DeliveryMode: d.DeliveryMode,
		Priority: d.Priority, CorrelationID: d.CorrelationId, ReplyTo: d.ReplyTo, Expiration: d.Expiration,
		MessageID: d.MessageId, Type: d.Type, UserID: d.UserId, AppID: d.AppId, Headers: h,
	}
	if !d.Timestamp.IsZero() {
		ts := NewTimestamp(d.Timestamp)
		p.Timestamp = &ts
	}
	r := Record{
		Queue: queue, Exchange: d.Exchange, RoutingKey: d.RoutingKey, Redelivered: d.Redelivered,
		Properties: p, Body: d.Body, BodySize: len(d.Body),
		Death: deathOf(d.Headers), ReplayCount: replayCount(d.Headers),
	}
	r.ID, r.IDSource = Identity(p, d.Body)
	return r, nil
}

// Summary is what replay needs of a dead letter: identity, death and
// replay count, without the lossless record.
type Summary struct {
	ID          string
	Death       Death
	ReplayCount int64
}

// Destination is where a replay sends the message: to, else its origin.
func (s Summary) Destination(to string) string { return destination(to, s.Death) }

// Summarize reads a delivery's identity, death and replay count. With a
// message_id (the identity then is that id) it skips encoding every header
// into a Record, which profiling showed to be the largest single cost of a
// replay; otherwise it builds the Record to hash it, as export does, so
// both always agree on the id.
func Summarize(queue string, d amqp.Delivery) (Summary, error) {
	if d.MessageId == "" {
		r, err := FromDelivery(queue, d)
		if err != nil {
			return Summary{}, err
		}
		return Summary{ID: r.ID, Death: r.Death, ReplayCount: r.ReplayCount}, nil
	}
	return Summary{ID: d.MessageId, Death: deathOf(d.Headers), ReplayCount: replayCount(d.Headers)}, nil
}

// IsDeathHeader reports whether a header belongs to a message's death
// history rather than to its content: broker death headers and the mqctl
// failure, attempt and replay headers. Identity ignores them, replay
// moves them into pattern.HeaderDeathHistory, and the death model reads
// them.
func IsDeathHeader(name string) bool { return deathHeader(name) }

func deathHeader(name string) bool {
	switch name {
	case "x-death", pattern.HeaderOriginQueue, pattern.HeaderFailureReason, pattern.HeaderFailedAt,
		pattern.HeaderFirstFailedAt, pattern.HeaderAttempt, pattern.HeaderDeathHistory, pattern.HeaderReplayCount,
		pattern.HeaderErrorClass, pattern.HeaderWorker, headerShovelled:
		return true
	}
	return strings.HasPrefix(name, "x-first-death-") || strings.HasPrefix(name, "x-last-death-")
}

// Identity is a message's message_id, else a hash of its body and
// properties without the death headers, the first-publish headers and the
// expiration (which the broker removes when it dead-letters), so the
// identity stays the same
// while a message goes round DLQ → replay → DLQ.
func Identity(p Properties, body []byte) (id, source string) {
	if p.MessageID != "" {
		return p.MessageID, "message_id"
	}
	q := p
	q.Expiration = ""
	q.Headers = map[string]Value{}
	for k, v := range p.Headers {
		// The first-publish headers the worker adds at a first failure
		// are not content either (they stay through replays).
		if !deathHeader(k) && k != pattern.HeaderExchange && k != pattern.HeaderRoutingKey {
			q.Headers[k] = v
		}
	}
	// encoding/json sorts map keys, so the encoding is canonical.
	b, _ := json.Marshal(struct {
		P Properties `json:"p"`
		B []byte     `json:"b"`
	}{q, body})
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:16]), "hash"
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int8:
		return int64(x)
	case uint8:
		return int64(x)
	case int16:
		return int64(x)
	case uint16:
		return int64(x)
	case int32:
		return int64(x)
	case uint32:
		return int64(x)
	case int64:
		return x
	case int:
		return int64(x)
	case string:
		var n int64
		if _, err := fmt.Sscan(x, &n); err == nil {
			return n
		}
	}
	return 0
}

func intHeader(h amqp.Table, name string) int64 { return toInt(h[name]) }

// headerShovelled is the list the broker's shovel prepends an entry to
// (add-forward-headers) each time it moves a message: a replay through a
// shovel leaves its trace there, not in pattern.HeaderReplayCount.
const headerShovelled = "x-shovelled"

// replayCount is how many times a message was replayed: by the client
// path (pattern.HeaderReplayCount) plus the moves of mqctl's replay
// shovels (their entries in x-shovelled). The loop guard counts both.
func replayCount(h amqp.Table) int64 {
	n := intHeader(h, pattern.HeaderReplayCount)
	hops, _ := h[headerShovelled].([]any)
	for _, hop := range hops {
		if t, ok := hop.(amqp.Table); ok {
			if name, _ := t["shovel-name"].(string); strings.HasPrefix(name, ShovelPrefix) {
				n++
			}
		}
	}
	return n
}

func timeHeader(h amqp.Table, name string) *Timestamp {
	var t time.Time
	switch x := h[name].(type) {
	case time.Time:
		t = x
	case string:
		var err error
		if t, err = time.Parse(time.RFC3339Nano, x); err != nil {
			return nil
		}
	default:
		return nil
	}
	ts := NewTimestamp(t)
	return &ts
}

// Publishing rebuilds the message exactly as it was: body, properties and
// headers with their wire types.
func (r Record) Publishing() (amqp.Publishing, error) {
	h, err := DecodeTable(r.Properties.Headers)
	if err != nil {
		return amqp.Publishing{}, err
	}
	p := r.Properties
	msg := amqp.Publishing{
		Headers: h, ContentType: p.ContentType, ContentEncoding: p.ContentEncoding, DeliveryMode: p.DeliveryMode,
		Priority: p.Priority, CorrelationId: p.CorrelationID, ReplyTo: p.ReplyTo, Expiration: p.Expiration,
		MessageId: p.MessageID, Type: p.Type, UserId: p.UserID, AppId: p.AppID, Body: r.Body,
	}
	if p.Timestamp != nil {
		msg.Timestamp = p.Timestamp.Time
	}
	return msg, nil
}

// ForReplay turns a dead letter back into a fresh message: every death
// header (x-death, x-first-death-*, the mqctl failure and attempt headers)
// moves into one entry appended to pattern.HeaderDeathHistory, so the
// broker sees no client-made x-death and the consumer starts again at
// attempt 1, and pattern.HeaderReplayCount goes up by one. Body and all
// other properties and headers are kept as they are.
func ForReplay(msg amqp.Publishing, fromQueue string, now time.Time) amqp.Publishing {
	old := msg.Headers
	// Tables are maps: the order headers are read in changes nothing.
	h := make(amqp.Table, len(old)+2)
	entry := amqp.Table{"dlq": fromQueue, "replayed_at": now.UTC().Truncate(time.Second)}
	var history []any
	for k, v := range old {
		switch {
		case k == pattern.HeaderDeathHistory:
			history, _ = v.([]any)
		case k == pattern.HeaderReplayCount:
		case deathHeader(k):
			entry[k] = v
		default:
			h[k] = v
		}
	}
	h[pattern.HeaderDeathHistory] = append(append([]any(nil), history...), entry)
	h[pattern.HeaderReplayCount] = replayCount(old) + 1
	msg.Headers = h
	return msg
}

// Destination is where replay sends a record: to, else its origin queue.
func (r Record) Destination(to string) string { return destination(to, r.Death) }

// destination is to, else the queue the message died in: replay and
// publish send a message back to where it failed, not to the exchange it
// was first published to.
func destination(to string, d Death) string {
	if to != "" {
		return to
	}
	return d.OriginQueue
}

// BodyPreview is the start of the body as text when it is printable UTF-8,
// else as hex.
func BodyPreview(b []byte, n int) string {
	cut := b
	if len(cut) > n {
		cut = cut[:n]
	}
	s := string(cut)
	printable := true
	for _, r := range s {
		if r == '\uFFFD' || (r < 0x20 && r != '\n' && r != '\t' && r != '\r') {
			printable = false
			break
		}
	}
	if !printable {
		s = "hex:" + hex.EncodeToString(cut)
	}
	if len(b) > n {
		s += "…"
	}
	return s
}
