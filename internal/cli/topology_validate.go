package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/output"
	"github.com/mqctl/mqctl/internal/topology"
	"github.com/mqctl/mqctl/internal/yamlfile"
)

// TopologyValidateOptions is what `mqctl topology validate` needs.
type TopologyValidateOptions struct {
	f      *Factory
	File   string
	Format output.Format
}

// NewCmdTopologyValidate builds `mqctl topology validate`.
func NewCmdTopologyValidate(f *Factory, runF func(*TopologyValidateOptions) error) *cobra.Command {
	opts := &TopologyValidateOptions{f: f}
	cmd := &cobra.Command{
		Use:   "validate -f FILE",
		Short: "Check a topology file offline and list every problem with file:line:column",
		Long: `Check a topology file without contacting the broker: YAML syntax, unknown and
duplicate keys, wrong types, duplicate names, bindings to undeclared exchanges,
bad durations, retry without a dead-letter queue, and dead-letter loops. All
problems are reported in one run. Exit 2 when the file is invalid, not UTF-8
text, or larger than 8 MiB.

Least permissions: none (no broker is contacted).`,
		Example: `  mqctl topology validate -f examples/registration/topology.yaml
  mqctl topology validate -f topology.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Format, err = f.Format(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return topologyValidateRun(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.File, "file", "f", "", "topology file (YAML)")
	_ = cmd.MarkFlagFilename("file", "yaml", "yml")
	return cmd
}

type validateView struct {
	File     string             `json:"file"`
	Valid    bool               `json:"valid"`
	Problems []yamlfile.Problem `json:"problems"`
	Objects  *objectCounts      `json:"objects,omitempty"`
}

type objectCounts struct {
	Exchanges int `json:"exchanges"`
	Queues    int `json:"queues"`
	Bindings  int `json:"bindings"`
	Policies  int `json:"policies"`
}

func (v validateView) RenderText(w io.Writer, s *output.Styles) error {
	if !v.Valid {
		for _, p := range v.Problems {
			fmt.Fprintln(w, p.String())
		}
		return nil
	}
	_, err := fmt.Fprintf(w, "%s %s is valid: expands to %d exchanges, %d queues, %d bindings, %d policies\n",
		s.OK.Render("✓"), v.File, v.Objects.Exchanges, v.Objects.Queues, v.Objects.Bindings, v.Objects.Policies)
	return err
}

func topologyValidateRun(opts *TopologyValidateOptions) error {
	file, err := loadTopology(opts.File)
	view := validateView{File: opts.File, Valid: err == nil, Problems: []yamlfile.Problem{}}
	if err != nil {
		var ps yamlfile.Problems
		if !errors.As(err, &ps) {
			return err
		}
		view.Problems = ps
		if opts.Format != output.Table {
			if perr := output.Print(opts.f.IO, opts.Format, view); perr != nil {
				return perr
			}
		}
		return err
	}
	x := topology.Expand(file)
	view.Objects = &objectCounts{len(x.Defs.Exchanges), len(x.Defs.Queues), len(x.Defs.Bindings), len(x.Defs.Policies)}
	return output.Print(opts.f.IO, opts.Format, view)
}
