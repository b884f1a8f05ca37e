package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/buildinfo"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// VersionOptions is what `mqctl version` needs.
type VersionOptions struct {
	IO     *iostreams.IOStreams
	Format output.Format
}

type versionView buildinfo.Info

// line is the version as both `mqctl version` and `mqctl --version` print
// it after "mqctl ".
func (v versionView) line() string {
	return fmt.Sprintf("%s (commit %s, built %s, %s)", v.Version, v.Commit, v.Date, v.GoVersion)
}

func (v versionView) RenderText(w io.Writer, _ *output.Styles) error {
	_, err := fmt.Fprintf(w, "mqctl %s\n", v.line())
	return err
}

// NewCmdVersion builds `mqctl version`; runF replaces the work in tests.
func NewCmdVersion(f *Factory, runF func(*VersionOptions) error) *cobra.Command {
	opts := &VersionOptions{IO: f.IO}
	return &cobra.Command{
		Use:     "version",
		Short:   "Print mqctl's version, commit and build date",
		Example: "  mqctl version\n  mqctl version -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Format, err = f.Format(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return versionRun(opts)
		},
	}
}

func versionRun(opts *VersionOptions) error {
	return output.Print(opts.IO, opts.Format, versionView(buildinfo.Get()))
}
