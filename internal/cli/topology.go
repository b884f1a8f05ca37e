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
	"github.com/mqctl/mqctl/internal/inputfile"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/topology"
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
		NewCmdTopologySchema(f, nil),
	)
	return cmd
}

// loadTopology reads and validates a file ("-": standard input); invalid
// input is a usage error (exit 2) listing every problem with
// file:line:column.
func loadTopology(in io.Reader, path string) (*topology.File, error) {
	file, _, err := loadTopologyChecked(in, path)
	if err != nil {
		var ps inputfile.Problems
		if errors.As(err, &ps) {
			return nil, fail.Wrap(fail.Usage, err)
		}
		return nil, err
	}
	return file, nil
}

// loadTopologyChecked reads a topology file, or standard input for "-",
// and parses and validates it, with its warnings.
func loadTopologyChecked(in io.Reader, path string) (*topology.File, inputfile.Problems, error) {
	if path == "" {
		return nil, nil, fail.Usagef("no topology file: pass -f FILE (- for standard input)")
	}
	if path != "-" {
		return topology.LoadChecked(path)
	}
	data, err := inputfile.ReadFrom(in, inputfile.StdinName, "a topology file", inputfile.MaxTopologyFile)
	if err != nil {
		return nil, nil, err
	}
	return topology.ParseAndCheck(inputfile.StdinName, data)
}

// topologyBroker is the broker as the topology commands use it;
// *topology.MgmtBroker is one, and a test may use another.
type topologyBroker interface {
	topology.Broker
	Facts(ctx context.Context) (topology.BrokerFacts, error)
	AllDefinitions(ctx context.Context) (map[string]*topology.Definitions, error)
	DefaultQueueType(ctx context.Context, vhost string) (string, error)
}

// topologyTarget is the broker plan, apply and export work against.
type topologyTarget struct {
	Broker topologyBroker
	// Vhost is the connection's vhost, used when neither --vhost nor the
	// file names one.
	Vhost string
	// Explain turns an API error into one for humans: what was being
	// done, and what to try.
	Explain func(what string, err error) error
	// Logf prints a -v diagnostic line, secrets masked.
	Logf func(format string, a ...any)
}

// defaultTopologyConnect reaches the management API of f's settings, and
// for the emptiness check before a prune, AMQP in the connection's vhost.
// importLimit, when set, is read at connect time (after the flags): it
// bounds each definitions import (--import-timeout; 0: by its size).
func defaultTopologyConnect(f *Factory, importLimit *time.Duration) func() (topologyTarget, error) {
	return func() (topologyTarget, error) {
		s, err := f.Settings()
		if err != nil {
			return topologyTarget{}, err
		}
		mgmt, err := f.Mgmt()
		if err != nil {
			return topologyTarget{}, err
		}
		d, err := f.Dialer("mqctl topology")
		if err != nil {
			return topologyTarget{}, err
		}
		if err := broker.SameCluster(context.Background(), s, d, broker.MgmtClusterName(mgmt)); err != nil {
			return topologyTarget{}, err
		}
		b := &topology.MgmtBroker{Client: mgmt, Counter: dialCounter(f.Dialer), CounterVhost: s.Vhost, Timeout: s.Timeout}
		if importLimit != nil {
			b.ImportLimit = *importLimit
		}
		if r, err := broker.NewMgmtReader(s); err == nil {
			b.Reader = r
		}
		return topologyTarget{
			Broker:  b,
			Vhost:   s.Vhost,
			Explain: func(what string, err error) error { return broker.MgmtError(s, what, err) },
			Logf:    func(format string, a ...any) { f.Logf(s.Redactor, format, a...) },
		}, nil
	}
}

// dialCounter counts a queue over AMQP with a dialer made when a prune
// first asks, so a plan or an apply without deletes never makes one.
type dialCounter func(name string) (*broker.Dialer, error)

// QueueCounts implements topology.QueueCounter.
func (dial dialCounter) QueueCounts(ctx context.Context, queue string) (messages, consumers int, err error) {
	d, err := dial("mqctl topology apply")
	if err != nil {
		return 0, 0, err
	}
	return d.QueueCounts(ctx, queue)
}

// expandFor sets the vhost a file applies to (--vhost, else the file's
// vhost:, else the connection's) and expands the file.
func expandFor(file *topology.File, vhostFlag, connVhost string) *topology.Expanded {
	switch {
	case vhostFlag != "":
		file.Vhost = vhostFlag
	case file.Vhost == "":
		file.Vhost = connVhost
	}
	return topology.Expand(file)
}

// planFile is what plan and apply share: load and validate the file,
// reach the broker, stop on settings it would refuse (applying: the
// refusal says nothing was changed), and plan.
func planFile(ctx context.Context, ios *iostreams.IOStreams, connect func() (topologyTarget, error), path, vhostFlag string, prune, applying bool) (*topology.Plan, topologyTarget, error) {
	p, _, t, err := planExpanded(ctx, ios, connect, path, vhostFlag, prune, applying)
	return p, t, err
}

// planExpanded is planFile that also returns the expanded file (apply
// --migrate declares queues as it says).
func planExpanded(ctx context.Context, ios *iostreams.IOStreams, connect func() (topologyTarget, error), path, vhostFlag string, prune, applying bool) (*topology.Plan, *topology.Expanded, topologyTarget, error) {
	errOut := ios.ErrOut
	file, err := loadTopology(ios.In, path)
	if err != nil {
		return nil, nil, topologyTarget{}, err
	}
	t, err := connect()
	if err != nil {
		return nil, nil, t, err
	}
	x := expandFor(file, vhostFlag, t.Vhost)
	if err := checkCompat(ctx, errOut, t, file, applying); err != nil {
		return nil, x, t, err
	}
	p, err := livePlan(ctx, t, x, prune)
	return p, x, t, err
}

// livePlan reads the broker and diffs, turning API errors into hints.
func livePlan(ctx context.Context, t topologyTarget, x *topology.Expanded, prune bool) (*topology.Plan, error) {
	start := time.Now()
	p, err := topology.PlanLive(ctx, t.Broker, x, topology.PlanOptions{Prune: prune})
	if err != nil {
		if broker.VhostNotFound(err) {
			return nil, broker.VhostMissing(x.Vhost, "the management API")
		}
		return nil, t.Explain("read the definitions of vhost "+x.Vhost, err)
	}
	t.Logf("plan: %d changes in %s", len(p.Changes), time.Since(start).Round(time.Millisecond))
	p.Apps = appDeclarations(ctx, t, x)
	return p, nil
}

// appDeclarations tells whether the apps' own plain declarations of the
// file's queues will be equivalent on this broker. It is advice, not a
// precondition: a broker that will not say its version or the vhost's
// default queue type gets the answer for 3.x (-v says why).
func appDeclarations(ctx context.Context, t topologyTarget, x *topology.Expanded) []topology.AppDeclaration {
	facts, err := t.Broker.Facts(ctx)
	if err != nil {
		t.Logf("app declarations: the broker's version: %v", err)
	}
	dqt, err := t.Broker.DefaultQueueType(ctx, x.Vhost)
	if err != nil {
		t.Logf("app declarations: vhost %s's default queue type: %v", x.Vhost, err)
	}
	return topology.AppDeclarations(x, facts.Version, dqt)
}

// checkCompat stops plan and apply, before anything changes, when the
// broker would refuse a setting of the file (exit 2, every such setting
// with file:line:column); deprecated settings the broker still accepts
// are printed as warnings on errOut. The broker is asked (its version and
// deprecated features) only when the file holds such a setting.
func checkCompat(ctx context.Context, errOut io.Writer, t topologyTarget, file *topology.File, changed bool) error {
	if len(topology.Compats(file)) == 0 {
		return nil
	}
	facts, err := t.Broker.Facts(ctx)
	if err != nil {
		return t.Explain("read the broker's version", err)
	}
	t.Logf("broker: RabbitMQ %s, deprecated features known: %t", facts.Version, facts.Features != nil)
	refused, warnings := topology.CheckBroker(file, facts)
	printWarnings(errOut, warnings)
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
	problems inputfile.Problems
	version  string
	file     string
	what     string
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("%s\nRabbitMQ %s refuses %d setting(s) of %s; %s: change them as suggested (`mqctl topology validate -f %s` lists every deprecated setting) and run the command again",
		e.problems.Error(), e.version, len(e.problems), e.file, e.what, e.file)
}

// printWarnings writes warnings as validate does, one per line.
func printWarnings(w io.Writer, warnings inputfile.Problems) {
	for _, p := range warnings {
		fmt.Fprintln(w, warningLine(p))
	}
}

func warningLine(p inputfile.Problem) string {
	p.Message = "warning: " + p.Message
	return p.String()
}
