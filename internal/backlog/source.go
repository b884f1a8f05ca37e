// Package backlog answers "what is piling up, and where": it reads queue
// figures, bindings and exchanges from the management API through a small
// Source (mqctl's one reader of a vhost's objects: `dlq ls` and doctor read
// through it too), links every queue to its dead-letter queue with the
// deadletter model, builds a sorted report with warnings, and evaluates CI
// gates (Check). It never prints.
package backlog

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// Fetch reads all queues (see FetchQueues) plus one bindings and one
// exchanges read, so the cost does not grow with per-queue calls.
func Fetch(ctx context.Context, src Source, vhost string, pageSize int) (Snapshot, error) {
	snap := Snapshot{Taken: time.Now()}
	var (
		wg             sync.WaitGroup
		bindErr, exErr error
	)
	bound := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		snap.Bindings, bindErr = src.Bindings(ctx, vhost)
		close(bound)
		if bindErr == nil {
			snap.Exchanges, exErr = src.Exchanges(ctx, vhost)
		}
	}()
	// The bindings read, sent at the same moment, tells a list too large
	// to send within --timeout (bindings answered: read pages) from an
	// API that answers nothing (a black hole: one --timeout, not two).
	answers := func() bool { <-bound; return bindErr == nil }
	queues, err := fetchQueues(ctx, src, vhost, pageSize, answers)
	wg.Wait()
	switch {
	case err != nil:
		return Snapshot{}, err
	case bindErr != nil:
		return Snapshot{}, fmt.Errorf("list bindings: %w", bindErr)
	case exErr != nil:
		return Snapshot{}, fmt.Errorf("list exchanges: %w", exErr)
	}
	snap.Queues = queues
	return snap, nil
}

// FetchQueues reads the queue list alone. With pageSize 0 it asks for the
// whole list in one read: the management API builds and sorts the whole
// list for every page it serves, so one read of 5,000 queues costs the
// broker about what one page does. Only when that read times out (a list
// too large to build and send within --timeout) does it read pages of
// MaxPageSize, pages after the first concurrently; a pageSize of 1 to
// MaxPageSize asks for pages from the start.
func FetchQueues(ctx context.Context, src Source, vhost string, pageSize int) ([]QueueStat, error) {
	return fetchQueues(ctx, src, vhost, pageSize, func() bool { return true })
}

// fetchQueues is FetchQueues; after a timed-out read of the whole list it
// reads pages only if answers says the API answers other requests.
func fetchQueues(ctx context.Context, src Source, vhost string, pageSize int, answers func() bool) ([]QueueStat, error) {
	if pageSize == 0 {
		whole, err := src.QueuePage(ctx, vhost, 0, 0)
		if err == nil || !timedOut(err) || ctx.Err() != nil || !answers() {
			if err != nil {
				return nil, fmt.Errorf("list queues: %w", err)
			}
			return whole.Queues, nil
		}
	}
	if pageSize <= 0 || pageSize > MaxPageSize {
		pageSize = MaxPageSize
	}
	return fetchPages(ctx, src, vhost, pageSize)
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
