package cli

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/fail"
)

// Shells mqctl generates completion scripts for; completions/ holds one
// checked-in script per shell.
var Shells = []string{"bash", "zsh", "fish", "powershell"}

// NewCmdCompletion builds `mqctl completion SHELL`.
func NewCmdCompletion(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Generate the shell completion script",
		Long: `Generate the completion script for your shell. Release archives also ship
them under completions/.`,
		Example: `  source <(mqctl completion bash)
  mqctl completion zsh > "${fpath[1]}/_mqctl"
  mqctl completion fish > ~/.config/fish/completions/mqctl.fish`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: Shells,
		RunE: func(cmd *cobra.Command, args []string) error {
			return WriteCompletion(cmd.Root(), args[0], f.IO.Out)
		},
	}
}

// WriteCompletion writes the completion script for shell.
func WriteCompletion(root *cobra.Command, shell string, w io.Writer) error {
	switch shell {
	case "bash":
		return root.GenBashCompletionV2(w, true)
	case "zsh":
		return root.GenZshCompletion(w)
	case "fish":
		return root.GenFishCompletion(w, true)
	case "powershell":
		return root.GenPowerShellCompletionWithDesc(w)
	}
	return fail.Usagef("unknown shell %q: want bash, zsh, fish or powershell", shell)
}
