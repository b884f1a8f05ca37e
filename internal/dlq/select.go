package dlq

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/mqctl/mqctl/internal/fail"
)

// Selection says which dead letters replay or purge may touch. A file
// selects as many messages per id as it holds lines with that id (an
// export lists each copy of a duplicated message); --id selects every
// message carrying that id; All selects every message the queue held when
// the command started.
type Selection struct {
	All bool
	// want counts how many more messages with each id may be taken; -1
	// means any number.
	want map[string]int
}

// SelectAll selects every message present at the start.
func SelectAll() *Selection { return &Selection{All: true} }

// SelectIDs selects every message carrying one of ids.
func SelectIDs(ids []string) *Selection {
	s := &Selection{want: map[string]int{}}
	for _, id := range ids {
		s.want[id] = -1
	}
	return s
}

// ReadSelection reads a JSONL file written by export or purge; only the
// "id" of each line matters (replay takes the content from the queue, not
// from the file). Blank lines are skipped. Errors name file:line.
func ReadSelection(path string) (*Selection, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fail.Usagef("read selection: %v", err)
	}
	defer f.Close()
	s := &Selection{want: map[string]int{}}
	err = ReadRecords(f, path, func(_ int, r Record) error {
		s.want[r.ID]++
		return nil
	})
	return s, err
}

// ReadRecords calls fn for every record of a JSONL stream; name is used
// in errors (file:line: problem), which are usage errors.
func ReadRecords(r io.Reader, name string, fn func(line int, r Record) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if len(trimSpace(b)) > 0 {
			var rec Record
			if jerr := json.Unmarshal(b, &rec); jerr != nil {
				return fail.Usagef("%s:%d: not a dead-letter record: %v", name, line, jerr)
			}
			if rec.ID == "" {
				return fail.Usagef("%s:%d: record has no \"id\"", name, line)
			}
			if ferr := fn(line, rec); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
	}
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// Size is how many messages the selection names, -1 when open-ended.
func (s *Selection) Size() int {
	if s.All {
		return -1
	}
	n := 0
	for _, c := range s.want {
		if c < 0 {
			return -1
		}
		n += c
	}
	return n
}

// Take reports whether a message with id is selected, and counts it.
func (s *Selection) Take(id string) bool {
	if s.All {
		return true
	}
	c, ok := s.want[id]
	switch {
	case !ok || c == 0:
		return false
	case c > 0:
		s.want[id] = c - 1
	}
	return true
}

// Untaken lists the selected ids no message matched (with repeats for a
// file that named an id more often than the queue held it).
func (s *Selection) Untaken(taken map[string]bool) []string {
	var out []string
	for id, c := range s.want {
		switch {
		case c > 0:
			for range c {
				out = append(out, id)
			}
		case c < 0 && !taken[id]:
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}
