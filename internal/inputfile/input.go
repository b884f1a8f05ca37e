package inputfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"unicode/utf8"
)

// Size limits on the files mqctl reads whole. They keep a wrong file
// (a 50 MB log, /dev/zero) from taking the machine's memory: parsing YAML
// takes about fifty times the file's size.
const (
	// MaxTopologyFile is the largest topology file read: about 130,000
	// queues written one per entry.
	MaxTopologyFile = 8 << 20
	// MaxDefinitionsFile is the largest RabbitMQ definitions JSON read.
	MaxDefinitionsFile = 32 << 20
	// MaxConfigFile is the largest config file read.
	MaxConfigFile = 1 << 20
)

var bom = []byte("\xef\xbb\xbf")

// ReadFile reads the input file at path whole, what naming it in errors
// ("a topology file"). It refuses, as Problems naming the file, one larger
// than limit bytes (without reading past the limit) and one that is not
// UTF-8 text; a leading byte-order mark is dropped.
func ReadFile(path, what string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Problems{{File: path, Message: fmt.Sprintf("read %s: %v", what, unwrapPath(err))}}
	}
	defer f.Close()
	tooBig := func(size string) error {
		return Problems{{File: path, Message: fmt.Sprintf("%s may be at most %s; this one holds %s: is it the right file?", what, Bytes(limit), size)}}
	}
	if info, err := f.Stat(); err == nil && info.Mode().IsRegular() && info.Size() > limit {
		return nil, tooBig(Bytes(info.Size()))
	}
	return ReadFrom(f, path, what, limit)
}

// StdinName names standard input in problems, for an input given as "-".
const StdinName = "<stdin>"

// ReadFrom is ReadFile for an open reader (a pipe, standard input), name
// naming it in problems: it reads no more than limit+1 bytes.
func ReadFrom(r io.Reader, name, what string, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, Problems{{File: name, Message: fmt.Sprintf("read %s: %v", what, unwrapPath(err))}}
	}
	if int64(len(data)) > limit {
		return nil, Problems{{File: name, Message: fmt.Sprintf("%s may be at most %s; this one holds more: is it the right file?", what, Bytes(limit))}}
	}
	data = bytes.TrimPrefix(data, bom)
	if p := CheckText(name, data); p != nil {
		return nil, Problems{*p}
	}
	return data, nil
}

// unwrapPath drops the path a *fs.PathError repeats: the Problem names
// the file already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// CheckText returns a Problem at the first byte that makes data something
// other than UTF-8 text: invalid UTF-8, or a control character other than
// tab, line feed and carriage return (binary data). Nil when data is text.
func CheckText(file string, data []byte) *Problem {
	for i := 0; i < len(data); {
		c := data[i]
		if c < utf8.RuneSelf {
			// DEL (0x7f) is text to JSON, which mqctl's exports are.
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				line, col := Position(data, i)
				return &Problem{File: file, Line: line, Column: col, Message: fmt.Sprintf("control character 0x%02x: this is not a text file (binary data?)", c)}
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n <= 1 {
			line, col := Position(data, i)
			return &Problem{File: file, Line: line, Column: col, Message: fmt.Sprintf("invalid UTF-8 (byte 0x%02x): the file must be UTF-8 text", c)}
		}
		i += n
	}
	return nil
}

// Position is the 1-based line and column (in characters) of byte offset
// off in data.
func Position(data []byte, off int) (line, col int) {
	off = min(max(off, 0), len(data))
	before := data[:off]
	line = 1 + bytes.Count(before, []byte("\n"))
	start := bytes.LastIndexByte(before, '\n') + 1
	return line, 1 + utf8.RuneCount(before[start:])
}

// Bytes formats a size for humans: 512 B, 8 MiB, 49.9 MiB.
func Bytes(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return trimZero(float64(n)/(1<<10)) + " KiB"
	default:
		return trimZero(float64(n)/(1<<20)) + " MiB"
	}
}

func trimZero(f float64) string {
	s := fmt.Sprintf("%.1f", f)
	if len(s) > 2 && s[len(s)-2:] == ".0" {
		s = s[:len(s)-2]
	}
	return s
}

// JSONProblem positions an encoding/json decoding error of data: a syntax
// error at the offending character, a wrong type at its value (with the
// field's path), a truncated document at its end.
func JSONProblem(file string, data []byte, err error) Problem {
	at := func(off int64, format string, a ...any) Problem {
		line, col := Position(data, int(off))
		return Problem{File: file, Line: line, Column: col, Message: fmt.Sprintf(format, a...)}
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	truncated := errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &se) && se.Offset >= int64(len(data)) && strings.Contains(se.Error(), "unexpected end")
	switch {
	case truncated:
		return at(int64(len(data)), "invalid JSON: the document ends early (a truncated file?)")
	case errors.As(err, &se):
		return at(se.Offset-1, "invalid JSON: %v", se)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "the document"
		}
		return at(te.Offset-1, "%s: want %s, not a JSON %s", field, jsonKind(te.Type), te.Value)
	}
	return Problem{File: file, Message: err.Error()}
}

// jsonKind says in JSON's words what a Go type wants.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("a whole number from 0 to %d", uint64(1)<<(t.Bits())-1)
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string"
		}
		return "a list"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "an object"
}
