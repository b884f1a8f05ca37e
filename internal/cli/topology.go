package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/topology"
	"github.com/mqctl/mqctl/internal/yamlfile"
)

// NewCmdTopology builds `mqctl topology` and its subcommands.
func NewCmdTopology(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topology",
		Short: "Declare exchanges, queues, bindings, retries and DLQs from one YAML file",
		Long: `Topology as code. One YAML file (apiVersion mqctl/v1) declares exchanges,
queues, bindings and policies; the retry and dead_letter patterns expand into the
delay queues, dead-letter exchange and dead-letter queue that implement them.

validate checks the file offline; plan compares it with the broker (one
definitions read) and classifies every change; apply executes the plan;
export writes a file from a live broker or a RabbitMQ definitions JSON; show
draws the flow; schema prints the file's JSON Schema.

The vhost is --vhost, else the file's vhost:, else the connection's vhost.`,
		Example: `  mqctl topology validate -f topology.yaml
  mqctl topology plan -f topology.yaml --exit-code
  mqctl topology apply -f topology.yaml
  mqctl topology export > topology.yaml
  mqctl topology show -f topology.yaml -o mermaid`,
	}
	cmd.AddCommand(
		NewCmdTopologyValidate(f, nil),
		NewCmdTopologyPlan(f, nil),
		NewCmdTopologyApply(f, nil),
		NewCmdTopologyExport(f, nil),
		NewCmdTopologyShow(f, nil),
		NewCmdTopologySchema(f),
	)
	return cmd
}

// loadTopology reads and validates a file; invalid input is a usage error
// (exit 2) listing every problem with file:line:column.
func loadTopology(path string) (*topology.File, error) {
	if path == "" {
		return nil, fail.Usagef("no topology file: pass -f FILE")
	}
	file, err := topology.Load(path)
	if err != nil {
		var ps yamlfile.Problems
		if errors.As(err, &ps) {
			return nil, fail.Wrap(fail.Usage, err)
		}
		return nil, err
	}
	return file, nil
}

// topologyTarget resolves the vhost a file applies to and a broker for it.
func topologyTarget(f *Factory, file *topology.File, vhostFlag string) (*topology.Expanded, *topology.MgmtBroker, error) {
	s, err := f.Settings()
	if err != nil {
		return nil, nil, err
	}
	switch {
	case vhostFlag != "":
		file.Vhost = vhostFlag
	case file.Vhost == "":
		file.Vhost = s.Vhost
	}
	mgmt, err := f.Mgmt()
	if err != nil {
		return nil, nil, err
	}
	b := &topology.MgmtBroker{Client: mgmt}
	if r, err := broker.NewMgmtReader(s); err == nil {
		b.Reader = r
	}
	if file.VhostOrDefault() == s.Vhost {
		b.Depth = func(ctx context.Context, vhost, queue string) (topology.QueueState, error) {
			d, err := f.Dialer("mqctl topology apply")
			if err != nil {
				return topology.QueueState{}, err
			}
			conn, err := d.Dial(ctx)
			if err != nil {
				return topology.QueueState{}, err
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err != nil {
				return topology.QueueState{}, err
			}
			defer ch.Close()
			q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
			if err != nil {
				return topology.QueueState{}, err
			}
			return topology.QueueState{Messages: q.Messages, Consumers: q.Consumers}, nil
		}
	}
	return topology.Expand(file), b, nil
}

// livePlan reads the broker and diffs, turning API errors into hints.
func livePlan(ctx context.Context, f *Factory, b topology.Broker, x *topology.Expanded, prune bool) (*topology.Plan, error) {
	s, err := f.Settings()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	p, err := topology.PlanLive(ctx, b, x, topology.PlanOptions{Prune: prune})
	if err != nil {
		return nil, broker.MgmtError(s, "read the definitions of vhost "+x.Vhost, err)
	}
	f.Logf(s.Redactor, "plan: %d changes in %s", len(p.Changes), time.Since(start).Round(time.Millisecond))
	return p, nil
}

// checkCompat stops plan and apply, before anything changes, when the
// broker would refuse a setting of the file (exit 2, every such setting
// with file:line:column); deprecated settings the broker still accepts
// are printed as warnings on stderr. The broker is asked (its version and
// deprecated features) only when the file holds such a setting.
func checkCompat(ctx context.Context, f *Factory, file *topology.File, b *topology.MgmtBroker, changed bool) error {
	if len(topology.Compats(file)) == 0 {
		return nil
	}
	s, err := f.Settings()
	if err != nil {
		return err
	}
	facts, err := b.Facts(ctx)
	if err != nil {
		return broker.MgmtError(s, "read the broker's version", err)
	}
	f.Logf(s.Redactor, "broker: RabbitMQ %s, deprecated features known: %t", facts.Version, facts.Features != nil)
	refused, warnings := topology.CheckBroker(file, facts)
	printWarnings(f.IO.ErrOut, warnings)
	if len(refused) == 0 {
		return nil
	}
	what := "nothing was changed"
	if !changed {
		what = "no plan was made"
	}
	return fail.Wrap(fail.Usage, &refusedError{problems: refused, version: facts.Version, file: file.Name, what: what})
}

// refusedError lists the settings of a file the broker would refuse.
type refusedError struct {
	problems yamlfile.Problems
	version  string
	file     string
	what     string
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("%s\nRabbitMQ %s refuses %d setting(s) of %s; %s: change them as suggested (`mqctl topology validate -f %s` lists every deprecated setting) and run the command again",
		e.problems.Error(), e.version, len(e.problems), e.file, e.what, e.file)
}

// printWarnings writes warnings as validate does, one per line.
func printWarnings(w io.Writer, warnings yamlfile.Problems) {
	for _, p := range warnings {
		fmt.Fprintln(w, warningLine(p))
	}
}

func warningLine(p yamlfile.Problem) string {
	p.Message = "warning: " + p.Message
	return p.String()
}
