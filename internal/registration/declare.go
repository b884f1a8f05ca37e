package registration

import (
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/pattern"
	"github.com/mqctl/mqctl/internal/topology"
)

// DeclareTopology declares over AMQP, on ch's vhost, what topology.Expand
// makes of the registration topology with each side effect's retry policy
// from policies (the file's where absent): for a node without the
// management API, where `mqctl topology apply` cannot run.
//
// Deprecated: kept only for internal/faults, whose private nodes run
// without management. Tests apply the topology as users do, through the
// management API (registrationtest.Apply); this goes once internal/faults
// does too.
func DeclareTopology(ch *amqp.Channel, policies map[string]pattern.Retry) error {
	f, err := Topology("/", policies)
	if err != nil {
		return err
	}
	d := topology.Expand(f).Defs
	if len(d.Policies) > 0 {
		return errors.New("the registration topology has policies: apply it through the management API")
	}
	for _, e := range d.Exchanges {
		if err := ch.ExchangeDeclare(e.Name, e.Type, e.Durable, e.AutoDelete, e.Internal, false, amqp.Table(e.Arguments)); err != nil {
			return fmt.Errorf("declare exchange %s: %w", e.Name, err)
		}
	}
	for _, q := range d.Queues {
		if _, err := ch.QueueDeclare(q.Name, q.Durable, q.AutoDelete, false, false, amqp.Table(q.Arguments)); err != nil {
			return fmt.Errorf("declare queue %s: %w", q.Name, err)
		}
	}
	for _, b := range d.Bindings {
		bind := ch.QueueBind
		if b.DestinationType == "exchange" {
			bind = ch.ExchangeBind
		}
		if err := bind(b.Destination, b.RoutingKey, b.Source, false, amqp.Table(b.Arguments)); err != nil {
			return fmt.Errorf("bind %s to %s with %q: %w", b.Destination, b.Source, b.RoutingKey, err)
		}
	}
	return nil
}
