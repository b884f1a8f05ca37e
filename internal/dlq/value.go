package dlq

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Value is one AMQP field-table value with its wire type, so that a
// header written to JSON comes back with the same type: an int32 stays an
// int32 ('I'), an int64 a long ('l'), a timestamp a timestamp ('T'), bytes
// bytes ('x'). Types are named after Go's; "decimal" is {scale, value}.
type Value struct {
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

// Wire type names.
const (
	TypeBool      = "bool"
	TypeInt8      = "int8"   // 'b'
	TypeUint8     = "uint8"  // 'B'
	TypeInt16     = "int16"  // 's'
	TypeUint16    = "uint16" // 'u'
	TypeInt32     = "int32"  // 'I'
	TypeUint32    = "uint32" // 'i'
	TypeInt64     = "int64"  // 'l'
	TypeFloat32   = "float32"
	TypeFloat64   = "float64"
	TypeDecimal   = "decimal"
	TypeString    = "string"
	TypeBytes     = "bytes" // base64 in JSON
	TypeTimestamp = "timestamp"
	TypeArray     = "array"
	TypeTable     = "table"
	TypeVoid      = "void"
)

// TypeStringBase64 is a string that is not UTF-8 (AMQP strings are bytes;
// JSON strings hold only UTF-8), base64 in JSON. It is written back as a
// string ('S'), not as bytes ('x').
const TypeStringBase64 = "string_base64"

type decimalJSON struct {
	Scale uint8 `json:"scale"`
	Value int32 `json:"value"`
}

// EncodeValue turns a value as amqp091 decodes it into its typed JSON form.
func EncodeValue(v any) (Value, error) {
	raw := func(typ string, x any) (Value, error) {
		b, err := json.Marshal(x)
		return Value{Type: typ, Value: b}, err
	}
	switch x := v.(type) {
	case nil:
		return Value{Type: TypeVoid, Value: json.RawMessage("null")}, nil
	case bool:
		return raw(TypeBool, x)
	case int8:
		return raw(TypeInt8, x)
	case uint8:
		return raw(TypeUint8, x)
	case int16:
		return raw(TypeInt16, x)
	case uint16:
		return raw(TypeUint16, x)
	case int:
		// amqp091 writes a Go int as 'I'.
		return raw(TypeInt32, int32(x))
	case int32:
		return raw(TypeInt32, x)
	case uint32:
		return raw(TypeUint32, x)
	case int64:
		return raw(TypeInt64, x)
	case float32:
		return raw(TypeFloat32, floatString(float64(x), 32))
	case float64:
		return raw(TypeFloat64, floatString(x, 64))
	case amqp.Decimal:
		return raw(TypeDecimal, decimalJSON{Scale: x.Scale, Value: x.Value})
	case string:
		if !utf8.ValidString(x) {
			return raw(TypeStringBase64, base64.StdEncoding.EncodeToString([]byte(x)))
		}
		return raw(TypeString, x)
	case []byte:
		return raw(TypeBytes, base64.StdEncoding.EncodeToString(x))
	case time.Time:
		return raw(TypeTimestamp, NewTimestamp(x))
	case []any:
		vs := make([]Value, len(x))
		for i, e := range x {
			ev, err := EncodeValue(e)
			if err != nil {
				return Value{}, fmt.Errorf("array element %d: %w", i, err)
			}
			vs[i] = ev
		}
		return raw(TypeArray, vs)
	case amqp.Table:
		t, err := EncodeTable(x)
		if err != nil {
			return Value{}, err
		}
		return raw(TypeTable, t)
	case map[string]any:
		return EncodeValue(amqp.Table(x))
	}
	return Value{}, fmt.Errorf("unsupported AMQP field type %T", v)
}

// floatString keeps non-finite floats representable in JSON; finite ones
// are written with the fewest digits that parse back to the same bits.
func floatString(f float64, bits int) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.FormatFloat(f, 'g', -1, bits)
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, bits))
}

// Decode returns the value as amqp091 will write it, with its wire type.
func (v Value) Decode() (any, error) {
	var err error
	dec := func(dst any) {
		d := json.NewDecoder(bytes.NewReader(v.Value))
		d.UseNumber()
		err = d.Decode(dst)
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			err = fmt.Errorf("type %s cannot hold %s", v.Type, v.Value)
		}
	}
	switch v.Type {
	case TypeVoid:
		return nil, nil
	case TypeBool:
		var x bool
		dec(&x)
		return x, err
	case TypeInt8:
		var x int8
		dec(&x)
		return x, err
	case TypeUint8:
		var x uint8
		dec(&x)
		return x, err
	case TypeInt16:
		var x int16
		dec(&x)
		return x, err
	case TypeUint16:
		var x uint16
		dec(&x)
		return x, err
	case TypeInt32:
		var x int32
		dec(&x)
		return x, err
	case TypeUint32:
		var x uint32
		dec(&x)
		return x, err
	case TypeInt64:
		var x int64
		dec(&x)
		return x, err
	case TypeFloat32, TypeFloat64:
		bits := 64
		if v.Type == TypeFloat32 {
			bits = 32
		}
		var n any
		dec(&n)
		if err != nil {
			return nil, err
		}
		var s string
		switch y := n.(type) {
		case json.Number:
			s = y.String()
		case string:
			s = y
		default:
			return nil, fmt.Errorf("%s value %s is not a number", v.Type, v.Value)
		}
		f, err := strconv.ParseFloat(s, bits)
		if err != nil {
			return nil, fmt.Errorf("%s value %q: %w", v.Type, s, err)
		}
		if bits == 32 {
			return float32(f), nil
		}
		return f, nil
	case TypeDecimal:
		var x decimalJSON
		dec(&x)
		return amqp.Decimal{Scale: x.Scale, Value: x.Value}, err
	case TypeString:
		var x string
		dec(&x)
		return x, err
	case TypeBytes, TypeStringBase64:
		var x string
		dec(&x)
		if err != nil {
			return nil, err
		}
		b, err := base64.StdEncoding.DecodeString(x)
		if err != nil {
			return nil, fmt.Errorf("%s value: %w", v.Type, err)
		}
		if v.Type == TypeStringBase64 {
			return string(b), nil
		}
		return b, nil
	case TypeTimestamp:
		var x Timestamp
		dec(&x)
		if err != nil {
			return nil, err
		}
		return x.Time, nil
	case TypeArray:
		var xs []Value
		dec(&xs)
		if err != nil {
			return nil, err
		}
		out := make([]any, len(xs))
		for i, e := range xs {
			if out[i], err = e.Decode(); err != nil {
				return nil, fmt.Errorf("array element %d: %w", i, err)
			}
		}
		return out, nil
	case TypeTable:
		var t map[string]Value
		dec(&t)
		if err != nil {
			return nil, err
		}
		return DecodeTable(t)
	}
	return nil, fmt.Errorf("unknown field type %q", v.Type)
}

// Timestamp is an AMQP timestamp (whole seconds since the epoch) in JSON:
// an RFC 3339 time in UTC, or, for an instant RFC 3339 cannot write (a year
// outside 0–9999, as when a producer put milliseconds in the timestamp),
// the number of seconds. Both forms read back.
type Timestamp struct{ time.Time }

// NewTimestamp is t as a Timestamp, in UTC.
func NewTimestamp(t time.Time) Timestamp { return Timestamp{t.UTC()} }

// MarshalJSON writes RFC 3339 where it can, else Unix seconds.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	u := t.UTC()
	if y := u.Year(); y < 0 || y > 9999 {
		return strconv.AppendInt(nil, u.Unix(), 10), nil
	}
	return json.Marshal(u.Format(time.RFC3339Nano))
}

// UnmarshalJSON reads an RFC 3339 string or a number of seconds.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] != '"' {
		var secs int64
		if err := json.Unmarshal(b, &secs); err != nil {
			return fmt.Errorf("timestamp %s: want an RFC 3339 time or whole seconds since 1970", b)
		}
		t.Time = time.Unix(secs, 0).UTC()
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("timestamp %q: want an RFC 3339 time such as 2026-05-01T10:15:00Z", s)
	}
	t.Time = v.UTC()
	return nil
}

// EncodeTable encodes every value of an AMQP table with its type.
func EncodeTable(t amqp.Table) (map[string]Value, error) {
	if t == nil {
		return nil, nil
	}
	out := make(map[string]Value, len(t))
	for k, v := range t {
		ev, err := EncodeValue(v)
		if err != nil {
			return nil, fmt.Errorf("header %q: %w", k, err)
		}
		out[k] = ev
	}
	return out, nil
}

// DecodeTable is the inverse of EncodeTable.
func DecodeTable(t map[string]Value) (amqp.Table, error) {
	if t == nil {
		return nil, nil
	}
	out := make(amqp.Table, len(t))
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, err := t[k].Decode()
		if err != nil {
			return nil, fmt.Errorf("header %q: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}
