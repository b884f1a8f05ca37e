package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// recorder is a writer that remembers how much it had received when the
// source produced each element: what a stream wrote before the end.
type recorder struct{ bytes.Buffer }

type streamedRecord struct {
	ID   string            `json:"id"`
	Body string            `json:"body"`
	Tags map[string]string `json:"tags,omitempty"`
}

// A list is written as it is produced: most of the document is out
// before the source ends, and the whole parses to what WriteJSON and
// WriteYAML would give for the same fields.
func TestListWriterStreamsAndParses(t *testing.T) {
	type doc struct {
		Queue    string           `json:"queue"`
		Messages []streamedRecord `json:"messages"`
		Depth    int              `json:"depth"`
		Shown    int              `json:"shown"`
	}
	const n = 2000
	want := doc{Queue: "email.dlq", Depth: n + 5, Shown: n}
	for i := range n {
		want.Messages = append(want.Messages, streamedRecord{ID: fmt.Sprintf("evt-%05d", i),
			Body: strings.Repeat("x", 100) + "<&>\n\"quoted\"", Tags: map[string]string{"tenant": "acme"}})
	}
	for _, f := range []Format{JSON, YAML} {
		var w recorder
		l, err := NewListWriter(&w, f, struct {
			Queue string `json:"queue"`
		}{want.Queue}, "messages")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range want.Messages {
			if err := l.Add(m); err != nil {
				t.Fatal(err)
			}
		}
		before := w.Len()
		if err := l.End(struct {
			Depth int `json:"depth"`
			Shown int `json:"shown"`
		}{want.Depth, want.Shown}); err != nil {
			t.Fatal(err)
		}
		if before < w.Len()/2 || !strings.Contains(w.String()[:before], "evt-00000") {
			t.Errorf("%s: %d of %d bytes written before the source ended: not streamed", f, before, w.Len())
		}
		var got doc
		if f == JSON {
			err = json.Unmarshal(w.Bytes(), &got)
		} else {
			err = yaml.Unmarshal(w.Bytes(), &got)
		}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: parsed %v, %d messages; want %d\n%.300s", f, err, len(got.Messages), n, w.String())
		}
	}
}

// An empty list is an empty array, as WriteJSON writes an empty slice,
// and the indentation is WriteJSON's.
func TestListWriterEmptyAndIndented(t *testing.T) {
	for _, c := range []struct {
		items []streamedRecord
	}{{nil}, {[]streamedRecord{{ID: "a", Body: "b"}}}} {
		var streamed bytes.Buffer
		l, _ := NewListWriter(&streamed, JSON, map[string]string{"queue": "q"}, "messages")
		for _, it := range c.items {
			l.Add(it)
		}
		if err := l.End(map[string]int{"shown": len(c.items)}); err != nil {
			t.Fatal(err)
		}
		var whole bytes.Buffer
		items := c.items
		if items == nil {
			items = []streamedRecord{}
		}
		WriteJSON(&whole, struct {
			Queue    string           `json:"queue"`
			Messages []streamedRecord `json:"messages"`
			Shown    int              `json:"shown"`
		}{"q", items, len(c.items)})
		if streamed.String() != whole.String() {
			t.Errorf("streamed:\n%s\nwhole:\n%s", streamed.String(), whole.String())
		}
	}
	var y bytes.Buffer
	l, _ := NewListWriter(&y, YAML, map[string]string{"queue": "q"}, "messages")
	l.End(map[string]int{"shown": 0})
	var got map[string]any
	if err := yaml.Unmarshal(y.Bytes(), &got); err != nil || fmt.Sprint(got["messages"]) != "[]" {
		t.Errorf("empty yaml %q: %v %v", y.String(), got, err)
	}
}
