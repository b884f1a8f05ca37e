package dlq

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/fail"
)

// WhereFields says, for help texts, what a --where expression can use.
const WhereFields = `  id, origin, reason (of the newest death)
  error        the newest death's consumer error ("" for a broker death)
  error_class  that error's kind as the worker stamped it (a Go type
               such as *net.OpError, or the handler's own name)
  last_error   the newest consumer error, even before a broker death
  deaths       int: every death over every life; replays: int
  first_death, last_death   time (zero when unknown)
  age          duration since last_death (now() and age count from the
               command's start)
  routing_key  the key it was first published with; exchange likewise
  headers      map (AMQP tables become maps, timestamps times, integers int)
  properties   content_type, content_encoding, message_id, correlation_id,
               type, app_id, user_id, reply_to, expiration, priority,
               delivery_mode, timestamp
  body         the parsed JSON body; nil when the body is not JSON
Operators and functions are expr's: == != < <= && || ! in contains
startsWith endsWith matches (a regexp), duration("1h"), date("2026-05-01"),
now(), len(…)`

const whereHint = "fields: id, origin, reason, error, error_class, last_error, deaths, replays, first_death, last_death, age, " +
	"routing_key, exchange, headers, properties, body (see `mqctl dlq show --help`)"

// Fields are what a --where expression sees of a dead letter; the names
// are the expr tags.
type Fields struct {
	ID         string         `expr:"id"`
	Origin     string         `expr:"origin"`
	Reason     string         `expr:"reason"`
	Error      string         `expr:"error"`
	ErrorClass string         `expr:"error_class"`
	LastError  string         `expr:"last_error"`
	Deaths     int            `expr:"deaths"`
	Replays    int            `expr:"replays"`
	FirstDeath time.Time      `expr:"first_death"`
	LastDeath  time.Time      `expr:"last_death"`
	Age        time.Duration  `expr:"age"`
	RoutingKey string         `expr:"routing_key"`
	Exchange   string         `expr:"exchange"`
	Headers    map[string]any `expr:"headers"`
	Properties MessageProps   `expr:"properties"`
	Body       any            `expr:"body"`
}

// MessageProps are a message's AMQP properties as --where sees them: a
// struct, so a misspelt property fails when the expression compiles.
type MessageProps struct {
	ContentType     string    `expr:"content_type"`
	ContentEncoding string    `expr:"content_encoding"`
	DeliveryMode    int       `expr:"delivery_mode"`
	Priority        int       `expr:"priority"`
	CorrelationID   string    `expr:"correlation_id"`
	ReplyTo         string    `expr:"reply_to"`
	Expiration      string    `expr:"expiration"`
	MessageID       string    `expr:"message_id"`
	Timestamp       time.Time `expr:"timestamp"`
	Type            string    `expr:"type"`
	UserID          string    `expr:"user_id"`
	AppID           string    `expr:"app_id"`
}

// Filter selects dead letters by a --where expression and by --group
// keys; both must hold. Create it with NewFilter; a nil *Filter selects
// every message.
type Filter struct {
	where    *vm.Program
	usesBody bool
	groups   map[string]bool
	now      time.Time
	// Failed counts the messages the expression failed on at run time
	// (a header of another type than the expression expects): they are
	// not selected. FirstFailure is the first such error.
	Failed       int
	FirstFailure error
}

// NewFilter compiles where (may be empty) and takes the group keys; it is
// nil when both are empty. now is the time age is measured from. An
// expression that does not compile (syntax, an unknown field, a type
// mismatch) is a usage error naming --where and the position.
func NewFilter(where string, groups []string, now time.Time) (*Filter, error) {
	if where == "" && len(groups) == 0 {
		return nil, nil
	}
	f := &Filter{now: now}
	if len(groups) > 0 {
		f.groups = map[string]bool{}
		for _, g := range groups {
			f.groups[g] = true
		}
	}
	if where == "" {
		return f, nil
	}
	body := &bodyUse{}
	// now() is the filter's now, so that it and age agree throughout a
	// run.
	nowFn := expr.Function("now", func(...any) (any, error) { return now, nil }, new(func() time.Time))
	prog, err := expr.Compile(where, expr.Env(Fields{}), expr.AsBool(), expr.Patch(body), nowFn)
	if err != nil {
		return nil, whereError(err)
	}
	f.where, f.usesBody = prog, body.used
	return f, nil
}

func whereError(err error) error {
	var fe *file.Error
	if errors.As(err, &fe) {
		return fail.Usagef("--where: %s at line %d, column %d%s\n%s", fe.Message, fe.Line, fe.Column+1, fe.Snippet, whereHint)
	}
	return fail.Usagef("--where: %v\n%s", err, whereHint)
}

// bodyUse notes whether an expression reads the body, which is parsed
// only then.
type bodyUse struct{ used bool }

func (b *bodyUse) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok && id.Value == "body" {
		b.used = true
	}
}

// Match reports whether the filter selects the delivery with id.
func (f *Filter) Match(d amqp.Delivery, id string) bool {
	if f == nil {
		return true
	}
	return f.match(d, id, deathOf(d.Headers))
}

// match is Match for a delivery whose death the caller has read already.
func (f *Filter) match(d amqp.Delivery, id string, death Death) bool {
	if f == nil {
		return true
	}
	if f.groups != nil && !f.inGroup(death) {
		return false
	}
	if f.where == nil {
		return true
	}
	out, err := expr.Run(f.where, fieldsOf(d, id, death, f.now, f.usesBody))
	if err != nil {
		f.Failed++
		if f.FirstFailure == nil {
			f.FirstFailure = fmt.Errorf("message %s: %w", id, err)
		}
		return false
	}
	ok, _ := out.(bool)
	return ok
}

func (f *Filter) inGroup(d Death) bool {
	for _, by := range allGroupings {
		if f.groups[by.Key(d)] {
			return true
		}
	}
	return false
}

// fieldsOf is the view of a delivery a --where expression sees.
func fieldsOf(d amqp.Delivery, id string, death Death, now time.Time, body bool) Fields {
	f := Fields{
		ID: id, Origin: death.OriginQueue, Reason: death.Reason, Error: death.Failure, ErrorClass: death.ErrorClass, LastError: death.LastError,
		Deaths: int(death.Deaths), Replays: int(replayCount(d.Headers)),
		RoutingKey: d.RoutingKey, Exchange: death.Exchange, Headers: plainTable(d.Headers),
		Properties: MessageProps{
			ContentType: d.ContentType, ContentEncoding: d.ContentEncoding, DeliveryMode: int(d.DeliveryMode),
			Priority: int(d.Priority), CorrelationID: d.CorrelationId, ReplyTo: d.ReplyTo, Expiration: d.Expiration,
			MessageID: d.MessageId, Timestamp: d.Timestamp, Type: d.Type, UserID: d.UserId, AppID: d.AppId,
		},
	}
	if len(death.RoutingKeys) > 0 {
		f.RoutingKey = death.RoutingKeys[0]
	}
	if death.FirstDeathAt != nil {
		f.FirstDeath = death.FirstDeathAt.Time
	}
	if death.LastDeathAt != nil {
		f.LastDeath = death.LastDeathAt.Time
		f.Age = now.Sub(f.LastDeath)
	}
	if body {
		var v any
		if json.Unmarshal(d.Body, &v) == nil {
			f.Body = v
		}
	}
	return f
}

// plainTable turns an AMQP table into plain values an expression can
// compare: integers int, floats and decimals float64, bytes string.
func plainTable(t amqp.Table) map[string]any {
	out := make(map[string]any, len(t))
	for k, v := range t {
		out[k] = plain(v)
	}
	return out
}

func plain(v any) any {
	switch x := v.(type) {
	case int8, uint8, int16, uint16, int32, uint32, int64, int:
		return int(toInt(x))
	case float32:
		return float64(x)
	case amqp.Decimal:
		return float64(x.Value) / math.Pow10(int(x.Scale))
	case []byte:
		return string(x)
	case amqp.Table:
		return plainTable(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plain(e)
		}
		return out
	}
	return v
}
