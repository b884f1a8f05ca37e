package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
	"github.com/mqctl/mqctl/internal/registration"
)

// ProduceOptions is what `mqctl produce` needs.
type ProduceOptions struct {
	IO       *iostreams.IOStreams
	Format   output.Format
	Verbose  bool // -v: log every connection
	Count    int
	Rate     float64
	VIPRatio float64
	Window   int
	// BlockedTimeout bounds a wait while the broker blocks publishing.
	BlockedTimeout time.Duration
	// Settings and Dialer connect to the broker (the Factory's).
	Settings func() (config.Settings, error)
	Dialer   func(name string) (*broker.Dialer, error)
}

// NewCmdProduce builds `mqctl produce`; runF replaces the work in tests.
func NewCmdProduce(f *Factory, runF func(*ProduceOptions) error) *cobra.Command {
	opts := &ProduceOptions{IO: f.IO, Settings: f.Settings, Dialer: f.Dialer}
	cmd := &cobra.Command{
		Use:   "produce --count N",
		Short: "Publish N synthetic registration events with publisher confirms",
		Long: `Publish --count synthetic registration events to the exchange user.events
(routing key user.registered, or user.registered.vip for --vip-ratio of them),
persistent, with publisher confirms and mandatory, at most --rate per second.

Exits 0 only when every event was positively confirmed. A nacked or returned
event is published again after a backoff; when the connection is lost (broker
restart, node failure) mqctl reconnects, failing over between --url nodes, and
publishes again whatever was not confirmed, so an event may arrive twice (the
consumers' ledger absorbs that) but never zero times. When no node answers
within --timeout at the start, it exits 1 saying which nodes it tried.

While the broker blocks publishing (a memory or disk alarm on any node of
the cluster) mqctl says so on stderr ("publishing blocked by the broker:
memory alarm …; waiting"), keeps the events in flight, and resumes by itself
when the alarm clears. A block longer than --blocked-timeout ends the run
with exit 1; the summary says how many events were confirmed by then.

Least permissions: write on the exchange user.events.`,
		Example: `  mqctl produce --count 1000
  mqctl produce --count 50000 --rate 2000 --vip-ratio 0.2 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Format, err = f.Format(); err != nil {
				return err
			}
			if opts.Count < 1 {
				return fail.Usagef("--count %d: want at least 1", opts.Count)
			}
			if opts.Rate < 0 {
				return fail.Usagef("--rate %v: want 0 (unlimited) or more", opts.Rate)
			}
			if opts.VIPRatio < 0 || opts.VIPRatio > 1 {
				return fail.Usagef("--vip-ratio %v: want a number from 0 to 1", opts.VIPRatio)
			}
			if opts.Window < 1 {
				return fail.Usagef("--window %d: want at least 1", opts.Window)
			}
			if err := checkBlockedTimeout(opts.BlockedTimeout); err != nil {
				return err
			}
			opts.Verbose = f.global.verbose
			if runF != nil {
				return runF(opts)
			}
			return produceRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&opts.Count, "count", 0, "events to publish (required)")
	_ = cmd.MarkFlagRequired("count")
	fl.Float64Var(&opts.Rate, "rate", 0, "events per second (0: as fast as confirms come back)")
	fl.Float64Var(&opts.VIPRatio, "vip-ratio", 0.1, "share of VIP sign-ups, 0..1")
	fl.IntVar(&opts.Window, "window", 256, "publishes awaiting confirms at a time")
	addBlockedTimeoutFlag(fl, &opts.BlockedTimeout)
	return cmd
}

type produceView registration.ProduceSummary

func (v produceView) Table() output.TableData {
	return output.TableData{
		Headers: []string{"requested", "confirmed", "vip", "republished", "reconnects", "seconds", "confirmed/s"},
		Rows: [][]string{{fmt.Sprint(v.Requested), fmt.Sprint(v.Confirmed), fmt.Sprint(v.VIP), fmt.Sprint(v.Republished),
			fmt.Sprint(v.Reconnects), fmt.Sprintf("%.2f", v.Seconds), fmt.Sprintf("%.0f", v.Rate)}},
	}
}

func produceRun(ctx context.Context, opts *ProduceOptions) error {
	s, err := opts.Settings()
	if err != nil {
		return err
	}
	dialer, err := opts.Dialer("mqctl produce")
	if err != nil {
		return err
	}
	// Started against an unreachable broker: say so within --timeout.
	dialer.LimitStartup(s.Timeout)
	log := newLineLog(opts.IO.ErrOut, s.Redactor, "produce")
	// Until the first connection the startup limit ends in one error that
	// names every node tried: a line per attempt before it (-v shows them)
	// would only repeat it.
	connected := false
	sum, runErr := registration.Produce(ctx, registration.ProduceOptions{
		Count: opts.Count, Rate: opts.Rate, VIPRatio: opts.VIPRatio, Window: opts.Window, Dialer: dialer,
		Blocked: boundedBlockedPolicy(log, opts.BlockedTimeout),
		OnEvent: func(e registration.RelayEvent) {
			if e.Kind == "connected" {
				connected = true
			}
			if (e.Kind == "connected" || e.Kind == "reconnecting" && !connected) && !opts.Verbose {
				return
			}
			if e.Err != nil {
				log.Printf("%s: %v", e.Kind, e.Err)
			} else {
				log.Printf("%s", e.Kind)
			}
		},
	})
	if err := output.Print(opts.IO, opts.Format, produceView(sum)); err != nil {
		return err
	}
	if err, ok := blockedGaveUp(runErr, opts.BlockedTimeout); ok {
		return err
	}
	if runErr != nil && sum.Confirmed > 0 && ctx.Err() == nil {
		return fail.Conditionf("%v", runErr)
	}
	return runErr
}
