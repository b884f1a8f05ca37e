package dlq

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// Journal records, per replay of one queue, the id of every message a run
// publishes, written with plain write(2) before the publish (it survives
// the process being killed; a machine crash only loses the report, never
// a message). A run that finishes marks the journal done. A run killed
// between a publish and the broker processing the dead letter's ack
// leaves that dead letter in the DLQ and a copy in the origin queue: the
// next run meets the same id in the DLQ again, finds it in the journal of
// the unfinished run, and reports it as a possible duplicate. That is
// exact whatever happened to the acks in flight: a dead letter still in
// the DLQ was not acked. There are at most the confirm window of them per
// killed run (plus acks the kill cut off on the wire).
//
// A run that finds such a duplicate journals it, and only a run that
// finishes clears them: when a run is killed too, before it could report
// what it found, the next finished run reports those as well.
//
// The file is JSON lines, one journalLine each, as every version wrote it;
// a line is appended by hand (appendLine) rather than through
// encoding/json, which cost a replay more than the write itself.
type Journal struct {
	f   *os.File
	buf []byte
	// Unsettled counts, per id, the publishes of earlier, unfinished runs
	// not yet accounted for.
	Unsettled map[string]int
	// found are the possible duplicates earlier, unfinished runs found
	// and could not report; seen holds them as a set.
	found []string
	seen  map[string]bool
}

type journalLine struct {
	P string `json:"p,omitempty"` // published
	// A duplicate found (an earlier run's publish met again in the DLQ):
	// accounted for, and to be reported by the first run that finishes.
	D   string `json:"d,omitempty"`
	A   string `json:"a,omitempty"` // accounted for (journals of earlier versions)
	End bool   `json:"end,omitempty"`
}

// OpenJournal reads what an earlier, unfinished run left at path and
// starts a new journal there that carries the unsettled ids forward.
func OpenJournal(path string) (*Journal, error) {
	unsettled := map[string]int{}
	j := &Journal{Unsettled: unsettled, seen: map[string]bool{}}
	settle := func(id string) {
		if unsettled[id]--; unsettled[id] <= 0 {
			delete(unsettled, id)
		}
	}
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			l, ok := parseLine(sc.Bytes())
			if !ok {
				continue // a torn last line of a killed run
			}
			switch {
			case l.End:
				clear(unsettled)
				j.found, j.seen = nil, map[string]bool{}
			case l.P != "":
				unsettled[l.P]++
			case l.D != "":
				settle(l.D)
				j.remember(l.D)
			case l.A != "":
				settle(l.A)
			}
		}
		f.Close()
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read replay journal: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create replay journal directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open replay journal: %w", err)
	}
	j.f = f
	// Carried forward: a P line is a publish to account for, a P and a D
	// line a duplicate found and not yet reported.
	for id, n := range unsettled {
		for range n {
			j.add(journalLine{P: id})
		}
	}
	for _, id := range j.found {
		j.add(journalLine{P: id}, journalLine{D: id})
	}
	return j, j.flush()
}

func (j *Journal) remember(id string) {
	if !j.seen[id] {
		j.seen[id] = true
		j.found = append(j.found, id)
	}
}

// earlier returns the possible duplicates that earlier, unfinished runs
// found, for this run to report.
func (j *Journal) earlier() []string {
	if j == nil {
		return nil
	}
	return slices.Clone(j.found)
}

func (j *Journal) add(ls ...journalLine) {
	for _, l := range ls {
		j.buf = appendLine(j.buf, l)
	}
}

// Keys of journalLine, as they open a line with one id.
const (
	keyP = `{"p":"`
	keyD = `{"d":"`
	keyA = `{"a":"`
)

// appendLine appends l as the JSON line encoding/json makes of it. An id
// of printable ASCII without quote or backslash (every message_id and
// sha256 id in practice) is written as it is; any other goes through
// encoding/json, so it is escaped exactly as before.
func appendLine(b []byte, l journalLine) []byte {
	key, id := "", ""
	switch {
	case l.P != "" && l.D == "" && l.A == "" && !l.End:
		key, id = keyP, l.P
	case l.D != "" && l.P == "" && l.A == "" && !l.End:
		key, id = keyD, l.D
	case l == journalLine{End: true}:
		return append(b, `{"end":true}`+"\n"...)
	}
	if key == "" || !plainID(id) {
		m, _ := json.Marshal(l)
		return append(append(b, m...), '\n')
	}
	b = append(b, key...)
	b = append(b, id...)
	return append(b, `"}`+"\n"...)
}

// plainID reports whether id needs no escaping in a JSON string, in
// encoding/json's way (which also escapes <, > and &).
func plainID(id string) bool {
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// parseLine reads a journal line: the lines appendLine writes for a plain
// id directly, any other (escaped ids, the end mark, lines of earlier
// versions) with encoding/json. ok is false for a line that is not one (a
// torn last line of a killed run).
func parseLine(b []byte) (l journalLine, ok bool) {
	s := string(b)
	if len(s) > len(keyP)+2 && s[len(s)-2:] == `"}` {
		id := s[len(keyP) : len(s)-2]
		if plainID(id) {
			switch s[:len(keyP)] {
			case keyP:
				return journalLine{P: id}, true
			case keyD:
				return journalLine{D: id}, true
			case keyA:
				return journalLine{A: id}, true
			}
		}
	}
	return l, json.Unmarshal(b, &l) == nil
}

func (j *Journal) flush() error {
	if j == nil || len(j.buf) == 0 {
		return nil
	}
	_, err := j.f.Write(j.buf)
	j.buf = j.buf[:0]
	if err != nil {
		return fmt.Errorf("write replay journal: %w", err)
	}
	return nil
}

// published is written (with everything pending) before the publishes
// of ids, in one write.
func (j *Journal) published(ids ...string) error {
	if j == nil {
		return nil
	}
	for _, id := range ids {
		j.add(journalLine{P: id})
	}
	return j.flush()
}

// redo reports whether replaying id now may duplicate an earlier run's
// unsettled publish not reported yet, and counts it as accounted for.
func (j *Journal) redo(id string) bool {
	if j == nil || j.Unsettled[id] == 0 {
		return false
	}
	j.Unsettled[id]--
	// The earlier run's publish is now accounted for, and to be reported
	// by this run or, if it is killed too, by the next one that finishes;
	// this run's own publish gets its own lines.
	j.add(journalLine{D: id})
	// One that an earlier run found is reported with those (earlier).
	return !j.seen[id]
}

// Close marks the run finished when finished is true, and closes the file.
func (j *Journal) Close(finished bool) error {
	if j == nil {
		return nil
	}
	if finished {
		j.add(journalLine{End: true})
	}
	err := j.flush()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	return err
}
