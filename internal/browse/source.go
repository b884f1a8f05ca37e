// Package browse is the terminal UI of `mqctl dlq browse`: groups of
// dead letters, the messages of a group, one message in full; marks, and
// a confirmed replay or purge of the marked set. It knows nothing of
// RabbitMQ: it reads and acts through a Source, so the model runs on fake
// data in tests and on a real queue in the command.
package browse

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Source is what the browser reads and acts through. Its methods run on
// goroutines the Model owns, never on the UI's; each must return soon
// after its ctx is cancelled.
type Source interface {
	// Load reads every message of the queue, oldest first, without
	// consuming any, and hands them to emit in batches with the progress
	// so far; it stops when emit returns an error and returns that.
	Load(ctx context.Context, emit func(Batch) error) error
	// Detail is one message in full, by id.
	Detail(ctx context.Context, id string) (Detail, error)
	// Replay republishes exactly the messages with sel's ids to the
	// queues they died in, and records the act.
	Replay(ctx context.Context, sel Selection) (Result, error)
	// Purge removes exactly the messages with sel's ids, writing each to
	// the archive at archive first, and records the act.
	Purge(ctx context.Context, sel Selection, archive string) (Result, error)
	// PurgeArchive is the archive the next purge should write; the
	// confirmation names it and Purge receives it.
	PurgeArchive() string
}

// Batch is a run of messages Load read, with its progress.
type Batch struct {
	Messages []Message
	// Read counts the messages read so far; Total is the queue's depth
	// when the read started (the read stops there).
	Read, Total int
}

// Message is what the browser keeps of one dead letter: a summary, never
// its body, so that a queue of 100,000 fits in a few tens of MB.
type Message struct {
	ID string
	// GroupKey names the message's group; Origin, Reason and Error are
	// the group's fields (Error normalised), the same for every member.
	GroupKey              string
	Origin, Reason, Error string
	// Cause is the newest death as a human reads it (reason, or the
	// consumer's error).
	Cause       string
	Deaths      int64
	LastDeath   time.Time
	Destination string // where a replay sends it; "" when unknown
	// Hold is why a replay would leave it in the queue (replayed too
	// often, an origin that does not dead-letter here); "" when it moves.
	Hold    string
	Replays int64
	Size    int
}

// Detail is one message in full, for the message view.
type Detail struct {
	ID         string
	Deaths     []Death // oldest first, newest last
	Properties []Field
	Headers    []Field
	// HiddenHeaders counts the death headers left out of Headers (they
	// are Deaths).
	HiddenHeaders int
	Body          []byte // possibly cut; BodySize is the whole size
	BodySize      int
}

// Death is one death in a message's history.
type Death struct {
	Time       time.Time // zero when unknown
	Queue      string
	Reason     string
	Error      string
	ErrorClass string
	Count      int64
	Life       int  // replays before it
	Retry      bool // a pass through a retry delay queue, not a death
}

// Field is a named value, shown as text.
type Field struct{ Name, Value string }

// Selection is the marked set an action applies to.
type Selection struct {
	// IDs are the marked messages' distinct ids, sorted.
	IDs []string
	// Count is how many messages in the queue carry one of IDs (a
	// duplicate of a marked message moves with it).
	Count int
	// Groups are the keys of the groups marked whole.
	Groups []string
	// Others counts the marked messages outside those groups.
	Others int
}

// String says how the selection was made, for the audit trail:
// "browse: 12 marked (group 3fa2c9d1)".
func (s Selection) String() string {
	var parts []string
	if len(s.Groups) > 0 {
		word := "group"
		if len(s.Groups) > 1 {
			word = "groups"
		}
		parts = append(parts, word+" "+strings.Join(s.Groups, ", "))
	}
	if s.Others > 0 {
		if len(parts) == 0 {
			parts = append(parts, "single messages")
		} else {
			parts = append(parts, fmt.Sprintf("%d more", s.Others))
		}
	}
	text := fmt.Sprintf("browse: %d marked", s.Count)
	if len(parts) > 0 {
		text += " (" + strings.Join(parts, " + ") + ")"
	}
	return text
}

// Result is what an action did, for the status line.
type Result struct {
	Summary string
	// Partial is true when some marked message was not moved (skipped,
	// failed, gone).
	Partial bool
}
