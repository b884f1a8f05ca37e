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
	switch v.Type {
	case TypeVoid:
		return nil, nil
	case TypeBool:
		return decodeAs[bool](v)
	case TypeInt8:
		return decodeAs[int8](v)
	case TypeUint8:
		return decodeAs[uint8](v)
	case TypeInt16:
		return decodeAs[int16](v)
	case TypeUint16:
		return decodeAs[uint16](v)
	case TypeInt32:
		return decodeAs[int32](v)
	case TypeUint32:
		return decodeAs[uint32](v)
	case TypeInt64:
		return decodeAs[int64](v)
	case TypeString:
		return decodeAs[string](v)
	case TypeFloat32:
		return v.decodeFloat(32)
	case TypeFloat64:
		return v.decodeFloat(64)
	case TypeDecimal:
		return v.decodeDecimal()
	case TypeBytes, TypeStringBase64:
		return v.decodeBase64()
	case TypeTimestamp:
		return v.decodeTimestamp()
	case TypeArray:
		return v.decodeArray()
	case TypeTable:
		return v.decodeTable()
	}
	return nil, fmt.Errorf("unknown field type %q", v.Type)
}

// unmarshal reads the JSON value into dst, numbers kept exact; a value
// of the wrong kind or out of range for the type is named with its type.
func (v Value) unmarshal(dst any) error {
	d := json.NewDecoder(bytes.NewReader(v.Value))
	d.UseNumber()
	err := d.Decode(dst)
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		err = fmt.Errorf("type %s cannot hold %s", v.Type, v.Value)
	}
	return err
}

// decodeAs is the value as a T, for the types whose JSON form is the Go
// value itself (bool, the integers, string): encoding/json refuses one
// out of T's range.
func decodeAs[T any](v Value) (any, error) {
	var x T
	err := v.unmarshal(&x)
	return x, err
}

// decodeFloat reads a JSON number, or the string of a non-finite float
// (see floatString), into a float of the given bits.
func (v Value) decodeFloat(bits int) (any, error) {
	var n any
	if err := v.unmarshal(&n); err != nil {
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
}

func (v Value) decodeDecimal() (any, error) {
	var x decimalJSON
	err := v.unmarshal(&x)
	return amqp.Decimal{Scale: x.Scale, Value: x.Value}, err
}

// decodeBase64 reads bytes, or a string that is not UTF-8: both travel
// as base64.
func (v Value) decodeBase64() (any, error) {
	var x string
	if err := v.unmarshal(&x); err != nil {
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
}

func (v Value) decodeTimestamp() (any, error) {
	var x Timestamp
	if err := v.unmarshal(&x); err != nil {
		return nil, err
	}
	return x.Time, nil
}

func (v Value) decodeArray() (any, error) {
	var xs []Value
	if err := v.unmarshal(&xs); err != nil {
		return nil, err
	}
	out := make([]any, len(xs))
	for i, e := range xs {
		var err error
		if out[i], err = e.Decode(); err != nil {
			return nil, fmt.Errorf("array element %d: %w", i, err)
		}
	}
	return out, nil
}

func (v Value) decodeTable() (any, error) {
	var t map[string]Value
	if err := v.unmarshal(&t); err != nil {
		return nil, err
	}
	return DecodeTable(t)
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
