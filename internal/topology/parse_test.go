package topology

import (
	"errors"
	"strings"
	"testing"

	"github.com/mqctl/mqctl/internal/inputfile"
)

func problemsOf(t *testing.T, src string) inputfile.Problems {
	t.Helper()
	_, err := ParseAndValidate("t.yaml", []byte(src))
	if err == nil {
		return nil
	}
	var ps inputfile.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error is %T, want Problems: %v", err, err)
	}
	return ps
}

func TestValidFiles(t *testing.T) {
	for name, src := range map[string]string{
		"example":           "apiVersion: mqctl/v1\nexchanges:\n  - {name: e, type: topic}\nqueues:\n  - name: q\n    bindings: [{exchange: e, routing_key: a.#}]\n    retry: {max_attempts: 3, backoff: [1s, 2s]}\n    dead_letter: true\n",
		"classic with args": "apiVersion: mqctl/v1\ndefaults: {queue_type: classic}\nqueues:\n  - name: q\n    durable: false\n    arguments: {x-max-length: 10, x-overflow: drop-head}\n",
		"e2e and policy":    "apiVersion: mqctl/v1\nexchanges: [{name: a, type: fanout}, {name: b, type: headers}]\nbindings:\n  - {source: a, destination: b, destination_type: exchange}\n  - {source: b, destination: q, arguments: {x-match: all, k: v}}\nqueues: [{name: q}]\npolicies:\n  - {name: p, pattern: ^q$, apply_to: queues, definition: {max-length: 5}}\n",
		"named dlq":         "apiVersion: mqctl/v1\nqueues:\n  - {name: q, dead_letter: q.dead, delivery_limit: 3}\n",
		"builtin exchange":  "apiVersion: mqctl/v1\nqueues:\n  - {name: q, bindings: [{exchange: amq.topic, routing_key: x}]}\n",
		"shared dlq":        "apiVersion: mqctl/v1\nqueues:\n  - {name: a, dead_letter: all.dlq}\n  - {name: b, dead_letter: all.dlq}\n",
	} {
		t.Run(name, func(t *testing.T) {
			if ps := problemsOf(t, src); ps != nil {
				t.Fatalf("unexpected problems:\n%v", ps)
			}
		})
	}
}

func TestProblemsArePositionedAndComplete(t *testing.T) {
	src := `apiVersion: mqctl/v1
colour: blue
exchanges:
  - name: user.events
    type: topic
  - name: user.events
    type: fanout
  - name: odd
    type: bogus
queues:
  - name: email
    bindings:
      - exchange: nowhere
    retry:
      max_attempts: 3
      backoff: [5s, soon]
    dead_letter: email
  - name: email
  - name: points
    retry: {max_attempts: 2, backoff: [1s]}
  - name: s
    type: stream
    dead_letter: true
  - name: c
    type: classic
    delivery_limit: 3
    dead_letter: true
  - name: t
    type: quorum
    durable: false
    arguments: {x-queue-type: classic, x-message-ttl: -5}
  - name: w
    retry: {max_attempts: "three"}
    dead_letter: true
  - name: loop.a
    dead_letter: loop.b
  - name: loop.b
    dead_letter: true
policies:
  - {name: p, pattern: "([", definition: {}}
`
	ps := problemsOf(t, src)
	want := []struct {
		line int
		text string
	}{
		{2, `unknown key "colour"`},
		{6, `duplicate exchange "user.events"`},
		{8, `type "bogus"`},
		{13, `exchange "nowhere" is not declared`},
		{16, `bad duration "soon"`},
		{17, `dead_letter names the queue itself`},
		{18, `duplicate queue "email"`},
		{20, `retry needs dead_letter`},
		{21, `streams do not dead-letter`},
		{24, `delivery_limit needs a quorum queue`},
		{28, `always durable`},
		{28, `x-queue-type: use`},
		{28, `x-message-ttl must be a non-negative integer`},
		{33, `max_attempts must be an integer`},
		{36, `would loop`},
		{40, `not a valid regular expression`},
		{40, `empty definition`},
	}
	for _, w := range want {
		found := false
		for _, p := range ps {
			if p.Line == w.line && strings.Contains(p.Message, w.text) && p.Column > 0 && p.File == "t.yaml" {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem at line %d containing %q; got:\n%v", w.line, w.text, ps)
		}
	}
}

func TestPatternOwnsDeadLetterArguments(t *testing.T) {
	ps := problemsOf(t, "apiVersion: mqctl/v1\nqueues:\n  - name: q\n    dead_letter: true\n    arguments: {x-overflow: drop-head, x-dead-letter-exchange: other}\n")
	if len(ps) != 2 || !strings.Contains(ps.Error(), "x-overflow is set by `dead_letter:`") || !strings.Contains(ps.Error(), "x-dead-letter-exchange: it is set by") {
		t.Errorf("got %v", ps)
	}
}

func TestSyntaxErrorHasPosition(t *testing.T) {
	ps := problemsOf(t, "apiVersion: mqctl/v1\nqueues:\n  - name: [unclosed\n")
	if len(ps) != 1 || ps[0].Line == 0 {
		t.Fatalf("want one positioned problem, got %v", ps)
	}
}

func TestWrongShapes(t *testing.T) {
	ps := problemsOf(t, "apiVersion: mqctl/v1\nqueues: {name: q}\nexchanges:\n  - just-a-string\n")
	if len(ps) != 2 {
		t.Fatalf("want 2 problems, got %v", ps)
	}
	if !strings.Contains(ps[0].Message, "queues must be a list") || !strings.Contains(ps[1].Message, "each entry of exchanges must be a mapping") {
		t.Errorf("unexpected problems: %v", ps)
	}
}

func TestMissingAPIVersionAndEmpty(t *testing.T) {
	if ps := problemsOf(t, "queues: [{name: q}]\n"); len(ps) != 1 || !strings.Contains(ps[0].Message, `missing required key "apiVersion"`) {
		t.Errorf("got %v", ps)
	}
	if ps := problemsOf(t, ""); len(ps) != 1 || !strings.Contains(ps[0].Message, "empty file") {
		t.Errorf("got %v", ps)
	}
}

func TestDuration(t *testing.T) {
	for in, want := range map[string]string{"5s": "5s", "120s": "2m", "90m": "1h30m", "1500ms": "1.5s", "2h": "2h"} {
		d, err := ParseDuration(in)
		if err != nil || d.String() != want {
			t.Errorf("%s: got %v %v, want %s", in, d, err, want)
		}
	}
	for _, bad := range []string{"", "0s", "-1s", "10us", "1.5ms", "soon"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// YAML 1.1's yes/no/on/off are strings to this (YAML 1.2) parser:
// `dead_letter: no` would name a dead-letter queue "no". Refused with the
// position; a quoted word is a queue name as written.
func TestYAML11BooleansInDeadLetter(t *testing.T) {
	for _, word := range []string{"yes", "no", "On", "OFF", "y", "n"} {
		ps := problemsOf(t, "apiVersion: mqctl/v1\nqueues:\n  - {name: q, dead_letter: "+word+"}\n")
		if len(ps) != 1 || ps[0].Line != 3 || !strings.Contains(ps[0].Message, "write true or false") {
			t.Errorf("dead_letter: %s: %v", word, ps)
		}
	}
	f := mustParse(t, "apiVersion: mqctl/v1\nqueues:\n  - {name: q, dead_letter: \"no\"}\n")
	if f.Queues[0].DeadLetter.Queue != "no" {
		t.Errorf("quoted \"no\": dead-letter queue %q", f.Queues[0].DeadLetter.Queue)
	}
}
