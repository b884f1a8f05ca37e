package dlq

import (
	"context"
	"errors"
	"io"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/audit"
	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/fail"
)

// PublishReport is the result of PublishRecords.
type PublishReport struct {
	File      string          `json:"file"`
	Published int             `json:"published"`
	Failed    []PublishFailed `json:"failed"`
	// trail records every message published or refused, as a replay's
	// report does: counts and destinations here, the items in the spool
	// (PublishOptions.Spool), for the audit trail.
	trail *Report
}

// Audit is the audit-trail entry of the publish r reports: every message
// sent with its body hash, destination and result, streamed from the
// spool as Report.Audit streams a replay's. The caller fills in who,
// where and when, and removes the spool after the entry is written.
func (r *PublishReport) Audit(command, selection string, err error) audit.Entry {
	return r.trail.Audit(command, selection, err)
}

// PublishFailed names a line that was not published, and why.
type PublishFailed struct {
	Line   int    `json:"line"`
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// PublishOptions configure PublishRecords.
type PublishOptions struct {
	To       string // destination queue; empty: each record's origin queue
	Window   int
	Progress Progress
	Now      func() time.Time
	// Checked says the caller has run CheckRecords on the file already.
	Checked bool
	// Spool, when not nil, receives every message's outcome for the
	// audit trail (the caller removes it).
	Spool *Spool
}

// CheckRecords reads the whole file as PublishRecords would publish it and
// returns the first bad line as a usage error (file:line): not a record,
// headers that do not decode, or no destination (no origin queue and no
// to); or an error when the file holds no record at all. It needs no
// broker, so a bad file is refused before anything connects.
func CheckRecords(open func() (io.ReadCloser, error), name, to string) error {
	n := 0
	err := eachRecord(open, name, func(line int, r Record) error {
		if _, err := r.Publishing(); err != nil {
			return fail.Usagef("%s:%d: %v", name, line, err)
		}
		if r.Destination(to) == "" {
			return fail.Usagef("%s:%d: record %s has no origin queue; pass --to QUEUE", name, line, r.ID)
		}
		n++
		return nil
	})
	if err == nil && n == 0 {
		return fail.Usagef("%s holds no record (empty file): nothing to publish", name)
	}
	return err
}

// PublishRecords publishes every record of a JSONL export or archive
// back, with confirms and mandatory, to the default exchange with the
// routing key of its origin queue (or o.To). Body, properties and headers
// are the recorded ones; death headers move into the death history and
// the replay counter goes up, exactly as a replay does. The whole file is
// checked before anything is published.
func PublishRecords(ctx context.Context, conn *amqp.Connection, open func() (io.ReadCloser, error), name string, o PublishOptions) (*PublishReport, error) {
	if o.Progress == nil {
		o.Progress = noProgress{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Window = max(o.Window, 1)
	if !o.Checked {
		if err := CheckRecords(open, name, o.To); err != nil {
			return nil, err
		}
	}
	rep := &PublishReport{File: name, Failed: []PublishFailed{}, trail: newReport("", 0, false, false, o.Spool)}
	pub, err := broker.NewPublisher(conn, o.Window)
	if err != nil {
		return rep, err
	}
	defer pub.Close()
	type flight struct {
		line int
		id   string
		conf *broker.Confirmation
		out  Outcome
	}
	var inflight []flight
	settle := func() error {
		f := inflight[0]
		inflight = inflight[1:]
		o.Progress.Add(1)
		if err := awaitConfirm(ctx, f.conf); err != nil {
			rep.Failed = append(rep.Failed, PublishFailed{Line: f.line, ID: f.id, Reason: err.Error()})
			f.out.Status, f.out.Reason = StatusFailed, err.Error()
			rep.trail.Record(f.out)
			return err
		}
		rep.Published++
		f.out.Status = StatusPublished
		rep.trail.Record(f.out)
		return nil
	}
	runErr := eachRecord(open, name, func(line int, r Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(inflight) >= o.Window {
			if err := settle(); err != nil && !isReturnOrNack(err) {
				return err
			}
		}
		msg, _ := r.Publishing()
		msg = ForReplay(msg, r.Queue, o.Now())
		dest := r.Destination(o.To)
		out := Outcome{ID: r.ID, BodySHA256: audit.BodyHash(msg.Body), Destination: dest}
		conf, err := pub.Publish(ctx, "", dest, msg)
		if err != nil {
			out.Status, out.Reason = StatusFailed, err.Error()
			rep.trail.Record(out)
			return err
		}
		inflight = append(inflight, flight{line: line, id: r.ID, conf: conf, out: out})
		return nil
	})
	for len(inflight) > 0 {
		if err := settle(); err != nil && !isReturnOrNack(err) && runErr == nil {
			runErr = err
		}
	}
	return rep, runErr
}

func isReturnOrNack(err error) bool {
	var re *broker.ReturnedError
	return errors.As(err, &re) || errors.Is(err, broker.ErrNacked)
}

func eachRecord(open func() (io.ReadCloser, error), name string, fn func(int, Record) error) error {
	f, err := open()
	if err != nil {
		return fail.Usagef("open %s: %v", name, err)
	}
	defer f.Close()
	return ReadRecords(f, name, fn)
}
