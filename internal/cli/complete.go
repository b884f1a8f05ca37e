package cli

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/backlog"
	"github.com/mqctl/mqctl/internal/dlq"
)

// completeDLQs completes a dlq command's QUEUE argument with the
// dead-letter queues of the connection's vhost, read from the management
// API as `mqctl dlq ls` finds them, within --timeout. A broker that does
// not answer completes nothing, quietly: completion must never hang a
// shell.
func completeDLQs(f *Factory) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		s, err := f.Settings()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		api, err := newMgmtReader(s)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		timeout := s.Timeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		dlqs, err := dlq.Discover(ctx, backlog.HTTPSource{API: api, NoRates: true}, s.Vhost)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, d := range dlqs {
			if strings.HasPrefix(d.Name, prefix) {
				out = append(out, d.Name)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
