// Package audit keeps the audit trail: one JSON line per command that
// changed messages or objects on a broker (dlq replay, purge, publish,
// topology prune and migrate), appended to a file only the user can read.
// It answers the question a person asks the morning after: who moved or
// deleted what, where, selected how, and did it work.
package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Entry is one line of the audit trail. It never holds a secret: Broker
// is an address without credentials, Error went through the caller's
// redactor.
type Entry struct {
	Time time.Time `json:"time"`
	// User is the operating-system user that ran the command.
	User string `json:"user"`
	// Command is the command that acted: "dlq replay", "dlq purge",
	// "publish", "topology prune", "topology migrate", "dlq browse".
	Command string `json:"command"`
	// Broker is the address the command acted on, without credentials.
	Broker string `json:"broker"`
	Vhost  string `json:"vhost"`
	Queue  string `json:"queue,omitempty"`
	// Selection is the selection as the user gave it (flags, a file, a
	// group key, a browser's marks).
	Selection string `json:"selection,omitempty"`
	// Items are the messages or objects acted on, each with its result.
	Items []Item `json:"items"`
	// Destinations are the distinct places the items went to.
	Destinations []string `json:"destinations,omitempty"`
	// Counts are the result totals by status (replayed, purged, failed …).
	Counts map[string]int `json:"counts,omitempty"`
	// Outcome is "ok", "partial" (some items not acted on) or "failed".
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`

	// MoreItems, when set, yields further items after Items as the line
	// is written: a run of millions of messages streams them from a
	// spool rather than holding them. An error it returns ends the items
	// there; the line is still whole, and its Error says the items are
	// incomplete.
	MoreItems func(yield func(Item) error) error `json:"-"`
}

// Item is one message or object acted on.
type Item struct {
	ID string `json:"id"`
	// BodySHA256 is the hex SHA-256 of the message body: it tells two
	// messages with one message_id apart, and matches a body a person
	// kept, without putting the body in the trail.
	BodySHA256  string `json:"body_sha256,omitempty"`
	Destination string `json:"destination,omitempty"`
	Status      string `json:"status"`
	Reason      string `json:"reason,omitempty"`
}

// Outcomes.
const (
	OK      = "ok"
	Partial = "partial"
	Failed  = "failed"
)

// BodyHash is the BodySHA256 of body.
func BodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// Path is the audit trail under stateDir ($XDG_STATE_HOME):
// mqctl/audit.jsonl.
func Path(stateDir string) string {
	return filepath.Join(stateDir, "mqctl", "audit.jsonl")
}

// CurrentUser names the operating-system user, for Entry.User.
func CurrentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if name := os.Getenv("USER"); name != "" {
		return name
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}

// Append writes e as one line at the end of the trail at path, creating
// the file (0600) and its directory (0700). The line is written under an
// exclusive lock, so two mqctl runs never interleave lines; its items are
// streamed (Items, then MoreItems), never built whole in memory. A write
// that fails is cut off again, so no torn line is left behind.
func Append(path string, e Entry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("audit trail: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit trail: %w", err)
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		return fmt.Errorf("audit trail %s: lock: %w", path, err)
	}
	start, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("audit trail %s: %w", path, err)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	// A run killed while it streamed its line left it without a newline:
	// this entry starts a line of its own.
	last := make([]byte, 1)
	if start > 0 {
		if _, err := f.ReadAt(last, start-1); err == nil && last[0] != '\n' {
			_ = w.WriteByte('\n')
		}
	}
	itemsErr, err := writeEntry(w, e)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		_ = f.Truncate(start)
		return fmt.Errorf("audit trail %s: %w", path, err)
	}
	if itemsErr != nil {
		return fmt.Errorf("audit trail %s: the items are incomplete: %w", path, itemsErr)
	}
	return nil
}

// itemsKey opens the items array in an entry's JSON: a key, which no
// string value of the fields before it can hold unescaped.
var itemsKey = []byte(`"items":[`)

// writeEntry writes e as one JSON line, the fields in their declared
// order, the items one by one. itemsErr is MoreItems' error: the line is
// closed anyway, its Error saying the items stop there; err is w's.
func writeEntry(w *bufio.Writer, e Entry) (itemsErr, err error) {
	items := e.Items
	e.Items = []Item{}
	head, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	i := bytes.Index(head, itemsKey) + len(itemsKey)
	w.Write(head[:i])
	n := 0
	item := func(it Item) error {
		b, err := json.Marshal(it)
		if err != nil {
			return err
		}
		if n++; n > 1 {
			w.WriteByte(',')
		}
		_, err = w.Write(b)
		return err
	}
	for _, it := range items {
		if err := item(it); err != nil {
			return nil, err
		}
	}
	if e.MoreItems != nil {
		itemsErr = e.MoreItems(item)
	}
	if itemsErr != nil {
		// The head is out already; the fields after the items say what
		// went wrong.
		e.Error = strings.TrimPrefix(e.Error+"; ", "; ") + "audit items incomplete after " + strconv.Itoa(n) + ": " + itemsErr.Error()
		if e.Outcome == OK {
			e.Outcome = Partial
		}
		if head, err = json.Marshal(e); err != nil {
			return itemsErr, err
		}
	}
	w.Write(head[i:])
	if err := w.WriteByte('\n'); err != nil {
		return itemsErr, err
	}
	return itemsErr, nil
}

// Read returns the entries of the trail at path, oldest first; a missing
// file is an empty trail. A line that is not an entry (a torn write of a
// crashed run) is reported with its line number.
func Read(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Decode(f, path)
}

// Decode reads entries from r, one per line; name labels errors. A last
// line without its newline that is not an entry is left out: a run is
// still streaming it (under the lock, which readers do not take), or was
// killed midway, and Append starts the next entry on a line of its own.
func Decode(r io.Reader, name string) ([]Entry, error) {
	var out []Entry
	br := bufio.NewReaderSize(r, 64*1024)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return out, err
		}
		whole := err == nil // the line ended with its newline
		if len(bytes.TrimSpace(line)) > 0 {
			var e Entry
			if jerr := json.Unmarshal(line, &e); jerr != nil {
				if !whole {
					return out, nil
				}
				return out, fmt.Errorf("%s:%d: not an audit entry: %w", name, n, jerr)
			}
			out = append(out, e)
		}
		if !whole {
			return out, nil
		}
	}
}

// OutcomeOf classifies a run: failed when it ended with an error before
// acting on everything, partial when some selected item was not acted
// on, ok otherwise.
func OutcomeOf(err error, partial bool) string {
	switch {
	case err != nil:
		return Failed
	case partial:
		return Partial
	}
	return OK
}
