package dlq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/broker"
)

// ShovelPrefix starts the name of every shovel a replay creates; the
// loop guard counts a message's hops through such shovels as replays.
const ShovelPrefix = "mqctl-replay-"

// ShovelAPI is the part of the management API a shovel replay uses
// (broker.MgmtReader).
type ShovelAPI interface {
	GetJSON(ctx context.Context, path string, query url.Values, v any) error
	PutJSON(ctx context.Context, path string, body []byte) error
	Delete(ctx context.Context, path string) error
}

// ShovelsEnabled says whether the broker can run a dynamic shovel for
// this user that mqctl can watch: the shovel plugin with its management
// extension, and a user allowed to create runtime parameters (tag
// policymaker or administrator). "" when it can, else why not.
func ShovelsEnabled(ctx context.Context, api ShovelAPI, vhost string) (string, error) {
	var who struct {
		Name string `json:"name"`
		Tags any    `json:"tags"`
	}
	if err := api.GetJSON(ctx, "whoami", nil, &who); err != nil {
		if why := refusedBy(err); why != "" {
			return why, nil
		}
		return "", err
	}
	// Tags are a list on 3.9+ and a comma-separated string before.
	tags := fmt.Sprint(who.Tags)
	if !strings.Contains(tags, "administrator") && !strings.Contains(tags, "policymaker") {
		return fmt.Sprintf("user %s may not create shovels (it needs the policymaker or administrator tag)", who.Name), nil
	}
	_, err := shovelStates(ctx, api, vhost)
	var er rabbithole.ErrorResponse
	if errors.As(err, &er) && er.StatusCode == http.StatusNotFound {
		return "the shovel plugin is not enabled (rabbitmq-plugins enable rabbitmq_shovel rabbitmq_shovel_management)", nil
	}
	if why := refusedBy(err); why != "" {
		return why, nil
	}
	return "", err
}

// shovelState is one running shovel as /api/shovels/{vhost} lists it.
type shovelState struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Reason any    `json:"reason"`
}

// shovelStates lists the shovels running in vhost (the management
// extension of the shovel plugin; 404 without it).
func shovelStates(ctx context.Context, api ShovelAPI, vhost string) ([]shovelState, error) {
	var list []shovelState
	err := api.GetJSON(ctx, "shovels/"+url.PathEscape(vhost), nil, &list)
	return list, err
}

// refusedBy is why the management API refused a request (401, 403), or "".
func refusedBy(err error) string {
	var er rabbithole.ErrorResponse
	var auth *broker.AuthError
	switch {
	case errors.As(err, &auth):
		return "the management API refused the user's credentials"
	case errors.As(err, &er) && (er.StatusCode == http.StatusUnauthorized || er.StatusCode == http.StatusForbidden):
		return fmt.Sprintf("the management API refused the user (%d)", er.StatusCode)
	}
	return ""
}

// ShovelReplayOptions configure ShovelReplay.
type ShovelReplayOptions struct {
	Vhost string
	// Checked is the dry run that read the messages this replay moves:
	// every outcome would_replay to Dest, in queue order, the head of
	// the queue; its spool (ReplayOptions.Spool) holds them, in that
	// order.
	Checked *Report
	// Spool, when not nil, receives every replayed message's outcome,
	// for the audit trail (the caller removes it).
	Spool *Spool
	Dest  string
	// Prefetch is how many messages the shovel holds unacked (its
	// src-prefetch-count).
	Prefetch int
	// Poll is how often the shovel and the queue are looked at.
	Poll     time.Duration
	Progress Progress
	// Journal is the queue's replay journal (nil: none). A moved message
	// an earlier, killed client-path run had published is a possible
	// duplicate, as on the client path; the shovel's unacked window of an
	// interrupted move is journaled as published, so the run that moves
	// those next reports them too.
	Journal *Journal
}

// ShovelReplay hands the move of the checked head of a DLQ to a dynamic
// shovel on the broker: src-delete-after = the number checked, acks on
// confirm, so it moves exactly those, in order, and removes itself. mqctl
// watches the queue for progress and the shovel for failure. When ctx is
// cancelled (an interrupt) or the shovel fails, mqctl deletes the shovel,
// which returns its unacked messages to the head of the DLQ, and reads
// the head to learn how many moved: the checked messages move in order,
// so the first one still in the DLQ tells. The messages the shovel held
// unacked when it stopped may have been published too: they are reported
// as possible duplicates.
//
// src is an AMQP connection for the queue counts and the head read.
func ShovelReplay(ctx context.Context, api ShovelAPI, src *amqp.Connection, o ShovelReplayOptions) (*Report, error) {
	if o.Progress == nil {
		o.Progress = noProgress{}
	}
	o.Prefetch = max(o.Prefetch, 1)
	if o.Poll <= 0 {
		o.Poll = 250 * time.Millisecond
	}
	queue, n := o.Checked.Queue, o.Checked.WouldReplay
	if o.Checked.spool.Len() != n {
		return nil, fmt.Errorf("internal: the shovel check spooled %d of the %d messages checked", o.Checked.spool.Len(), n)
	}
	rep := newReport(queue, o.Checked.Depth, false, false, o.Spool)
	rep.Scanned, rep.Path = o.Checked.Scanned, PathShovel
	if err := noOtherReplayShovel(ctx, api, o.Vhost, queue); err != nil {
		return rep, err
	}
	before, _, err := broker.QueueCountsOn(src, queue)
	if err != nil {
		return rep, err
	}
	if before < n {
		return rep, fmt.Errorf("%s holds %d message(s) now, fewer than the %d checked: something else consumes it; nothing moved", queue, before, n)
	}
	name, err := shovelName(queue)
	if err != nil {
		return rep, err
	}
	rep.Shovel = name
	path := "parameters/shovel/" + url.PathEscape(o.Vhost) + "/" + url.PathEscape(name)
	if err := api.PutJSON(ctx, path, shovelDefinition(o.Vhost, queue, o.Dest, n, o.Prefetch)); err != nil {
		return rep, fmt.Errorf("create shovel %s: %w", name, err)
	}
	moved, watchErr := watchShovel(ctx, api, src, o, name, path, before, n)
	if watchErr != nil {
		// Stop the shovel (its unacked messages go back to the head of
		// the DLQ), then learn from the head how many moved.
		stopErr := removeShovel(api, o.Vhost, name, path)
		var headErr error
		moved, headErr = movedByHead(src, queue, o.Checked.spool)
		if err := errors.Join(stopErr, headErr); err != nil {
			watchErr = errors.Join(watchErr, err)
			moved = -1
		}
	}
	if err := rep.settleShovel(o.Checked.spool, n, moved, o.Prefetch, o.Journal); err != nil {
		watchErr = errors.Join(watchErr, err)
	}
	rep.DepthBefore = &before
	if after, _, err := broker.QueueCountsOn(src, queue); err == nil {
		// Counted after, too: fewer than before minus the moved means
		// something else took messages from the DLQ meanwhile.
		rep.DepthAfter = &after
		if moved >= 0 && after < before-moved {
			watchErr = errors.Join(watchErr, fmt.Errorf("%s held %d before the shovel and %d after it moved %d: something else consumed %d meanwhile", queue, before, after, moved, before-moved-after))
		}
	}
	return rep, watchErr
}

// shovelDefinition is the dynamic shovel that moves the first n messages
// of queue to dest in vhost, with confirms, and then deletes itself.
// Both ends are the local broker (a direct connection as the user that
// creates the shovel); the shovel finds both queues (it declares them,
// which for existing queues changes nothing). add-forward-headers leaves
// the x-shovelled entry the loop guard counts.
func shovelDefinition(vhost, queue, dest string, n, prefetch int) []byte {
	uri := "amqp:///" + url.PathEscape(vhost)
	b, _ := json.Marshal(map[string]any{"value": map[string]any{
		"src-protocol": "amqp091", "src-uri": uri, "src-queue": queue,
		"dest-protocol": "amqp091", "dest-uri": uri, "dest-queue": dest,
		"ack-mode": "on-confirm", "src-delete-after": n, "src-prefetch-count": prefetch,
		"add-forward-headers": true, "reconnect-delay": 1,
	}})
	return b
}

// shovelName is a new, unique name for the shovel replaying queue.
func shovelName(queue string) (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return ShovelPrefix + queue + "-" + hex.EncodeToString(b), nil
}

// noOtherReplayShovel refuses a second replay shovel on the same queue:
// two would race for the same head, and neither count would hold.
func noOtherReplayShovel(ctx context.Context, api ShovelAPI, vhost, queue string) error {
	var params []struct {
		Name string `json:"name"`
	}
	if err := api.GetJSON(ctx, "parameters/shovel/"+url.PathEscape(vhost), nil, &params); err != nil {
		return fmt.Errorf("list shovels: %w", err)
	}
	for _, p := range params {
		if rest, ok := strings.CutPrefix(p.Name, ShovelPrefix+queue+"-"); ok && len(rest) == 8 {
			return fmt.Errorf("shovel %s is still replaying %s (an earlier mqctl run's; it removes itself when done): wait for it, or delete it and run again", p.Name, queue)
		}
	}
	return nil
}

// watchShovel waits until the shovel removed itself (it moved all n), and
// reports progress from the queue's depth meanwhile. It returns n, or an
// error when ctx ends or the shovel fails.
func watchShovel(ctx context.Context, api ShovelAPI, src *amqp.Connection, o ShovelReplayOptions, name, path string, before, n int) (int, error) {
	tick := time.NewTicker(o.Poll)
	defer tick.Stop()
	shown := 0
	for {
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("interrupted: %w", ctx.Err())
		case <-tick.C:
		}
		if depth, _, err := broker.QueueCountsOn(src, o.Checked.Queue); err == nil {
			// Messages that arrive meanwhile make this an underestimate,
			// never more than n.
			if m := min(max(before-depth, 0), n); m > shown {
				o.Progress.Add(m - shown)
				shown = m
			}
		} else {
			return 0, err
		}
		var p json.RawMessage
		err := api.GetJSON(ctx, path, nil, &p)
		var er rabbithole.ErrorResponse
		switch {
		case errors.As(err, &er) && er.StatusCode == http.StatusNotFound:
			o.Progress.Add(n - shown)
			return n, nil // done: it deleted itself after n
		case err != nil && ctx.Err() == nil:
			return 0, fmt.Errorf("watch shovel %s: %w", name, err)
		}
		if why, err := shovelFailed(ctx, api, o.Vhost, name); err != nil || why != "" {
			if err == nil {
				err = fmt.Errorf("shovel %s failed: %s", name, why)
			}
			return 0, err
		}
	}
}

// shovelFailed is why the shovel is terminated ("" while it starts or
// runs).
func shovelFailed(ctx context.Context, api ShovelAPI, vhost, name string) (string, error) {
	list, err := shovelStates(ctx, api, vhost)
	if err != nil {
		return "", fmt.Errorf("watch shovel %s: %w", name, err)
	}
	for _, s := range list {
		if s.Name == name && s.State == "terminated" {
			return fmt.Sprint(s.Reason), nil
		}
	}
	return "", nil
}

// removeShovel deletes the shovel and waits until the broker stopped it,
// so its unacked messages are back in the queue before the head is read.
// It runs after an interrupt: the work is bounded by its own time.
func removeShovel(api ShovelAPI, vhost, name, path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := api.Delete(ctx, path)
	var er rabbithole.ErrorResponse
	if err != nil && !(errors.As(err, &er) && er.StatusCode == http.StatusNotFound) {
		return fmt.Errorf("delete shovel %s (delete it by hand: rabbitmqctl clear_parameter -p %s shovel %s): %w", name, vhost, name, err)
	}
	for {
		list, err := shovelStates(ctx, api, vhost)
		if err != nil {
			return fmt.Errorf("wait for shovel %s to stop: %w", name, err)
		}
		if !slices.ContainsFunc(list, func(s shovelState) bool { return s.Name == name }) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("shovel %s did not stop within 30s", name)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// movedByHead reads the head of queue without consuming it: the checked
// messages move in order, so the position of the head among them is how
// many moved (all when the head is none of them: the DLQ is empty or
// holds only later arrivals). The checked ones are read back from their
// spool, not held.
func movedByHead(src *amqp.Connection, queue string, checked *Spool) (int, error) {
	head := ""
	_, err := Peek(context.Background(), src, queue, 1, func(r Record) error {
		head = r.ID
		return ErrStopPeek
	})
	if err != nil {
		return 0, fmt.Errorf("read the head of %s to count what moved: %w", queue, err)
	}
	i, at := 0, -1
	err = checked.Each(func(o Outcome) error {
		if o.ID == head {
			at = i
			return errStopEach
		}
		i++
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count what moved: %w", err)
	}
	if at < 0 {
		return checked.Len(), nil
	}
	return at, nil
}

// settleShovel records a shovel replay's outcome from the n checked
// messages, read back from their spool: the first moved replayed, the
// rest left in the DLQ, and the up to prefetch after the moved ones that
// the shovel may have published before it was stopped as possible
// duplicates. moved < 0: unknown. With a journal, the moved messages an
// earlier, killed run had published are possible duplicates too (listed
// first, after those earlier runs found), and the shovel's unacked window
// is journaled as published.
func (r *Report) settleShovel(checked *Spool, n, moved, prefetch int, j *Journal) error {
	if moved < 0 {
		r.Unknown = n
		r.PossibleDuplicates = j.earlier()
		return nil
	}
	var window []string
	i := 0
	err := checked.Each(func(o Outcome) error {
		switch {
		case i < moved:
			o.Status, o.Reason = StatusReplayed, ""
			r.Record(o)
			if j.redo(o.ID) {
				r.PossibleDuplicates = append(r.PossibleDuplicates, o.ID)
			}
		case i < moved+prefetch:
			window = append(window, o.ID)
		default:
			return errStopEach
		}
		i++
		return nil
	})
	if moved < n {
		r.NotMoved = n - moved
	}
	r.PossibleDuplicates = append(append(j.earlier(), r.PossibleDuplicates...), window...)
	if err != nil {
		return err
	}
	return j.published(window...)
}
