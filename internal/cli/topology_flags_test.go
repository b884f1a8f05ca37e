package cli

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
	"github.com/mqctl/mqctl/internal/topology"
)

// noBrokerFactory is a Factory whose broker dependencies fail the test
// when called: parsing flags must not reach for a broker.
func noBrokerFactory(t *testing.T) *Factory {
	t.Helper()
	ios, _, _, _ := iostreams.Test()
	f := NewFactory(ios, func(string) (string, bool) { return "", false })
	f.Settings = func() (config.Settings, error) {
		t.Error("settings resolved while parsing flags")
		return config.Settings{}, errors.New("no broker in this test")
	}
	f.Dialer = func(string) (*broker.Dialer, error) {
		t.Error("dialer made while parsing flags")
		return nil, errors.New("no broker in this test")
	}
	f.Mgmt = func() (*rabbithole.Client, error) {
		t.Error("management client made while parsing flags")
		return nil, errors.New("no broker in this test")
	}
	return f
}

// execReplacing runs args through the whole command tree with cmd in
// place of its namesake under parent ("" for a top-level command), so
// that the root's persistent flags (-o) apply.
func execReplacing(t *testing.T, f *Factory, parent string, cmd *cobra.Command, args ...string) error {
	t.Helper()
	root := NewCmdRoot(f)
	p := root
	if parent != "" {
		var err error
		if p, _, err = root.Find([]string{parent}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range p.Commands() {
		if c.Name() == cmd.Name() {
			p.RemoveCommand(c)
		}
	}
	p.AddCommand(cmd)
	root.SetArgs(args)
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	return root.Execute()
}

func TestTopologyValidateAndShowFlags(t *testing.T) {
	f := noBrokerFactory(t)
	var v *TopologyValidateOptions
	cmd := NewCmdTopologyValidate(f, func(o *TopologyValidateOptions) error { v = o; return nil })
	if err := execReplacing(t, f, "topology", cmd, "topology", "validate", "-f", "t.yaml", "-o", "json"); err != nil {
		t.Fatal(err)
	}
	if v.File != "t.yaml" || v.Format != output.JSON || v.IO != f.IO {
		t.Errorf("validate options = %+v", v)
	}
	cmd = NewCmdTopologyValidate(f, func(*TopologyValidateOptions) error { t.Error("runF called"); return nil })
	if err := execReplacing(t, f, "topology", cmd, "topology", "validate", "-o", "mermaid"); !isUsage(err) {
		t.Errorf("validate -o mermaid: %v, want a usage error", err)
	}

	var s *TopologyShowOptions
	show := NewCmdTopologyShow(f, func(o *TopologyShowOptions) error { s = o; return nil })
	if err := execReplacing(t, f, "topology", show, "topology", "show", "--file", "t.yaml", "-o", "mermaid"); err != nil {
		t.Fatal(err)
	}
	if s.File != "t.yaml" || s.Format != Mermaid {
		t.Errorf("show options = %+v", s)
	}
}

func TestTopologyPlanAndApplyFlags(t *testing.T) {
	f := noBrokerFactory(t)
	var p *TopologyPlanOptions
	plan := NewCmdTopologyPlan(f, func(o *TopologyPlanOptions) error { p = o; return nil })
	if err := execReplacing(t, f, "topology", plan, "topology", "plan", "-f", "t.yaml", "--vhost", "orders", "--exit-code", "--prune", "-o", "yaml"); err != nil {
		t.Fatal(err)
	}
	if p.File != "t.yaml" || p.Vhost != "orders" || !p.ExitCode || !p.Prune || p.Format != output.YAML || p.Connect == nil {
		t.Errorf("plan options = %+v", p)
	}

	var a *TopologyApplyOptions
	apply := NewCmdTopologyApply(f, func(o *TopologyApplyOptions) error { a = o; return nil })
	if err := execReplacing(t, f, "topology", apply, "topology", "apply", "-f", "t.yaml", "--prune", "-y"); err != nil {
		t.Fatal(err)
	}
	if a.File != "t.yaml" || !a.Prune || !a.Yes || a.Vhost != "" || a.Format != output.Table || a.Connect == nil {
		t.Errorf("apply options = %+v", a)
	}
	apply = NewCmdTopologyApply(f, func(*TopologyApplyOptions) error { t.Error("runF called"); return nil })
	if err := execReplacing(t, f, "topology", apply, "topology", "apply", "extra-arg"); err == nil {
		t.Error("apply with an argument: want an error")
	}
}

func TestTopologyExportFlags(t *testing.T) {
	f := noBrokerFactory(t)
	var e *TopologyExportOptions
	export := NewCmdTopologyExport(f, func(o *TopologyExportOptions) error { e = o; return nil })
	if err := execReplacing(t, f, "topology", export, "topology", "export", "--vhost", "v", "--out", "o.yaml", "--from-definitions", "d.json"); err != nil {
		t.Fatal(err)
	}
	if e.Vhost != "v" || e.Out != "o.yaml" || e.FromDefinitions != "d.json" || e.AllVhosts || e.Connect == nil {
		t.Errorf("export options = %+v", e)
	}
	for _, args := range [][]string{
		{"topology", "export", "--all-vhosts"},
		{"topology", "export", "--all-vhosts", "--out-dir", "d", "--vhost", "v"},
	} {
		export := NewCmdTopologyExport(f, func(*TopologyExportOptions) error { t.Error("runF called"); return nil })
		if err := execReplacing(t, f, "topology", export, args...); !isUsage(err) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

func TestTopologySchemaFlags(t *testing.T) {
	f := noBrokerFactory(t)
	var s *TopologySchemaOptions
	schema := NewCmdTopologySchema(f, func(o *TopologySchemaOptions) error { s = o; return nil })
	if err := execReplacing(t, f, "topology", schema, "topology", "schema"); err != nil || s == nil || s.IO != f.IO {
		t.Fatalf("schema: %v, options %+v", err, s)
	}
	schema = NewCmdTopologySchema(f, func(*TopologySchemaOptions) error { t.Error("runF called"); return nil })
	if err := execReplacing(t, f, "topology", schema, "topology", "schema", "extra"); err == nil {
		t.Error("schema with an argument: want an error")
	}
}

func isUsage(err error) bool {
	k, _ := fail.KindOf(err)
	return k == fail.Usage
}

// fakeTopologyBroker is a broker held in memory: its definitions, to
// which an import adds, and what each import sent.
type fakeTopologyBroker struct {
	defs     *topology.Definitions
	imported []*topology.Definitions
}

func (b *fakeTopologyBroker) Definitions(context.Context, string) (*topology.Definitions, error) {
	return b.defs, nil
}

func (b *fakeTopologyBroker) AllDefinitions(context.Context) (map[string]*topology.Definitions, error) {
	return map[string]*topology.Definitions{"/": b.defs}, nil
}

func (b *fakeTopologyBroker) QueueStates(context.Context, string) (map[string]topology.QueueState, error) {
	return map[string]topology.QueueState{}, nil
}

func (b *fakeTopologyBroker) Facts(context.Context) (topology.BrokerFacts, error) {
	return topology.BrokerFacts{Version: "3.10.8"}, nil
}

func (b *fakeTopologyBroker) Import(_ context.Context, _ string, d *topology.Definitions) error {
	b.imported = append(b.imported, d)
	b.defs.Exchanges = append(b.defs.Exchanges, d.Exchanges...)
	b.defs.Queues = append(b.defs.Queues, d.Queues...)
	b.defs.Bindings = append(b.defs.Bindings, d.Bindings...)
	b.defs.Policies = append(b.defs.Policies, d.Policies...)
	return nil
}

func (b *fakeTopologyBroker) DeleteBinding(context.Context, string, topology.DefBinding) error {
	return nil
}
func (b *fakeTopologyBroker) DeletePolicy(context.Context, string, string) error   { return nil }
func (b *fakeTopologyBroker) DeleteExchange(context.Context, string, string) error { return nil }
func (b *fakeTopologyBroker) DeleteQueueIfEmpty(context.Context, string, string) (string, error) {
	return "", nil
}
func (b *fakeTopologyBroker) QueueInUse(context.Context, string, string) (string, error) {
	return "", nil
}
func (b *fakeTopologyBroker) DefaultQueueType(context.Context, string) (string, error) {
	return "", nil
}

func fakeConnect(b topologyBroker) func() (topologyTarget, error) {
	return func() (topologyTarget, error) {
		return topologyTarget{
			Broker:  b,
			Vhost:   "/",
			Explain: func(what string, err error) error { return err },
			Logf:    func(string, ...any) {},
		}, nil
	}
}

// Plan, apply and export run against any broker the options hand them.
func TestTopologyCommandsWithAnInMemoryBroker(t *testing.T) {
	file := writeFile(t, "t.yaml", "apiVersion: mqctl/v1\nqueues:\n  - name: work\n")
	b := &fakeTopologyBroker{defs: &topology.Definitions{}}

	ios, _, out, _ := iostreams.Test()
	err := topologyPlanRun(context.Background(), &TopologyPlanOptions{IO: ios, Connect: fakeConnect(b), File: file, ExitCode: true, Format: output.Table})
	if k, _ := fail.KindOf(err); k != fail.Condition || !strings.Contains(out.String(), "work") {
		t.Fatalf("plan: %v (want exit 3)\n%s", err, out)
	}

	ios, _, _, _ = iostreams.Test()
	if err := topologyApplyRun(context.Background(), &TopologyApplyOptions{IO: ios, Connect: fakeConnect(b), File: file, Format: output.Table}); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if len(b.imported) != 1 || len(b.imported[0].Queues) != 1 || b.imported[0].Queues[0].Name != "work" {
		t.Fatalf("imported %+v", b.imported)
	}

	ios, _, out, _ = iostreams.Test()
	if err := topologyExportRun(context.Background(), &TopologyExportOptions{IO: ios, Connect: fakeConnect(b)}); err != nil {
		t.Fatalf("export: %v", err)
	}
	if !strings.Contains(out.String(), "name: work") {
		t.Errorf("export:\n%s", out)
	}
}
