package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/bench"
	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// BenchRegisterOptions is what `mqctl bench register` needs.
type BenchRegisterOptions struct {
	IO     *iostreams.IOStreams
	Format output.Format
	Config bench.RegisterConfig
	// Settings and Dialer connect to the broker (the Factory's).
	Settings func() (config.Settings, error)
	Dialer   func(name string) (*broker.Dialer, error)
}

// NewCmdBenchRegister builds `mqctl bench register`; runF replaces the work
// in tests.
func NewCmdBenchRegister(f *Factory, runF func(*BenchRegisterOptions) error) *cobra.Command {
	opts := &BenchRegisterOptions{IO: f.IO, Settings: f.Settings, Dialer: f.Dialer}
	c := &opts.Config
	cmd := &cobra.Command{
		Use:   "register",
		Short: "Compare a synchronous sign-up with store-and-publish, same load, same run",
		Long: `Run the same sign-up load against two designs of POST /register, served
in-process over HTTP:

  sync   the request calls the e-mail, points and coupon providers in turn
         (--provider-latency for e-mail, --other-latency for the others,
         each call bounded by --provider-timeout) and answers 201 when all
         succeeded;
  async  the application ` + "`mqctl serve`" + ` ships: the request stores the user
         and an outbox row in one SQLite transaction and answers 201; the
         outbox relay publishes each row as a persistent user.registered
         event with publisher confirms and marks it sent after the confirm.

Both get the same offered load: --rate sign-ups started per second, at most
--concurrency in flight (the defaults keep 100 sign-ups in flight in the
synchronous design). Latency counts from each sign-up's scheduled start, so
time spent waiting for a free slot counts too. Then the e-mail provider goes
down (it hangs until the caller gives up): the synchronous design fails or
times out, the asynchronous one still answers 201 and the events wait in the
queue (no workers run during the benchmark). At the end the benchmark waits
up to --timeout for the relay to publish the whole outbox, then shows the
queue's depth and the outbox rows still unsent.

Prints p50/p95/p99/max latency, throughput and error rate side by side and
a bar chart of the two latency distributions. The benchmark declares a topic
exchange and a queue named mqctl-bench-register-<random> (the relay
publishes there instead of user.events) and deletes both at the end; the
SQLite file lives in a temporary directory.

Least permissions: configure, write and read on mqctl-bench-register-.*.`,
		Example: `  mqctl bench register
  mqctl bench register --provider-latency 500ms --requests 1000 --rate 100
  mqctl bench register --down-requests 0 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Format, err = f.Format(); err != nil {
				return err
			}
			if err := c.Validate(); err != nil {
				return fail.Usagef("%v", err)
			}
			if runF != nil {
				return runF(opts)
			}
			return benchRegisterRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&c.Requests, "requests", 500, "sign-ups per design with every provider up")
	fl.IntVar(&c.DownRequests, "down-requests", 200, "sign-ups per design with the e-mail provider down (0 skips that case)")
	fl.Float64Var(&c.Rate, "rate", 50, "sign-ups started per second, for both designs")
	fl.IntVar(&c.Concurrency, "concurrency", 100, "most sign-ups in flight at once")
	fl.DurationVar(&c.EmailLatency, "provider-latency", 2*time.Second, "e-mail provider latency in the synchronous design")
	fl.DurationVar(&c.OtherLatency, "other-latency", 20*time.Millisecond, "points and coupon provider latency in the synchronous design")
	fl.DurationVar(&c.ProviderTimeout, "provider-timeout", 3*time.Second, "the synchronous handler's bound on each provider call")
	fl.StringVar(&c.QueueType, "queue-type", bench.QueueQuorum, "type of the event queue: quorum or classic")
	_ = cmd.RegisterFlagCompletionFunc("queue-type", cobra.FixedCompletions([]string{bench.QueueQuorum, bench.QueueClassic}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func benchRegisterRun(ctx context.Context, opts *BenchRegisterOptions) error {
	s, err := opts.Settings()
	if err != nil {
		return err
	}
	opts.Config.Timeout = s.Timeout
	relay, err := opts.Dialer("mqctl bench register relay")
	if err != nil {
		return err
	}
	if opts.IO.IsStderrTTY() {
		c := opts.Config
		fmt.Fprintf(opts.IO.ErrOut, "signing up %d users per design at %g/s (then %d with the e-mail provider down)…\n", c.Requests, c.Rate, c.DownRequests)
	}
	res, err := bench.RunRegister(ctx, opts.Config, benchDial(opts.Dialer), relay)
	if res != nil && len(res.Up) == 2 {
		if perr := output.Print(opts.IO, opts.Format, registerView{res}); perr != nil {
			return perr
		}
	}
	return err
}

// registerView renders a bench.RegisterResult.
type registerView struct{ *bench.RegisterResult }

func (v registerView) RenderText(w io.Writer, s *output.Styles) error {
	r := v.RegisterResult
	c := r.Config
	fmt.Fprintln(w, s.Title.Render(fmt.Sprintf("sign-up latency, %g sign-ups/s, at most %d in flight; e-mail provider %s, points and coupon %s",
		c.Rate, c.Concurrency, (time.Duration(c.EmailLatencyMS*float64(time.Millisecond))).String(), (time.Duration(c.OtherLatencyMS*float64(time.Millisecond))).String())))
	rows := [][]string{}
	levels := []output.Level{}
	add := func(cond string, phases []bench.Phase) {
		for _, p := range phases {
			l := p.Latency
			rows = append(rows, []string{cond, p.Design, fmt.Sprint(p.Requests), latency(l.Median), latency(l.P95), latency(l.P99), latency(l.Max),
				fmt.Sprintf("%.1f/s", p.Throughput), fmt.Sprintf("%.1f%%", 100*p.ErrorRate)})
			lv := output.LevelNone
			if p.Errors > 0 {
				lv = output.LevelError
			}
			levels = append(levels, lv)
		}
	}
	add("providers up", r.Up)
	add("e-mail down", r.Down)
	if err := output.WriteTable(w, s, output.TableData{
		Headers:  []string{"case", "design", "sign-ups", "p50", "p95", "p99", "max", "throughput", "errors"},
		Rows:     rows,
		RowLevel: func(row int) output.Level { return levels[row] },
		Footer:   fmt.Sprintf("p99 sync / async with providers up: %.0f×", r.P99Ratio),
	}); err != nil {
		return err
	}
	for _, p := range r.Down {
		if p.Design == bench.DesignSync && p.FirstError != "" {
			fmt.Fprintln(w, s.Muted.Render("sync with e-mail down: "+p.FirstError))
		}
	}
	fmt.Fprintf(w, "events waiting in queue %s: %d (no workers ran); outbox rows not yet confirmed: %d\n", r.Queue, r.QueueDepth, r.OutboxUnsent)
	fmt.Fprintln(w)
	fmt.Fprintln(w, s.Title.Render("latency distribution, providers up (share of sign-ups)"))
	writeLatencyChart(w, s, r.BucketBoundsMS, r.Up)
	return nil
}

// writeLatencyChart draws one bar per design and latency bucket, as a share
// of that design's sign-ups, skipping buckets no design used.
func writeLatencyChart(w io.Writer, s *output.Styles, boundsMS []float64, phases []bench.Phase) {
	const width = 40
	label := func(i int) string {
		ms := func(v float64) string {
			d := time.Duration(v * float64(time.Millisecond))
			return d.String()
		}
		if i == len(boundsMS) {
			return "> " + ms(boundsMS[i-1])
		}
		return "≤ " + ms(boundsMS[i])
	}
	styles := []func(string) string{
		func(x string) string { return s.Warn.Render(x) },
		func(x string) string { return s.OK.Render(x) },
	}
	for i := 0; i <= len(boundsMS); i++ {
		used := false
		for _, p := range phases {
			if i < len(p.Buckets) && p.Buckets[i] > 0 {
				used = true
			}
		}
		if !used {
			continue
		}
		for j, p := range phases {
			share := 0.0
			if p.Latency.Count > 0 {
				share = float64(p.Buckets[i]) / float64(p.Latency.Count)
			}
			n := int(share*width + 0.5)
			if n == 0 && p.Buckets[i] > 0 {
				n = 1
			}
			bar := strings.Repeat("█", n)
			first := label(i)
			if j > 0 {
				first = ""
			}
			fmt.Fprintf(w, "%-8s %-5s %s %5.1f%%\n", first, p.Design, styles[j%len(styles)](bar), 100*share)
		}
	}
}
