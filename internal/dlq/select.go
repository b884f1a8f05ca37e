package dlq

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/inputfile"
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
	// Filter, when set, must select a message too (--where, --group).
	Filter *Filter
}

// SelectAll selects every message present at the start.
func SelectAll() *Selection { return &Selection{All: true} }

// SelectIDs selects every message carrying one of ids; ResolveIDs turns
// unique prefixes into the ids they begin.
func SelectIDs(ids []string) *Selection {
	s := &Selection{want: map[string]int{}}
	for _, id := range ids {
		s.want[id] = -1
	}
	return s
}

// take reports whether the delivery d with id is selected, and counts
// it; a message the filter leaves out does not use up its id.
func (s *Selection) take(d amqp.Delivery, id string) bool {
	if !s.Filter.Match(d, id) {
		return false
	}
	return s.Take(id)
}

// maxListed bounds the ids an ambiguous prefix's error lists.
const maxListed = 10

// prefixMatch is what a scan found for one --id: a message with exactly
// that id, else the distinct ids it begins (up to maxListed+1).
type prefixMatch struct {
	exact bool
	ids   []string
}

// ResolveIDs reads queue as Peek does (nothing consumed) and replaces
// each --id that is no message's id but begins exactly one id (with or
// without its "sha256:") by that id. A prefix that begins several ids is
// a usage error listing them; one that begins none stays, to be reported
// not found. Only --id selections have anything to resolve.
func (s *Selection) ResolveIDs(ctx context.Context, conn *amqp.Connection, queue string) error {
	given := map[string]*prefixMatch{}
	for id, c := range s.want {
		if c < 0 {
			given[id] = &prefixMatch{}
		}
	}
	if s.All || len(given) == 0 {
		return nil
	}
	_, err := peekDeliveries(ctx, conn, queue, 0, func(d amqp.Delivery) error {
		sum, err := Summarize(queue, d)
		if err != nil {
			return nil // undecodable: no id to resolve to
		}
		for p, m := range given {
			switch {
			case sum.ID == p:
				m.exact = true
			case !m.exact && len(m.ids) <= maxListed && isPrefix(p, sum.ID) && !contains(m.ids, sum.ID):
				m.ids = append(m.ids, sum.ID)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.resolve(queue, given)
}

// isPrefix reports whether p begins id, or id without "sha256:".
func isPrefix(p, id string) bool {
	return strings.HasPrefix(id, p) || strings.HasPrefix(strings.TrimPrefix(id, "sha256:"), p)
}

// resolve replaces each unique prefix by its id, in a fixed order so the
// error for several ambiguous prefixes is always the same.
func (s *Selection) resolve(queue string, given map[string]*prefixMatch) error {
	prefixes := make([]string, 0, len(given))
	for p := range given {
		prefixes = append(prefixes, p)
	}
	sort.Strings(prefixes)
	for _, p := range prefixes {
		m := given[p]
		switch {
		case m.exact || len(m.ids) == 0:
		case len(m.ids) == 1:
			delete(s.want, p)
			s.want[m.ids[0]] = -1
		default:
			sort.Strings(m.ids)
			list := strings.Join(m.ids[:min(len(m.ids), maxListed)], ", ")
			if len(m.ids) > maxListed {
				list += ", …"
			}
			return fail.Usagef("--id %s is ambiguous: it begins %s ids in %s: %s; give more of the id (nothing was changed)", p, countText(len(m.ids)), queue, list)
		}
	}
	return nil
}

func countText(n int) string {
	if n > maxListed {
		return fmt.Sprintf("more than %d", maxListed)
	}
	return fmt.Sprint(n)
}

// ReadSelection reads a JSONL file written by export or purge; only the
// "id" of each line matters (replay takes the content from the queue, not
// from the file). Blank lines are skipped; a file without any record is
// refused (an empty selection is a mistake, not a request). Errors name
// file:line.
func ReadSelection(path string) (*Selection, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fail.Usagef("read selection: %v", err)
	}
	defer f.Close()
	s := &Selection{want: map[string]int{}}
	n := 0
	err = ReadRecords(f, path, func(_ int, r Record) error {
		s.want[r.ID]++
		n++
		return nil
	})
	if err == nil && n == 0 {
		return nil, fail.Usagef("%s holds no record (empty file): nothing selected; check the file, or give --id ID or --all", path)
	}
	return s, err
}

// MaxRecordLine is the longest line ReadRecords accepts: a record of the
// largest message RabbitMQ takes by default (128 MiB, base64 in the JSON)
// with its properties. Memory stays within a few times the longest line.
const MaxRecordLine = 192 << 20

// ReadRecords calls fn for every record of a JSONL stream; name is used
// in errors, which are usage errors naming file:line:column: a line that
// is not JSON, not UTF-8 text, not a record (a field of the wrong type, no
// "id"), or longer than MaxRecordLine.
func ReadRecords(r io.Reader, name string, fn func(line int, r Record) error) error {
	return readRecords(r, name, MaxRecordLine, fn)
}

func readRecords(r io.Reader, name string, maxLine int, fn func(line int, r Record) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var buf []byte
	for line := 1; ; line++ {
		var err error
		buf, err = readLine(br, buf[:0], maxLine)
		switch {
		case errors.Is(err, errLineTooLong):
			return fail.Usagef("%s:%d: line longer than %s: not a dead-letter record (mqctl writes one JSON object per line)", name, line, inputfile.Bytes(int64(maxLine)))
		case errors.Is(err, errBinary):
			return fail.Usagef("%s:%d: a NUL byte: this is not a text file (binary data?), not a dead-letter record", name, line)
		}
		if b := trimSpace(buf); len(b) > 0 {
			rec, perr := parseRecord(name, line, b)
			if perr != nil {
				return perr
			}
			if ferr := fn(line, rec); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is in the message already
			}
			return fail.Usagef("read %s: %v", name, err)
		}
	}
}

var (
	errLineTooLong = errors.New("line too long")
	errBinary      = errors.New("binary data")
)

// readLine appends the next line (with its newline, if any) to buf,
// refusing one longer than limit, or one with a NUL byte (binary data,
// /dev/zero), without reading the rest of it.
func readLine(br *bufio.Reader, buf []byte, limit int) ([]byte, error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > limit {
			return buf, errLineTooLong
		}
		if bytes.IndexByte(chunk, 0) >= 0 {
			return buf, errBinary
		}
		buf = append(buf, chunk...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return buf, err
		}
	}
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// parseRecord decodes one line; its problems name file:line:column.
func parseRecord(name string, line int, b []byte) (Record, error) {
	at := func(p inputfile.Problem) error {
		return fail.Usagef("%s:%d:%d: not a dead-letter record: %s", name, line, p.Column, p.Message)
	}
	if p := inputfile.CheckText(name, b); p != nil {
		return Record{}, at(*p)
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		p := inputfile.JSONProblem(name, b, err)
		if p.Line == 0 {
			return Record{}, fail.Usagef("%s:%d: not a dead-letter record: %v", name, line, err)
		}
		return Record{}, at(p)
	}
	if rec.ID == "" {
		return Record{}, fail.Usagef("%s:%d: record has no \"id\"", name, line)
	}
	if _, err := DecodeTable(rec.Properties.Headers); err != nil {
		return Record{}, fail.Usagef("%s:%d: not a dead-letter record: %v", name, line, err)
	}
	return rec, nil
}

// Size is how many messages the selection names, -1 when open-ended
// (or narrowed by a filter).
func (s *Selection) Size() int {
	if s.All || s.Filter != nil {
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

// byID says whether s selects by id (--id, --from): only then can a
// selected id be missing from the queue.
func (s *Selection) byID() bool {
	return s != nil && s.want != nil
}

// Clone is a fresh copy of s, for a preview (a dry run before the
// prompt) that must not use up the selection the real run takes from.
func (s *Selection) Clone() *Selection {
	c := &Selection{All: s.All}
	if s.want != nil {
		c.want = make(map[string]int, len(s.want))
		for id, n := range s.want {
			c.want[id] = n
		}
	}
	if s.Filter != nil {
		f := *s.Filter
		f.Failed, f.FirstFailure = 0, nil
		c.Filter = &f
	}
	return c
}
