package cli

import (
	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/topology"
)

// NewCmdTopologySchema builds `mqctl topology schema`.
func NewCmdTopologySchema(f *Factory) *cobra.Command {
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
			_, err := f.IO.Out.Write(topology.Schema)
			return err
		},
	}
}
