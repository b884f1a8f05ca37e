// Package backlog answers "what is piling up, and where": it reads queue
// figures, bindings and exchanges from the management API through a small
// Source (mqctl's one reader of a vhost's objects: `dlq ls` and doctor read
// through it too), links every queue to its dead-letter queue with the
// deadletter model, builds a sorted report with warnings, and evaluates CI
// gates (Check). It never prints.
package backlog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/mqctl/mqctl/internal/deadletter"
)

// MaxPageSize is the largest page the management API serves.
const MaxPageSize = 500

// QueueStat is one queue as the management API reports it, reduced to what
// backlog reads.
type QueueStat struct {
	Vhost, Name string
	Type        string // classic, quorum, stream
	State       string // running, idle, down…; "" when not reported
	Arguments   map[string]any
	// Policy is effective_policy_definition: the policy keys applied.
	Policy map[string]any
	// Ready and Unacked are the message counts; nil when the management
	// API gives none, not even as queue totals (see HTTPSource): unknown,
	// never 0.
	Ready, Unacked *int
	// Consumers is nil when the API reports no statistics for the queue
	// (management metrics collection off, or not sampled yet).
	Consumers *int
	// Rates in messages/s; nil when unknown (no statistics) or not read.
	Publish *float64 // published into the queue
	Deliver *float64 // delivered or fetched (deliver_get)
	Ack     *float64 // acknowledged
	// HeadStamp is nil when unknown or when the head message has none.
	HeadStamp *time.Time
	Leader    string
	Members   []string
	Online    []string
}

// Messages is ready + unacked; nil when either is unknown, or when q is
// nil (a queue bound between the bindings read and the queue pages).
func (q *QueueStat) Messages() *int {
	if q == nil || q.Ready == nil || q.Unacked == nil {
		return nil
	}
	n := *q.Ready + *q.Unacked
	return &n
}

// qkey names a queue (or policy) across vhosts.
type qkey struct{ vhost, name string }

// Page is one page of queues.
type Page struct {
	Queues    []QueueStat
	PageCount int
}

// Source reads the management API. vhost "" means every vhost.
type Source interface {
	// QueuePage returns page (1-based) of the queue list, sorted by name;
	// page 0 is the whole list in one read (PageCount 1).
	QueuePage(ctx context.Context, vhost string, page, size int) (Page, error)
	// Bindings returns every binding to a queue.
	Bindings(ctx context.Context, vhost string) ([]deadletter.Binding, error)
	// Exchanges returns every exchange.
	Exchanges(ctx context.Context, vhost string) ([]deadletter.Exchange, error)
}

// Snapshot is a vhost's (or every vhost's) queues, bindings and exchanges,
// read at one moment.
type Snapshot struct {
	Taken     time.Time
	Queues    []QueueStat
	Bindings  []deadletter.Binding
	Exchanges []deadletter.Exchange
}

// Graph is the snapshot's dead-letter linkage: the one that backlog's
// report and `dlq ls` both show.
func (s Snapshot) Graph() *deadletter.Graph {
	qs := make([]deadletter.Queue, len(s.Queues))
	for i, q := range s.Queues {
		qs[i] = deadletter.Queue{Vhost: q.Vhost, Name: q.Name, Arguments: q.Arguments, Policy: q.Policy}
	}
	return deadletter.New(qs, s.Exchanges, s.Bindings)
}

// fetchParallel bounds concurrent page reads: enough to overlap the
// server's work with decoding, few enough not to load a busy broker.
const fetchParallel = 3

// A PatientSource can read lists that do not come within --timeout: the
// management API builds a list whole before it sends a byte, and at tens
// of thousands of queues that takes a busy broker longer than the bound
// that tells a dead API from a live one.
type PatientSource interface {
	Source
	// Patient asks the broker how many objects it holds (within the
	// usual bound) and returns a Source whose list reads are allowed
	// time in proportion.
	Patient(ctx context.Context) (Source, error)
	// ProbeAfter is how long lists may take before Patient is asked,
	// beside them: by the time they run out of time its answer tells a
	// live broker with large lists from an API that answers nothing.
	ProbeAfter() time.Duration
}

// Fetch reads all queues (see FetchQueues) beside one bindings and one
// exchanges read, so the cost does not grow with per-queue calls.
func Fetch(ctx context.Context, src Source, vhost string, pageSize int) (Snapshot, error) {
	snap := Snapshot{Taken: time.Now()}
	err := readPatiently(ctx, src, []read{
		func(s Source, patient bool) (err error) {
			snap.Queues, err = readQueues(ctx, s, vhost, pageSize, patient)
			return err
		},
		// Bindings, then exchanges: a third request side by side would
		// only share the broker's cores with the queue list.
		func(s Source, _ bool) (err error) {
			if snap.Bindings, err = s.Bindings(ctx, vhost); err != nil {
				return fmt.Errorf("list bindings: %w", err)
			}
			if snap.Exchanges, err = s.Exchanges(ctx, vhost); err != nil {
				return fmt.Errorf("list exchanges: %w", err)
			}
			return nil
		},
	})
	if err != nil {
		return Snapshot{}, err
	}
	return snap, nil
}

// FetchQueues reads the queue list alone. With pageSize 0 it asks for the
// whole list in one read: the management API builds and sorts the whole
// list for every page it serves (a page of one queue costs it about what
// the whole list does), so pages would multiply the broker's work. A
// pageSize of 1 to MaxPageSize reads pages. A read that times out is
// retried once with time for the broker's size (see PatientSource).
func FetchQueues(ctx context.Context, src Source, vhost string, pageSize int) ([]QueueStat, error) {
	var queues []QueueStat
	err := readPatiently(ctx, src, []read{func(s Source, patient bool) (err error) {
		queues, err = readQueues(ctx, s, vhost, pageSize, patient)
		return err
	}})
	return queues, err
}

// A read reads one list from s; patient says s is the patient Source of
// a second try.
type read func(s Source, patient bool) error

// readPatiently runs reads side by side on src. Those that were cut short
// (ran out of time, or the API closed the connection before it answered)
// run once more, on the patient Source src gives, if the API answered the
// question of its size, asked once the reads had taken ProbeAfter; if it
// did not (a black hole), the first error stands, after one --timeout and
// not two.
func readPatiently(ctx context.Context, src Source, reads []read) error {
	p, patient := src.(PatientSource)
	type probed struct {
		src Source
		err error
	}
	probe := make(chan probed, 1)
	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	ask := func() {
		s, err := p.Patient(probeCtx)
		probe <- probed{s, err}
	}
	var timer *time.Timer
	if patient {
		timer = time.AfterFunc(p.ProbeAfter(), ask)
		defer timer.Stop()
	}
	errs := runAll(src, false, reads)
	var late []read
	var first error
	for i, err := range errs {
		switch {
		case err == nil:
		case !cutShort(err) || ctx.Err() != nil:
			return err
		default:
			late = append(late, reads[i])
			first = cmp.Or(first, err)
		}
	}
	if len(late) == 0 {
		return nil
	}
	if !patient {
		return first
	}
	var answer probed
	if timer.Stop() {
		// The reads failed before the question was due: ask it now.
		ask()
		answer = <-probe
	} else {
		select {
		case answer = <-probe:
		default: // asked, and no answer in all that time: nothing answers
			return first
		}
	}
	if answer.err != nil {
		return first
	}
	for _, err := range runAll(answer.src, true, late) {
		if err != nil {
			return err
		}
	}
	return nil
}

// runAll runs each read on src in its own goroutine and returns their
// errors in order.
func runAll(src Source, patient bool, reads []read) []error {
	errs := make([]error, len(reads))
	var wg sync.WaitGroup
	for i, r := range reads {
		wg.Go(func() { errs[i] = r(src, patient) })
	}
	wg.Wait()
	return errs
}

// readQueues reads the whole queue list in one read (pageSize 0) or in
// pages. On a patient second try, a whole list cut short again is read in
// pages: the management listener closes a connection that sent nothing
// for its idle_timeout (60 s by default), and at 50,000 queues with
// statistics a busy broker takes longer than that to build the list,
// while a page of 500 takes it seconds.
func readQueues(ctx context.Context, src Source, vhost string, pageSize int, patient bool) ([]QueueStat, error) {
	if pageSize <= 0 {
		whole, err := src.QueuePage(ctx, vhost, 0, 0)
		if err == nil {
			return whole.Queues, nil
		}
		if !patient || !cutShort(err) || ctx.Err() != nil {
			return nil, fmt.Errorf("list queues: %w", err)
		}
		pageSize = MaxPageSize
	}
	return fetchPages(ctx, src, vhost, min(pageSize, MaxPageSize))
}

// cutShort reports whether a read got no answer: it ran out of time, or
// the API closed the connection first.
func cutShort(err error) bool {
	return timedOut(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// timedOut reports whether err is a request that ran out of time (an
// HTTP client timeout), not a refusal or an error the broker sent.
func timedOut(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func fetchPages(ctx context.Context, src Source, vhost string, size int) ([]QueueStat, error) {
	first, err := src.QueuePage(ctx, vhost, 1, size)
	if err != nil {
		return nil, fmt.Errorf("list queues (page 1): %w", err)
	}
	if first.PageCount <= 1 {
		return first.Queues, nil
	}
	pages := make([][]QueueStat, first.PageCount+1)
	pages[1] = first.Queues
	errs := make([]error, first.PageCount+1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(fetchParallel, first.PageCount-1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				pg, err := src.QueuePage(ctx, vhost, p, size)
				if err != nil {
					errs[p] = fmt.Errorf("list queues (page %d): %w", p, err)
					cancel()
					continue
				}
				pages[p] = pg.Queues
			}
		}()
	}
feed:
	for p := 2; p <= first.PageCount; p++ {
		select {
		case next <- p:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return nil, e
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Queues created or deleted between page reads shift the pages; keep
	// each queue once.
	seen := make(map[[2]string]bool, len(first.Queues)*first.PageCount)
	var all []QueueStat
	for _, pg := range pages {
		for _, q := range pg {
			k := [2]string{q.Vhost, q.Name}
			if !seen[k] {
				seen[k] = true
				all = append(all, q)
			}
		}
	}
	return all, nil
}
