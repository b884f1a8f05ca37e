package migrate

import (
	"context"
	"errors"

	"github.com/mqctl/mqctl/internal/broker"
)

// StepRetime is Retime moving a delay queue's waiting messages to its tail.
const StepRetime Step = "retime"

// Retime makes the messages waiting in a delay queue wait again, from
// now, as long as its current TTL says. RabbitMQ fixes a message's expiry
// when the message is enqueued, so after a backoff change the messages
// already waiting would keep the old delay (an hour's wait stays an hour
// after the file says a second). Retime moves the queue's messages — as
// many as it held when Retime began — to its own tail, each acked only
// after its confirmed copy is there; later arrivals already wait the new
// delay. Dialer and Name (with Vhost, for reports) are what it needs of q;
// it keeps no journal: a kill leaves at most Prefetch messages twice in
// the queue, each retried twice, none lost. It returns how many it moved.
func (q *Queue) Retime(ctx context.Context) (int, error) {
	if q.Name == "" || q.Dialer == nil {
		return 0, errors.New("migrate: Retime needs Name and Dialer")
	}
	q.defaults()
	r := &run{q: q}
	defer func() {
		if r.conn != nil {
			broker.CloseConnection(r.conn, broker.CloseWait)
		}
	}()
	n, exists, err := r.ready(ctx, q.Name)
	if err != nil || !exists || n == 0 {
		return 0, err
	}
	return r.moveAtMost(ctx, q.Name, q.Name, StepRetime, n)
}
