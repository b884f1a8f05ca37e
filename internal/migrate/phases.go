package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mqctl/mqctl/internal/broker"
)

// phaseDone is set, never saved, when the migration has finished: the
// journal is removed instead.
const phaseDone Phase = "done"

// open reads the journal an earlier, unfinished run left, or starts one.
// A run killed with publishes in flight has left that many messages
// possibly in both queues: they become possible duplicates.
func (r *run) open(ctx context.Context) error {
	path := JournalPath(r.q.StateDir, r.q.Vhost, r.q.Name)
	unlock, err := lock(path)
	if err != nil {
		return err
	}
	r.unlock = unlock
	j, err := loadJournal(path)
	if err != nil {
		return err
	}
	if j == nil {
		return r.start(ctx, path)
	}
	if j.Vhost != r.q.Vhost || j.Queue != r.q.Name {
		return fmt.Errorf("migration journal %s is for queue %s in vhost %s, not %s in %s: move it away and run the command again", path, j.Queue, j.Vhost, r.q.Name, r.q.Vhost)
	}
	r.j, r.res.Resumed = j, true
	j.Runs++
	j.PossibleDuplicates += j.InFlight
	j.InFlight = 0
	if err := j.save(true); err != nil {
		return err
	}
	r.emit(Event{Step: StepResume, Detail: string(j.Phase)})
	return nil
}

// start records the queue's bindings and message count in a new journal
// (step a). A temporary queue found without a journal belongs to a run
// whose journal is lost (another state directory): its bindings are the
// queue's too, and when the queue is gone the migration goes on from the
// declare.
func (r *run) start(ctx context.Context, path string) error {
	temp := r.q.Name + TempSuffix
	bs, exists, err := r.bindings(r.q.Name)
	if err != nil {
		return err
	}
	tbs, tempExists, err := r.bindings(temp)
	if err != nil {
		return err
	}
	if !exists && !tempExists {
		return fmt.Errorf("queue %s not found in vhost %s: nothing to migrate; declare it with `mqctl topology apply`", r.q.Name, r.q.Vhost)
	}
	j := &journal{Version: journalVersion, Vhost: r.q.Vhost, Queue: r.q.Name, Temp: temp, TempType: r.q.Type,
		Bindings: []Binding{}, Phase: PhaseOld, StartedAt: time.Now().UTC(), Runs: 1, path: path}
	for _, b := range append(bs, tbs...) {
		j.addBinding(b)
	}
	if exists {
		if j.Messages, _, err = r.ready(ctx, r.q.Name); err != nil {
			return err
		}
	} else {
		j.Phase = PhaseDeleted
	}
	if tempExists {
		info, err := r.queueInfo(temp)
		if err != nil {
			return err
		}
		if info != nil && info.Type != "" {
			j.TempType = info.Type
		}
	}
	if err := j.save(true); err != nil {
		return err
	}
	r.j = j
	r.emit(Event{Step: StepStart})
	return nil
}

// retire is phase old: the temporary queue gets the bindings (b), the old
// queue loses them (c), its messages move (d), and it is deleted once
// empty (e).
func (r *run) retire(ctx context.Context) error {
	if err := r.declareTemp(ctx); err != nil {
		return err
	}
	if err := r.bind(r.j.Temp, r.j.Bindings); err != nil {
		return err
	}
	r.emit(Event{Step: StepTemp})
	if err := r.unbindOld(); err != nil {
		return err
	}
	r.emit(Event{Step: StepUnbind})
	if err := r.drain(ctx, r.q.Name, r.j.Temp, StepMoveOut); err != nil {
		return err
	}
	r.emit(Event{Step: StepDelete})
	r.j.Phase = PhaseDeleted
	return r.j.save(true)
}

// unbindOld removes the old queue's bindings. One added since the journal
// was written (an app binding its queue) is recorded and given to the
// temporary queue first, so the new queue gets it too.
func (r *run) unbindOld() error {
	for range 5 {
		bs, exists, err := r.bindings(r.q.Name)
		if err != nil || !exists || len(bs) == 0 {
			return err
		}
		var added []Binding
		for _, b := range bs {
			if r.j.addBinding(b) {
				added = append(added, b)
			}
		}
		if len(added) > 0 {
			if err := r.j.save(true); err != nil {
				return err
			}
			if err := r.bind(r.j.Temp, added); err != nil {
				return err
			}
		}
		if err := r.unbind(r.q.Name); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s keeps getting new bindings while mqctl removes them; stop what binds it, then run the same command again", r.q.Name)
}

// declare is phase deleted: the queue is declared with its new settings
// (f). When that fails because the queue exists again (an app declared it
// after the delete), that queue is treated as old: its messages go to the
// temporary queue too, and it is deleted and declared again, a bounded
// number of times.
func (r *run) declare(ctx context.Context) error {
	// A run killed between fence and delete left the fence behind.
	if err := r.unfence(r.q.Name); err != nil {
		return err
	}
	derr := r.q.Declare(ctx)
	if derr == nil {
		r.emit(Event{Step: StepDeclare})
		r.j.Phase = PhaseDeclared
		return r.j.save(true)
	}
	if ctx.Err() != nil {
		return derr
	}
	_, exists, err := r.ready(ctx, r.q.Name)
	if err != nil {
		return fmt.Errorf("declare %s: %w (reading it back failed too: %v); its messages are safe in %s: run the same command again", r.q.Name, derr, err, r.j.Temp)
	}
	if !exists {
		return fmt.Errorf("declare %s with its new settings: %w; its messages are safe in %s, which has its bindings: fix the cause and run the same command again", r.q.Name, derr, r.j.Temp)
	}
	r.redeclares++
	r.j.Redeclared++
	r.j.Phase = PhaseOld
	if err := r.j.save(true); err != nil {
		return err
	}
	if r.redeclares > r.q.MaxRedeclares {
		return fmt.Errorf("declare %s: someone declared it again with other settings %d times (%w); its messages are safe: make the apps declare it as the file says (`mqctl topology plan` shows what they must send), then run the same command again", r.q.Name, r.redeclares, derr)
	}
	r.emit(Event{Step: StepRecreated, Detail: derr.Error()})
	return nil
}

// restore is phase declared: the new queue gets the bindings, the
// temporary queue loses them, its messages move back, and it is deleted
// once empty (g).
func (r *run) restore(ctx context.Context) error {
	_, exists, err := r.ready(ctx, r.q.Name)
	if err != nil {
		return err
	}
	if !exists {
		// Deleted by someone since it was declared: declare it again.
		r.j.Phase = PhaseDeleted
		return r.j.save(true)
	}
	if err := r.bind(r.q.Name, r.j.Bindings); err != nil {
		return err
	}
	if err := r.unbind(r.j.Temp); err != nil {
		return err
	}
	r.emit(Event{Step: StepBind})
	if err := r.drain(ctx, r.j.Temp, r.q.Name, StepMoveBack); err != nil {
		return err
	}
	r.emit(Event{Step: StepDeleteTemp})
	r.j.Phase = phaseDone
	return nil
}

// drain moves src's messages to dst and deletes src once it is empty,
// moving again while it is not (publishers to the default exchange still
// reach it by name, and deliveries a killed run left unacked come back).
// It gives up when src stays not empty, with nothing to move, for the
// drain timeout.
func (r *run) drain(ctx context.Context, src, dst string, step Step) error {
	deadline := time.Now().Add(r.q.DrainTimeout)
	backoff := broker.Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second}
	// Only the old queue is fenced: the temporary queue's name is ours.
	fenced := step != StepMoveOut
	for round := 0; ; round++ {
		n, err := r.move(ctx, src, dst, step)
		if err != nil {
			return err
		}
		if n > 0 {
			deadline = time.Now().Add(r.q.DrainTimeout)
		}
		if !fenced {
			// Fenced once the bulk has moved, so publishers are refused
			// for moments, not the whole move; what the queue took
			// before the fence moves in the next round.
			if err := r.fence(ctx, src); err != nil {
				return err
			}
			fenced = true
			continue
		}
		deleted, why, err := r.deleteEmpty(ctx, src)
		if err == nil && !deleted && time.Now().After(deadline) {
			err = fmt.Errorf("%s is still not empty after %s (%s); no message is lost: run the same command again", src, r.q.DrainTimeout, why)
		}
		if err != nil || deleted {
			if step == StepMoveOut {
				// Deleted, or given up: either way no queue of that
				// name may go on refusing publishes.
				return errors.Join(err, r.unfence(src))
			}
			return err
		}
		r.emit(Event{Step: StepWait, Detail: fmt.Sprintf("%s: %s", src, why)})
		if err := broker.Sleep(ctx, backoff.Delay(round)); err != nil {
			return errors.Join(err, r.unfence(src))
		}
	}
}
