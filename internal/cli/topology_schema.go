package cli

import (
	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/topology"
)

// TopologySchemaOptions is what `mqctl topology schema` needs.
type TopologySchemaOptions struct {
	IO *iostreams.IOStreams
}

// NewCmdTopologySchema builds `mqctl topology schema`; runF replaces the
// work in tests.
func NewCmdTopologySchema(f *Factory, runF func(*TopologySchemaOptions) error) *cobra.Command {
	opts := &TopologySchemaOptions{IO: f.IO}
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of the topology file, for editors",
		Long: `Print the JSON Schema (draft 2020-12) of the topology file. Point your editor
at it, e.g. with the YAML language server:

  # yaml-language-server: $schema=./topology.schema.json

Least permissions: none (no broker is contacted).`,
		Example: `  mqctl topology schema > topology.schema.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return topologySchemaRun(opts)
		},
	}
}

func topologySchemaRun(opts *TopologySchemaOptions) error {
	_, err := opts.IO.Out.Write(topology.Schema)
	return err
}
