package cli

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/inputfile"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
	"github.com/mqctl/mqctl/internal/topology"
)

// TopologyValidateOptions is what `mqctl topology validate` needs.
type TopologyValidateOptions struct {
	IO     *iostreams.IOStreams
	File   string
	Format output.Format
}

// NewCmdTopologyValidate builds `mqctl topology validate`.
func NewCmdTopologyValidate(f *Factory, runF func(*TopologyValidateOptions) error) *cobra.Command {
	opts := &TopologyValidateOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "validate -f FILE",
		Short: "Check a topology file offline and list every problem with file:line:column",
		Long: `Check a topology file without contacting the broker: YAML syntax, unknown and
duplicate keys, wrong types, duplicate names, bindings to undeclared exchanges,
bad durations, retry without a dead-letter queue, and dead-letter loops. All
problems are reported in one run. Exit 2 when the file is invalid, not UTF-8
text, or larger than 8 MiB.

Warnings (exit 0; on stderr, or with "severity": "warning" in -o json) name
settings RabbitMQ deprecates, with what to use instead: x-queue-master-locator
(denied by default on 4.3, whose definitions import then skips the queue),
x-queue-version: 1 (refused on 4.3), x-queue-mode (no effect since 3.12),
durable: false (transient non-exclusive queues, deprecated), and the policy keys
ha-* (refused on 4.0+), queue-master-locator, queue-mode and queue-version: 1.
validate knows no broker; plan and apply turn what the target broker refuses
into errors.

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
	cmd.Flags().StringVarP(&opts.File, "file", "f", "", "topology file (YAML; - reads standard input)")
	_ = cmd.MarkFlagFilename("file", "yaml", "yml")
	return cmd
}

type validateView struct {
	File     string        `json:"file"`
	Valid    bool          `json:"valid"`
	Problems []problemView `json:"problems"`
	Objects  *objectCounts `json:"objects,omitempty"`
}

// problemView is a problem with its severity: "error" makes the file
// invalid, "warning" (a deprecated setting) does not.
type problemView struct {
	inputfile.Problem
	Severity string `json:"severity"`
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
			fmt.Fprintln(w, p.line())
		}
		return nil
	}
	warnings := ""
	if n := len(v.Problems); n > 0 {
		warnings = fmt.Sprintf(" (%d warning(s) on stderr)", n)
	}
	_, err := fmt.Fprintf(w, "%s %s is valid%s: expands to %d exchanges, %d queues, %d bindings, %d policies\n",
		s.OK.Render("✓"), v.File, warnings, v.Objects.Exchanges, v.Objects.Queues, v.Objects.Bindings, v.Objects.Policies)
	return err
}

func (p problemView) line() string {
	if p.Severity == "warning" {
		return warningLine(p.Problem)
	}
	return p.Problem.String()
}

func topologyValidateRun(opts *TopologyValidateOptions) error {
	file, warnings, err := loadTopologyChecked(opts.IO.In, opts.File)
	view := validateView{File: opts.File, Valid: err == nil, Problems: []problemView{}}
	if err != nil {
		var ps inputfile.Problems
		if !errors.As(err, &ps) {
			return err
		}
		for _, p := range ps {
			view.Problems = append(view.Problems, problemView{p, "error"})
		}
		for _, p := range warnings {
			view.Problems = append(view.Problems, problemView{p, "warning"})
		}
		sort.SliceStable(view.Problems, func(i, j int) bool {
			a, b := view.Problems[i], view.Problems[j]
			if a.Line != b.Line {
				return a.Line < b.Line
			}
			return a.Column < b.Column
		})
		if opts.Format != output.Table {
			if perr := output.Print(opts.IO, opts.Format, view); perr != nil {
				return perr
			}
		}
		lines := make([]string, len(view.Problems))
		for i, p := range view.Problems {
			lines[i] = p.line()
		}
		return fail.Wrap(fail.Usage, &problemsError{problems: ps, text: strings.Join(lines, "\n")})
	}
	for _, p := range warnings {
		view.Problems = append(view.Problems, problemView{p, "warning"})
	}
	if opts.Format == output.Table {
		printWarnings(opts.IO.ErrOut, warnings)
	}
	x := topology.Expand(file)
	view.Objects = &objectCounts{len(x.Defs.Exchanges), len(x.Defs.Queues), len(x.Defs.Bindings), len(x.Defs.Policies)}
	return output.Print(opts.IO, opts.Format, view)
}

// problemsError is an invalid file's problems, rendered with its warnings
// in between; errors.As still finds the Problems.
type problemsError struct {
	problems inputfile.Problems
	text     string
}

func (e *problemsError) Error() string { return e.text }
func (e *problemsError) Unwrap() error { return e.problems }
