package dlq

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/fail"
)

// Progress hears about work done; output.Progress satisfies it.
type Progress interface{ Add(n int) }

type noProgress struct{}

func (noProgress) Add(int) {}

// PeekResult says how much of a queue a peek read.
type PeekResult struct {
	Depth int `json:"depth"` // ready messages when the peek started
	Read  int `json:"read"`
	// Selected is how many of those a filter selected (all without one).
	Selected int `json:"selected"`
}

// ErrStopPeek, returned by a peek's callback, ends the peek early
// without an error: every message goes back to the queue as usual.
var ErrStopPeek = errors.New("stop peeking")

// Peek reads up to limit (0: all) of the messages queue holds, oldest
// first, and calls fn with each, without removing or acking any: they go
// back to the queue when Peek returns. While a peek runs the messages it
// read are invisible to other consumers.
func Peek(ctx context.Context, conn *amqp.Connection, queue string, limit int, fn func(Record) error) (PeekResult, error) {
	return PeekSelected(ctx, conn, queue, limit, nil, fn)
}

// PeekSelected is Peek calling fn only with the messages filter selects
// (nil: all); limit bounds the messages read, and fn may return
// ErrStopPeek to end the read once it has enough.
func PeekSelected(ctx context.Context, conn *amqp.Connection, queue string, limit int, filter *Filter, fn func(Record) error) (PeekResult, error) {
	selected := 0
	res, err := peekDeliveries(ctx, conn, queue, limit, func(d amqp.Delivery) error {
		rec, err := FromDelivery(queue, d)
		if err != nil || !filter.Match(d, rec.ID) {
			return err
		}
		selected++
		return fn(rec)
	})
	res.Selected = selected
	return res, err
}

// peekDeliveries is the loop of every non-destructive read (Peek, Export,
// GroupQueue, ResolveIDs): it hands fn each delivery and holds it, to go
// back to the queue when the scanner closes.
func peekDeliveries(ctx context.Context, conn *amqp.Connection, queue string, limit int, fn func(amqp.Delivery) error) (PeekResult, error) {
	prefetch := 1000
	if limit > 0 {
		prefetch = min(prefetch, 2*limit)
	}
	sc, err := openScanner(ctx, conn, queue, prefetch)
	if err != nil {
		return PeekResult{}, err
	}
	defer sc.close()
	res := PeekResult{Depth: sc.Total}
	for limit <= 0 || res.Read < limit {
		d, gen, st, err := sc.next(ctx, nil)
		if err != nil {
			return res, err
		}
		if st == scanDone {
			break
		}
		res.Read++
		if err := fn(d); errors.Is(err, ErrStopPeek) {
			break
		} else if err != nil {
			return res, err
		}
		if err := sc.hold(gen); err != nil {
			return res, err
		}
	}
	return res, sc.close()
}

// Export writes the messages of queue that filter selects (nil: all) to a
// new file at path, without removing any. It writes to path+".partial"
// and renames at the end, so a file at path is always complete.
func Export(ctx context.Context, conn *amqp.Connection, queue, path string, filter *Filter, progress Progress) (PeekResult, error) {
	if progress == nil {
		progress = noProgress{}
	}
	if _, err := os.Stat(path); err == nil {
		return PeekResult{}, fail.Usagef("--out %s exists; choose another file or remove it", path)
	}
	tmp := path + ".partial"
	// A .partial is what an export killed before its rename left: never a
	// complete file, so the rerun replaces it.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return PeekResult{}, fmt.Errorf("remove the unfinished %s: %w", tmp, err)
	}
	a, err := CreateArchive(tmp)
	if err != nil {
		return PeekResult{}, err
	}
	selected := 0
	res, err := peekDeliveries(ctx, conn, queue, 0, func(d amqp.Delivery) error {
		progress.Add(1)
		r, err := FromDelivery(queue, d)
		if err != nil || !filter.Match(d, r.ID) {
			return err
		}
		selected++
		return a.Write(r)
	})
	res.Selected = selected
	if cerr := a.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return res, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return res, fmt.Errorf("rename %s: %w", tmp, err)
	}
	return res, syncDir(filepath.Dir(path))
}
