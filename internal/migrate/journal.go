package migrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Phase is how far a migration got. With what the broker shows, it tells
// a rerun what to do next; every step of a phase can run again.
type Phase string

// Migration phases, in order.
const (
	// PhaseOld: the queue, if it exists, is the old one (or one an app
	// declared again): its bindings and messages go to the temporary
	// queue, then it is deleted.
	PhaseOld Phase = "old"
	// PhaseDeleted: the old queue is gone; the new one is declared next.
	PhaseDeleted Phase = "deleted"
	// PhaseDeclared: the new queue exists; it gets the bindings and the
	// temporary queue's messages, then the temporary queue is deleted.
	PhaseDeclared Phase = "declared"
)

// Binding is a binding of the migrating queue, as the journal keeps it:
// from an exchange to the queue.
type Binding struct {
	Source     string         `json:"source"`
	RoutingKey string         `json:"routing_key"`
	Arguments  map[string]any `json:"arguments,omitempty"`
}

// key identifies a binding as RabbitMQ does: source, key and arguments
// (encoding/json sorts map keys, so equal arguments give equal text).
func (b Binding) key() string {
	args, _ := json.Marshal(b.Arguments)
	if len(b.Arguments) == 0 {
		args = nil
	}
	return b.Source + "\x00" + b.RoutingKey + "\x00" + string(args)
}

// journal is a migration's record on disk: which queue, its bindings and
// the phase reached, plus the counts a report needs. It is rewritten
// whole (write to a temporary file, then rename), so a kill leaves the
// old or the new version, never a torn one.
type journal struct {
	Version  int       `json:"version"`
	Vhost    string    `json:"vhost"`
	Queue    string    `json:"queue"`
	Temp     string    `json:"temp_queue"`
	TempType string    `json:"temp_queue_type"`
	Bindings []Binding `json:"bindings"`
	// Messages is the old queue's ready count when the migration started.
	Messages  int       `json:"messages_at_start"`
	Phase     Phase     `json:"phase"`
	StartedAt time.Time `json:"started_at"`
	Runs      int       `json:"runs"`
	MovedOut  int       `json:"moved_out"`
	MovedBack int       `json:"moved_back"`
	// InFlight counts the messages the running run has published to the
	// other queue and not yet acked where they came from. Written before
	// the publishes: when the run is killed, each of them may end up in
	// both queues, and the next run counts them as possible duplicates.
	InFlight           int `json:"in_flight"`
	PossibleDuplicates int `json:"possible_duplicates"`
	// Redeclared counts the times the queue was found declared again
	// (by an app) after the old one was deleted.
	Redeclared int `json:"redeclared"`

	path string
}

const journalVersion = 1

// JournalPath is where the migration of queue in vhost keeps its journal
// under stateDir ($XDG_STATE_HOME): one directory per vhost, one file per
// queue, names escaped so that any vhost or queue name stays one path
// element.
func JournalPath(stateDir, vhost, queue string) string {
	return filepath.Join(journalDir(stateDir, vhost), escape(queue)+".json")
}

func journalDir(stateDir, vhost string) string {
	return filepath.Join(stateDir, "mqctl", "migrate", escape(vhost))
}

// escape makes s one safe path element: url.PathEscape leaves "." alone,
// so a leading dot is escaped too ("." and ".." are not names).
func escape(s string) string {
	e := url.PathEscape(s)
	if strings.HasPrefix(e, ".") {
		e = "%2E" + e[1:]
	}
	return e
}

// Pending lists the queues of vhost whose migration a run started and did
// not finish (their journal is still under stateDir), sorted.
func Pending(stateDir, vhost string) ([]string, error) {
	dir := journalDir(stateDir, vhost)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list unfinished migrations in %s: %w", dir, err)
	}
	var queues []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		j, err := loadJournal(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if j != nil && j.Vhost == vhost {
			queues = append(queues, j.Queue)
		}
	}
	slices.Sort(queues)
	return queues, nil
}

// loadJournal reads a journal; nil, nil when there is none.
func loadJournal(path string) (*journal, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read migration journal: %w", err)
	}
	var j journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("migration journal %s is not valid JSON (%v); it was written by rename, so something else changed it: restore it, or remove it and check the queue and its temporary queue by hand", path, err)
	}
	if j.Version != journalVersion {
		return nil, fmt.Errorf("migration journal %s has version %d, this mqctl reads version %d: finish the migration with the mqctl that started it", path, j.Version, journalVersion)
	}
	j.path = path
	return &j, nil
}

// save writes the journal atomically: a temporary file in the same
// directory, then a rename over the old one. sync adds an fsync before
// the rename, for phase changes that must survive a machine crash; the
// counters are written without one (a killed process loses nothing the
// kernel already has).
func (j *journal) save(sync bool) error {
	dir := filepath.Dir(j.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create migration journal directory: %w", err)
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".journal-*.tmp")
	if err != nil {
		return fmt.Errorf("write migration journal: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), j.path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write migration journal %s: %w", j.path, err)
	}
	return nil
}

// remove deletes the journal of a finished migration.
func (j *journal) remove() error {
	if err := os.Remove(j.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the finished migration's journal: %w; remove %s by hand", err, j.path)
	}
	return nil
}

// addBinding records b unless the journal has it; it reports whether b
// was new.
func (j *journal) addBinding(b Binding) bool {
	for _, have := range j.Bindings {
		if have.key() == b.key() {
			return false
		}
	}
	j.Bindings = append(j.Bindings, b)
	return true
}
