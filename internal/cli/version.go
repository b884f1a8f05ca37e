package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/buildinfo"
	"github.com/mqctl/mqctl/internal/output"
)

type versionView buildinfo.Info

func (v versionView) RenderText(w io.Writer, _ *output.Styles) error {
	_, err := fmt.Fprintf(w, "mqctl %s (commit %s, built %s, %s)\n", v.Version, v.Commit, v.Date, v.GoVersion)
	return err
}

// NewCmdVersion builds `mqctl version`.
func NewCmdVersion(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print mqctl's version, commit and build date",
		Example: "  mqctl version\n  mqctl version -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := f.Format()
			if err != nil {
				return err
			}
			return output.Print(f.IO, format, versionView(buildinfo.Get()))
		},
	}
}
