package cli

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/iostreams"
)

// runWithF runs `mqctl ARGS…` in-process with the command at path ("serve",
// "bench register") built by build, whose runF stands in for the work:
// flags, global ones included, are parsed and checked as usual, and nothing
// connects to a broker.
func runWithF(t *testing.T, path string, build func(f *Factory) *cobra.Command, args ...string) error {
	t.Helper()
	ios, _, _, _ := iostreams.Test()
	f := NewFactory(ios, func(string) (string, bool) { return "", false })
	root := NewCmdRoot(f)
	parent := root
	names := strings.Fields(path)
	for i, name := range names {
		var found *cobra.Command
		for _, c := range parent.Commands() {
			if c.Name() == name {
				found = c
			}
		}
		if found == nil {
			t.Fatalf("no command %q under %q", name, parent.CommandPath())
		}
		if i < len(names)-1 {
			parent = found
			continue
		}
		parent.RemoveCommand(found)
	}
	parent.AddCommand(build(f))
	root.SetArgs(args)
	root.SetOut(ios.Out)
	root.SetErr(ios.ErrOut)
	return root.Execute()
}
