package output

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/goccy/go-yaml"
)

// ListWriter writes a JSON or YAML document whose one list is written
// element by element as it is produced: the head's fields, the list
// under key, then the tail's fields (counts known only at the end). What
// it holds does not grow with the list, so a command can print a million
// records in the memory of one. The fields are those WriteJSON and
// WriteYAML would write for the same values; only their order differs
// (the tail's come after the list).
type ListWriter struct {
	w      *bufio.Writer
	format Format
	head   any
	key    string
	n      int
	opened bool
}

// flushAt is how much a ListWriter buffers before it writes: records go
// out as they come, in writes of a useful size.
const flushAt = 32 << 10

// NewListWriter starts a document in format f (JSON or YAML) on w with
// the fields of head (a struct or map marshalled to a JSON object) and
// the list key. Nothing is written until the first element or End, so a
// command that fails before it read anything prints nothing.
func NewListWriter(w io.Writer, f Format, head any, key string) (*ListWriter, error) {
	if f != JSON && f != YAML {
		return nil, fmt.Errorf("internal: no list writer for format %s", f)
	}
	return &ListWriter{w: bufio.NewWriterSize(w, 2*flushAt), format: f, head: head, key: key}, nil
}

// open writes the head's fields and opens the list.
func (l *ListWriter) open() error {
	if l.opened {
		return nil
	}
	l.opened = true
	fields, err := objectFields(l.format, l.head)
	if err != nil {
		return err
	}
	switch l.format {
	case JSON:
		l.w.WriteString("{")
		if len(fields) > 0 {
			l.w.Write(fields)
			l.w.WriteString(",")
		}
		key, _ := json.Marshal(l.key)
		l.w.WriteString("\n  ")
		l.w.Write(key)
		l.w.WriteString(": [")
	case YAML:
		l.w.Write(fields)
	}
	return nil
}

// Add writes one element of the list.
func (l *ListWriter) Add(v any) error {
	if err := l.open(); err != nil {
		return err
	}
	switch l.format {
	case JSON:
		b, err := json.MarshalIndent(v, "    ", "  ")
		if err != nil {
			return err
		}
		if l.n > 0 {
			l.w.WriteString(",")
		}
		l.w.WriteString("\n    ")
		l.w.Write(b)
	case YAML:
		y, err := yamlOf(v)
		if err != nil {
			return err
		}
		if l.n == 0 {
			fmt.Fprintf(l.w, "%s:\n", l.key)
		}
		for i, line := range bytes.SplitAfter(bytes.TrimSuffix(y, []byte("\n")), []byte("\n")) {
			if i == 0 {
				l.w.WriteString("- ")
			} else {
				l.w.WriteString("  ")
			}
			l.w.Write(line)
		}
		l.w.WriteString("\n")
	}
	l.n++
	if l.w.Buffered() >= flushAt {
		return l.w.Flush()
	}
	return nil
}

// End closes the list, writes the tail's fields and ends the document.
func (l *ListWriter) End(tail any) error {
	if err := l.open(); err != nil {
		return err
	}
	fields, err := objectFields(l.format, tail)
	if err != nil {
		return err
	}
	switch l.format {
	case JSON:
		if l.n > 0 {
			l.w.WriteString("\n  ")
		}
		l.w.WriteString("]")
		if len(fields) > 0 {
			l.w.WriteString(",")
			l.w.Write(fields)
		}
		l.w.WriteString("\n}\n")
	case YAML:
		if l.n == 0 {
			fmt.Fprintf(l.w, "%s: []\n", l.key)
		}
		l.w.Write(fields)
	}
	return l.w.Flush()
}

// objectFields is v's fields as they stand inside the document: for
// JSON, `\n  "k": v` lines joined by commas (no braces); for YAML, `k: v`
// lines. An empty object has none.
func objectFields(f Format, v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	if f == YAML {
		y, err := yamlOf(v)
		if err != nil || bytes.Equal(bytes.TrimSpace(y), []byte("{}")) {
			return nil, err
		}
		return y, nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	if len(b) < 2 || b[0] != '{' {
		return nil, fmt.Errorf("internal: %T is not a JSON object", v)
	}
	inner := b[1 : len(b)-1] // "\n  ...\n" or ""
	return bytes.TrimSuffix(inner, []byte("\n")), nil
}

func yamlOf(v any) ([]byte, error) {
	js, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(js)
}
