package dlq

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mqctl/mqctl/internal/fail"
)

// Spool keeps a run's outcomes, every one as it becomes final, in a
// temporary file (0600) rather than in memory: a replay or purge of a
// million messages owes the audit trail a million ids and body hashes,
// and owes its user memory that does not grow with them. The audit line
// is written from it at the end (Report.Audit), and a shovel replay reads
// its check's outcomes back from it, in queue order.
//
// The caller owns a Spool and removes it (Remove) when the run is
// recorded, also when the run failed. Where the system allows it, the
// file loses its name as soon as it is created, so even a killed run
// leaves nothing behind.
type Spool struct {
	path string
	f    *os.File
	// unlinked says the file has no name any more: Remove only closes it.
	unlinked bool
	w        *bufio.Writer
	enc      *json.Encoder
	n        int
	// err is the first write error: the run goes on (the messages are
	// safe either way), and the audit line, which cannot be complete,
	// says so.
	err error
}

// NewSpool creates an empty spool in dir ("": the temporary directory).
// A spool that cannot be created is a usage error: the run it would
// record must not start unrecorded.
func NewSpool(dir string) (*Spool, error) {
	f, err := os.CreateTemp(dir, "mqctl-outcomes-*.jsonl")
	if err != nil {
		return nil, fail.Usagef("cannot create the outcome spool for the audit trail: %v (set TMPDIR to a writable directory)", err)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	// Unlinked at once where the system allows it (not Windows): the open
	// file lives on, and the kernel frees it when the process ends, even
	// when it is killed; only this process can read it meanwhile.
	unlinked := os.Remove(f.Name()) == nil
	return &Spool{path: f.Name(), f: f, w: w, enc: json.NewEncoder(w), unlinked: unlinked}, nil
}

// Path is the spool's file.
func (s *Spool) Path() string { return s.path }

// Len is the number of outcomes spooled.
func (s *Spool) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

func (s *Spool) add(o Outcome) {
	if s == nil || s.err != nil {
		return
	}
	if s.f == nil {
		s.err = errors.New("removed")
		return
	}
	if s.err = s.enc.Encode(o); s.err == nil {
		s.n++
	}
}

// errStopEach ends Each early without an error.
var errStopEach = errors.New("stop")

// Each calls fn with every outcome spooled, in the order they were
// added, reading the file from its start; an error of fn ends it.
func (s *Spool) Each(fn func(Outcome) error) error {
	if s == nil {
		return nil
	}
	if s.err != nil {
		return fmt.Errorf("outcome spool %s: %w", s.Path(), s.err)
	}
	if err := s.w.Flush(); err != nil {
		s.err = err
		return fmt.Errorf("outcome spool %s: %w", s.Path(), err)
	}
	if s.f == nil {
		return fmt.Errorf("outcome spool %s: removed", s.Path())
	}
	st, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("outcome spool: %w", err)
	}
	// ReadAt leaves the write offset where it is.
	dec := json.NewDecoder(bufio.NewReaderSize(io.NewSectionReader(s.f, 0, st.Size()), 64<<10))
	for {
		var o Outcome
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("outcome spool %s: %w", s.Path(), err)
		}
		if err := fn(o); err != nil {
			if errors.Is(err, errStopEach) {
				return nil
			}
			return err
		}
	}
}

// Remove closes and deletes the spool's file; nil-safe, and safe to call
// twice.
func (s *Spool) Remove() error {
	if s == nil || s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if s.unlinked {
		return err
	}
	if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		return rerr
	}
	return err
}
