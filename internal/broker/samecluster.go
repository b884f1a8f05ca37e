package broker

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/fail"
)

// SameCluster checks that the AMQP node the settings' URLs reach and the
// management API belong to one cluster, by the cluster name each reports
// (the AMQP connection's server properties, GET /api/cluster-name). The
// management URL defaults to port 15672 of the first AMQP host, so a
// wrong --url port (nothing listens there) would otherwise send a
// topology to whatever node answers on 15672. It returns an error (exit
// 1, naming both addresses) when the AMQP node does not answer or the two
// disagree, the dial's own error when AMQP refuses the credentials. A node
// that answers but refuses the handshake (TLS without the client
// certificate it wants) cannot be compared: SameCluster lets that pass.
//
// clusterName reads the management API's cluster name (MgmtClusterName,
// ReaderClusterName).
func SameCluster(ctx context.Context, s config.Settings, d *Dialer, clusterName func(context.Context) (string, error)) error {
	both := fmt.Sprintf("AMQP %s, management API %s", s.Redactor.Redact(strings.Join(s.AMQPURLs, ",")), s.MgmtURL)
	conn, err := d.Dial(ctx)
	if err != nil {
		if k, ok := fail.KindOf(err); ok && (k == fail.Auth || k == fail.Usage) {
			return err
		}
		if !nobodyThere(err) {
			// Something answers there but will not let mqctl in (TLS
			// that wants a client certificate the management API does
			// not): it cannot compare, and does not stand in the way of
			// a command that needs only the management API.
			return nil
		}
		return fmt.Errorf("the AMQP node does not answer (%v), so mqctl cannot tell that the management API belongs to the same broker (%s); nothing was changed: fix --url, or pass --mgmt-url for the node --url names", s.Redactor.Redact(err.Error()), both)
	}
	defer CloseConnection(conn, CloseWait)
	mgmtName, err := clusterName(ctx)
	if err != nil {
		return MgmtError(s, "read the management API's cluster name", err)
	}
	if amqpName := AMQPClusterName(conn); ClusterMismatch(amqpName, mgmtName) {
		return fmt.Errorf("the AMQP node belongs to cluster %q and the management API to cluster %q: not the same broker (%s); nothing was changed: point --url and --mgmt-url at the same cluster", amqpName, mgmtName, both)
	}
	return nil
}

// AMQPClusterName is the cluster name a connection's server properties
// carry ("" when the broker sends none).
func AMQPClusterName(conn *amqp.Connection) string {
	name, _ := conn.Properties["cluster_name"].(string)
	return name
}

// ClusterMismatch reports two cluster names that prove two different
// clusters; an empty name proves nothing.
func ClusterMismatch(amqpName, mgmtName string) bool {
	return amqpName != "" && mgmtName != "" && amqpName != mgmtName
}

// MgmtClusterName reads GET /api/cluster-name through rabbit-hole.
func MgmtClusterName(c *rabbithole.Client) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		cn, err := c.GetClusterName()
		if err != nil {
			return "", err
		}
		return cn.Name, nil
	}
}

// JSONGetter reads one management API resource as JSON (MgmtReader, or a
// fake in tests).
type JSONGetter interface {
	GetJSON(ctx context.Context, path string, query url.Values, v any) error
}

// ReaderClusterName reads GET /api/cluster-name through a raw reader.
func ReaderClusterName(r JSONGetter) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		var cn struct {
			Name string `json:"name"`
		}
		err := r.GetJSON(ctx, "cluster-name", nil, &cn)
		return cn.Name, err
	}
}

// nobodyThere reports a dial that found no AMQP broker at all: nothing
// listening, no answer, no such host, or a peer that is not AMQP.
func nobodyThere(err error) bool {
	msg := err.Error()
	for _, sign := range []string{"connection refused", "no AMQP answer within", "does not speak AMQP", "no such host", "no route to host"} {
		if strings.Contains(msg, sign) {
			return true
		}
	}
	return false
}

// VhostNames lists the vhosts the user may see, by name. Only that column
// is asked for: rabbit-hole's VhostInfo cannot decode every vhost object
// (a 4.3 node that has just booted sends cluster_state as [] rather than an
// object).
func VhostNames(ctx context.Context, r JSONGetter) ([]string, error) {
	var all []struct {
		Name string `json:"name"`
	}
	if err := r.GetJSON(ctx, "vhosts", url.Values{"columns": {"name"}}, &all); err != nil {
		return nil, err
	}
	names := make([]string, len(all))
	for i, v := range all {
		names[i] = v.Name
	}
	return names, nil
}
