// Package migrate re-creates a queue whose type, durability or x-arguments
// RabbitMQ cannot change in place, without losing a message while
// producers keep publishing: the queue's bindings move to a temporary
// queue, its messages follow (each acked only after its confirmed copy
// is in the temporary queue), it is deleted once empty and declared anew,
// and the messages move back.
//
// Every step can run again: a journal under the state directory records
// the queue, its bindings and the phase reached, and a rerun after a kill
// finds where it was from the journal and what the broker shows.
// Delivery is at least once: a message published during a rebinding can
// reach both queues, and one moved but not yet acked when the process
// was killed is in both; the journal counts the latter (possible
// duplicates). The package prints nothing; it reports through a callback.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/broker"
)

// TempSuffix ends the name of the temporary queue of a migration (see
// topology.TempQueue).
const TempSuffix = ".mqctl-migrate"

// Step names what a migration is doing, for progress reports.
type Step string

// Migration steps, in order.
const (
	StepStart      Step = "journal"        // bindings and message count recorded
	StepResume     Step = "resume"         // an earlier, unfinished run's journal found
	StepTemp       Step = "declare-temp"   // temporary queue declared and bound
	StepUnbind     Step = "unbind"         // old queue unbound
	StepMoveOut    Step = "move-out"       // messages moved to the temporary queue
	StepDelete     Step = "delete"         // old queue deleted
	StepDeclare    Step = "declare"        // new queue declared
	StepRecreated  Step = "recreated"      // the queue was declared again by someone else
	StepBind       Step = "bind"           // new queue bound, temporary queue unbound
	StepMoveBack   Step = "move-back"      // messages moved back into the queue
	StepDeleteTemp Step = "delete-temp"    // temporary queue deleted
	StepWait       Step = "wait-for-empty" // a queue was not empty yet; moving again
	StepDone       Step = "done"
)

// Event is one progress report: a step reached, or Moved more messages
// moved in a move step.
type Event struct {
	Queue string
	Step  Step
	Moved int
	// Detail says why a wait-for-empty step waits.
	Detail string
}

// Queue is the migration of one queue in one vhost. Vhost, Name, Type,
// Dialer, Mgmt, Declare and StateDir are required; the rest have defaults.
type Queue struct {
	Vhost string
	Name  string
	// Type is the new queue's type (classic or quorum); the temporary
	// queue gets it too.
	Type string
	// Dialer connects to Vhost over AMQP.
	Dialer *broker.Dialer
	// Mgmt reads queues and manages bindings through the management API.
	Mgmt *rabbithole.Client
	// Declare creates the queue with its new settings. When the queue
	// exists meanwhile with other settings (an app declared it again), it
	// must fail; the migration then treats that queue as old again.
	Declare func(ctx context.Context) error
	// StateDir holds the journal (see JournalPath).
	StateDir string
	// User is the user mqctl connects as: a message's user_id is kept
	// only when it is that user.
	User string
	// Prefetch bounds deliveries in hand and publishes awaiting their
	// confirm (default 500).
	Prefetch int
	// ConfirmTimeout bounds the wait for one confirm (default 30 s).
	ConfirmTimeout time.Duration
	// DrainTimeout bounds how long a queue may stay not empty, without
	// progress, before its delete (default 2 min).
	DrainTimeout time.Duration
	// Timeout bounds one broker operation (default 30 s).
	Timeout time.Duration
	// MaxRedeclares bounds how often one run starts over because the
	// queue was declared again by someone else (default 5).
	MaxRedeclares int
	// OnEvent hears about progress; it must not block long.
	OnEvent func(Event)
}

// Result is what a migration did.
type Result struct {
	Vhost     string `json:"vhost"`
	Queue     string `json:"queue"`
	TempQueue string `json:"temp_queue"`
	// MessagesAtStart is the old queue's ready count when the migration
	// (its first run) started.
	MessagesAtStart int `json:"messages_at_start"`
	// MovedOut and MovedBack count the messages moved to the temporary
	// queue and back, over every run of this migration.
	MovedOut  int `json:"moved_out"`
	MovedBack int `json:"moved_back"`
	// PossibleDuplicates counts messages a killed run had published and
	// not yet acked: each may now be in the queue twice.
	PossibleDuplicates int `json:"possible_duplicates"`
	// Redeclared counts the times the queue was declared again by someone
	// else after the old one was deleted.
	Redeclared int `json:"redeclared"`
	// Runs is how many runs this migration took (more than one after a
	// kill or a failure).
	Runs    int  `json:"runs"`
	Resumed bool `json:"resumed"`
	// Seconds is this run's duration; PhaseSeconds splits it by phase:
	// "old" (temporary queue, unbind, move out, delete), "declare", and
	// "new" (bind, move back, delete the temporary queue).
	Seconds      float64            `json:"seconds"`
	PhaseSeconds map[string]float64 `json:"phase_seconds"`
}

// run is one Run of a migration.
type run struct {
	q    *Queue
	j    *journal
	conn *amqp.Connection // control connection: declares, counts, deletes
	res  *Result
	// redeclares counts this run's starts over for a re-declared queue.
	redeclares int
	unlock     func()
}

// Run migrates the queue, or finishes the migration an earlier run left
// unfinished. It returns when the queue exists with its new settings,
// holds every message and has its bindings, and the temporary queue is
// gone; on an error the journal stays and running it again goes on from
// there. No message is ever in a queue no binding reaches: while the old
// queue is unbound, the temporary queue has its bindings.
func (q *Queue) Run(ctx context.Context) (*Result, error) {
	if q.Vhost == "" || q.Name == "" || q.Dialer == nil || q.Mgmt == nil || q.Declare == nil || q.StateDir == "" {
		return nil, errors.New("migrate: Vhost, Name, Dialer, Mgmt, Declare and StateDir are required")
	}
	q.defaults()
	start := time.Now()
	r := &run{q: q, res: &Result{Vhost: q.Vhost, Queue: q.Name, TempQueue: q.Name + TempSuffix, PhaseSeconds: map[string]float64{}}}
	defer func() {
		if r.conn != nil {
			broker.CloseConnection(r.conn, broker.CloseWait)
		}
		if r.unlock != nil {
			r.unlock()
		}
	}()
	err := r.run(ctx)
	if r.j != nil {
		r.report()
	}
	r.res.Seconds = time.Since(start).Seconds()
	return r.res, err
}

func (q *Queue) defaults() {
	if q.Prefetch <= 0 {
		q.Prefetch = 500
	}
	if q.ConfirmTimeout <= 0 {
		q.ConfirmTimeout = 30 * time.Second
	}
	if q.DrainTimeout <= 0 {
		q.DrainTimeout = 2 * time.Minute
	}
	if q.Timeout <= 0 {
		q.Timeout = 30 * time.Second
	}
	if q.MaxRedeclares <= 0 {
		q.MaxRedeclares = 5
	}
	if q.OnEvent == nil {
		q.OnEvent = func(Event) {}
	}
	if q.Type == "" {
		q.Type = "classic"
	}
}

// run goes through the phases from wherever the journal says.
func (r *run) run(ctx context.Context) error {
	if err := r.open(ctx); err != nil {
		return err
	}
	for {
		var err error
		switch r.j.Phase {
		case PhaseOld:
			err = r.timed("old", func() error { return r.retire(ctx) })
		case PhaseDeleted:
			err = r.timed("declare", func() error { return r.declare(ctx) })
		case PhaseDeclared:
			err = r.timed("new", func() error { return r.restore(ctx) })
		case phaseDone:
			r.emit(Event{Step: StepDone})
			return r.j.remove()
		default:
			return fmt.Errorf("migration journal %s has an unknown phase %q: finish the migration with the mqctl that started it", r.j.path, r.j.Phase)
		}
		if err != nil {
			return err
		}
	}
}

// timed runs a phase and adds its duration to the report.
func (r *run) timed(phase string, f func() error) error {
	start := time.Now()
	err := f()
	r.res.PhaseSeconds[phase] += time.Since(start).Seconds()
	return err
}

func (r *run) emit(e Event) {
	e.Queue = r.q.Name
	r.q.OnEvent(e)
}

func (r *run) report() {
	j := r.j
	r.res.MessagesAtStart, r.res.MovedOut, r.res.MovedBack = j.Messages, j.MovedOut, j.MovedBack
	r.res.PossibleDuplicates, r.res.Redeclared, r.res.Runs = j.PossibleDuplicates, j.Redeclared, j.Runs
}
