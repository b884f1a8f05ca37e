package cli

import (
	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/buildinfo"
	"github.com/mqctl/mqctl/internal/fail"
)

// Command groups shown by `mqctl --help`.
const (
	groupTopology  = "topology"
	groupMessaging = "messaging"
	groupInspect   = "inspect"
	groupBench     = "bench"
	groupSetup     = "setup"
)

// NewCmdRoot builds the whole command tree.
func NewCmdRoot(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "mqctl",
		Short: "Operations toolkit for RabbitMQ: topology as code, backlog, dead letters, benchmarks",
		Long: `mqctl is an operations toolkit for teams that put RabbitMQ between their
request path and their slow side effects.

Connection: --url / MQCTL_URL (several comma-separated URLs are cluster nodes,
tried in order), --mgmt-url / MQCTL_MGMT_URL (default: each AMQP node, port 15672;
tried in order too),
MQCTL_PASSWORD / MQCTL_MGMT_PASSWORD so passwords need not appear in argv, and
named contexts in $XDG_CONFIG_HOME/mqctl/config.yaml (--context / MQCTL_CONTEXT).
Precedence: flag > environment > context > default.

Exit codes: 0 success, 1 operational error, 2 usage error or invalid input,
3 condition not met (plan has changes, check failed, partial), 4 authentication
or permission refused, 130 interrupted.`,
		Example: `  mqctl doctor
  mqctl --url amqp://app@rabbit-1,amqp://app@rabbit-2 doctor -o json
  MQCTL_PASSWORD=secret mqctl --context prod backlog`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			// Cobra checks required flags only after this hook, where an
			// untyped error would be exit 1: a missing flag is a usage
			// error, exit 2, like any other.
			for _, check := range []func() error{cmd.ValidateRequiredFlags, cmd.ValidateFlagGroups} {
				if err := check(); err != nil {
					return fail.Usagef("%v (see `%s --help`)", err, cmd.CommandPath())
				}
			}
			f.started = true
			return nil
		},
	}
	// `mqctl --version` as well as `mqctl version`: packagers and
	// scripts try the flag first.
	root.Version = versionView(buildinfo.Get()).line()
	root.SetVersionTemplate("mqctl {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fail.Usagef("%v (see `%s --help`)", err, c.CommandPath())
	})

	pf := root.PersistentFlags()
	g := &f.global
	pf.StringSliceVar(&g.conn.URLs, "url", nil, "AMQP URL(s) amqp[s]://user:pass@host:port/vhost; repeat or comma-separate for cluster nodes (env MQCTL_URL)")
	pf.StringVar(&g.conn.MgmtURL, "mgmt-url", "", "management API base URL(s) http[s]://host:port, comma-separated, tried in turn (env MQCTL_MGMT_URL; default: each AMQP node, port 15672)")
	pf.StringVar(&g.conn.Context, "context", "", "named context from the config file (env MQCTL_CONTEXT)")
	pf.StringVar(&g.conn.ConfigPath, "config", "", "config file (env MQCTL_CONFIG; default $XDG_CONFIG_HOME/mqctl/config.yaml)")
	pf.StringVar(&g.conn.TLSCA, "tls-ca", "", "CA certificate (PEM) to verify the broker")
	pf.StringVar(&g.conn.TLSCert, "tls-cert", "", "client certificate (PEM)")
	pf.StringVar(&g.conn.TLSKey, "tls-key", "", "client private key (PEM)")
	pf.BoolVar(&g.conn.InsecureSkipVerify, "insecure-skip-verify", false, "do not verify the broker's TLS certificate (unsafe)")
	pf.DurationVar(&g.conn.Timeout, "timeout", 0, "bound on each network call (env MQCTL_TIMEOUT; default 10s)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table, json or yaml")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "print diagnostics on stderr (passwords masked)")

	cmds := commands(f)
	used := map[string]bool{}
	for _, c := range cmds {
		used[c.GroupID] = true
	}
	for _, g := range []*cobra.Group{
		{ID: groupTopology, Title: "Topology as code:"},
		{ID: groupMessaging, Title: "Producing and consuming:"},
		{ID: groupInspect, Title: "Backlog and dead letters:"},
		{ID: groupBench, Title: "Benchmarks:"},
		{ID: groupSetup, Title: "Setup and diagnostics:"},
	} {
		if used[g.ID] {
			root.AddGroup(g)
		}
	}
	root.SetHelpCommandGroupID(groupSetup)
	root.SetCompletionCommandGroupID(groupSetup)
	root.AddCommand(cmds...)
	return root
}

// commands lists every top-level command with its group. Each command
// group adds itself here.
func commands(f *Factory) []*cobra.Command {
	return []*cobra.Command{
		inGroup(groupTopology, NewCmdTopology(f)),
		inGroup(groupInspect, NewCmdDLQ(f)),
		inGroup(groupMessaging, NewCmdPublish(f, nil)),
		inGroup(groupMessaging, NewCmdServe(f, nil)),
		inGroup(groupMessaging, NewCmdConsume(f, nil)),
		inGroup(groupMessaging, NewCmdProduce(f, nil)),
		inGroup(groupMessaging, NewCmdDemo(f, nil)),
		inGroup(groupInspect, NewCmdBacklog(f, nil)),
		inGroup(groupBench, NewCmdBench(f, nil)),
		inGroup(groupSetup, NewCmdDoctor(f, nil)),
		inGroup(groupSetup, NewCmdVersion(f, nil)),
		inGroup(groupSetup, NewCmdCompletion(f)),
	}
}

func inGroup(id string, c *cobra.Command) *cobra.Command {
	c.GroupID = id
	return c
}
