package cli

import (
	"fmt"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/output"

	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/topology"
)

// TopologySchemaOptions is what `mqctl topology schema` needs.
type TopologySchemaOptions struct {
	IO     *iostreams.IOStreams
	Format output.Format
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

-o yaml prints the same schema as YAML (key order kept); the default and
-o json print JSON.

Least permissions: none (no broker is contacted).`,
		Example: `  mqctl topology schema > topology.schema.json
  mqctl topology schema -o yaml > topology.schema.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Format, err = f.Format(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return topologySchemaRun(opts)
		},
	}
}

func topologySchemaRun(opts *TopologySchemaOptions) error {
	schema := topology.Schema
	if opts.Format == output.YAML {
		var err error
		if schema, err = yaml.JSONToYAML(schema); err != nil {
			return fmt.Errorf("convert the schema to YAML: %w", err)
		}
	}
	_, err := opts.IO.Out.Write(schema)
	return err
}
