package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
	"github.com/mqctl/mqctl/internal/topology"
)

// Mermaid is the extra output format of `topology show`.
const Mermaid output.Format = "mermaid"

// TopologyShowOptions is what `mqctl topology show` needs.
type TopologyShowOptions struct {
	IO     *iostreams.IOStreams
	File   string
	Format output.Format
}

// NewCmdTopologyShow builds `mqctl topology show`.
func NewCmdTopologyShow(f *Factory, runF func(*TopologyShowOptions) error) *cobra.Command {
	opts := &TopologyShowOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "show -f FILE",
		Short: "Draw the message flow of a topology file (exchange → queue → retry → DLQ)",
		Long: `Draw the flow a file declares: each exchange, its bindings, the queues they
reach, and for each work queue its retry delay queues and dead-letter path.
Offline. -o mermaid writes a mermaid flowchart for docs; -o json the flow as data.

Least permissions: none (no broker is contacted).`,
		Example: `  mqctl topology show -f examples/registration/topology.yaml
  mqctl topology show -f topology.yaml -o mermaid > flow.mmd`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Format, err = f.Format(output.Table, output.JSON, output.YAML, Mermaid); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return topologyShowRun(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.File, "file", "f", "", "topology file (YAML; - reads standard input)")
	_ = cmd.MarkFlagFilename("file", "yaml", "yml")
	return cmd
}

type flowView struct{ *topology.Flow }

func (v flowView) RenderText(w io.Writer, s *output.Styles) error {
	_, err := io.WriteString(w, v.Text())
	return err
}

func topologyShowRun(opts *TopologyShowOptions) error {
	file, err := loadTopology(opts.IO.In, opts.File)
	if err != nil {
		return err
	}
	flow := topology.BuildFlow(file)
	if opts.Format == Mermaid {
		_, err := fmt.Fprint(opts.IO.Out, flow.Mermaid())
		return err
	}
	return output.Print(opts.IO, opts.Format, flowView{flow})
}
