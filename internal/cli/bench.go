package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/bench"
	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// BenchOptions is what `mqctl bench` needs.
type BenchOptions struct {
	IO       *iostreams.IOStreams
	Format   output.Format
	Config   bench.Config
	Seconds  int      // -z
	Flags    []string // -f
	Progress bool     // per-second lines even when stderr is not a terminal
	Scenario string   // a named PerfTest command line
	// Settings and Dialer connect to the broker (the Factory's).
	Settings func() (config.Settings, error)
	Dialer   func(name string) (*broker.Dialer, error)
}

// NewCmdBench builds `mqctl bench` and its subcommands; runF replaces the
// work in tests.
func NewCmdBench(f *Factory, runF func(*BenchOptions) error) *cobra.Command {
	opts := &BenchOptions{IO: f.IO, Settings: f.Settings, Dialer: f.Dialer}
	c := &opts.Config
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure broker and client throughput and latency, PerfTest style",
		Long: `Run producers and consumers against one queue and report send, confirm,
nack, return and receive rates and the consumer (end-to-end) and publisher
confirm latency percentiles from HDR histograms.

Flags are spelled like RabbitMQ PerfTest's, so command lines translate:
-x producers, -y consumers, -s size, -c confirm window, -q prefetch,
-A multi-ack every, -r rate per producer, -z seconds, -C/-D message counts
per producer/consumer, -f persistent|mandatory, -u an existing queue.

Every body starts with PerfTest's 12-byte header: a big-endian int32
sequence number and a big-endian int64 timestamp (Unix nanoseconds, as omq
writes by default; Unix milliseconds with --use-millis, for PerfTest
consumers started with --use-millis). mqctl reads both units, so omq,
PerfTest --use-millis and mqctl can consume each other's messages.

Each producer and consumer has its own connection. A producer keeps at most
-c messages unconfirmed; a consumer acknowledges every -A messages at once.
Without -u, the benchmark declares a durable queue of --queue-type named
mqctl-bench-<random> and deletes it at the end, even when interrupted.
Without -z, -C or -D it runs until interrupted (Ctrl-C prints the summary).
--scenario cq-confirm is PerfTest's "-x 1 -y 1 -s 1000 -c 1000 -q 1000 -A 100
-f persistent --queue-type classic -z 30", qq-confirm its quorum twin; flags
given alongside win.

Rates are given for the whole run and for the steady state, which leaves
out the first --warmup seconds. Per-second lines go to stderr when it is a
terminal (or with --progress).

Least permissions: configure on the queue (mqctl-bench-…, unless -u names an
existing one), write on the default exchange (amq.default), read on the queue.`,
		Example: `  # PerfTest's "cq-confirm" scenario, 30 seconds
  mqctl bench -x 1 -y 1 -s 1000 -c 1000 -q 1000 -A 100 -f persistent --queue-type classic -z 30

  # the same on a quorum queue, by its scenario name, for 60 seconds, as JSON
  mqctl bench --scenario qq-confirm -z 60 -o json

  # 10,000 messages to an existing queue, rate-limited
  mqctl bench -u orders -C 10000 -r 500 -c 100`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Format, err = f.Format(); err != nil {
				return err
			}
			if opts.Scenario != "" {
				if err := applyScenario(cmd, opts); err != nil {
					return err
				}
			}
			c.Duration = time.Duration(opts.Seconds) * time.Second
			if opts.Seconds < 0 {
				return fail.Usagef("-z %d: want seconds, 0 or more", opts.Seconds)
			}
			for _, fl := range opts.Flags {
				switch strings.ToLower(fl) {
				case "persistent":
					c.Persistent = true
				case "mandatory":
					c.Mandatory = true
				default:
					return fail.Usagef("-f %q: want persistent or mandatory", fl)
				}
			}
			if c.Queue != "" && cmd.Flags().Changed("queue-type") {
				return fail.Usagef("--queue-type applies to the queue the benchmark declares; -u %s is an existing queue", c.Queue)
			}
			if err := c.Validate(); err != nil {
				return fail.Usagef("%v", err)
			}
			if runF != nil {
				return runF(opts)
			}
			return benchRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.IntVarP(&c.Producers, "producers", "x", 1, "number of producers, one connection each")
	fl.IntVarP(&c.Consumers, "consumers", "y", 1, "number of consumers, one connection each")
	fl.IntVarP(&c.Size, "size", "s", bench.HeaderLen, "message size in bytes (at least the 12-byte header)")
	fl.IntVarP(&c.ConfirmWindow, "confirm", "c", 0, "publisher confirm window: unconfirmed messages per producer (0 = no confirms)")
	fl.IntVarP(&c.Prefetch, "qos", "q", 0, "consumer prefetch (0 = unlimited)")
	fl.IntVarP(&c.MultiAckEvery, "multi-ack-every", "A", 1, "acknowledge every N messages with one multiple ack")
	fl.Float64VarP(&c.Rate, "rate", "r", 0, "publishing rate limit per producer, messages per second (0 = unlimited)")
	fl.IntVarP(&opts.Seconds, "time", "z", 0, "run duration in seconds (0 = until -C/-D counts or Ctrl-C)")
	fl.Int64VarP(&c.ProducerCount, "pmessages", "C", 0, "messages each producer sends (0 = unlimited)")
	fl.Int64VarP(&c.ConsumerCount, "cmessages", "D", 0, "messages each consumer takes (0 = unlimited)")
	fl.StringSliceVarP(&opts.Flags, "flag", "f", nil, "message flags: persistent, mandatory (repeat or comma-separate)")
	fl.StringVar(&c.QueueType, "queue-type", bench.QueueClassic, "type of the queue the benchmark declares: classic or quorum")
	fl.StringVarP(&c.Queue, "queue", "u", "", "use this existing queue instead of declaring one (it is not deleted)")
	fl.BoolVar(&c.UseMillis, "use-millis", false, "write timestamps in milliseconds (for PerfTest consumers with --use-millis)")
	fl.DurationVar(&c.Warmup, "warmup", 5*time.Second, "left out of the steady-state rates")
	fl.BoolVar(&opts.Progress, "progress", false, "print per-second lines on stderr even when it is not a terminal")
	fl.StringVar(&opts.Scenario, "scenario", "", "start from a named scenario: "+strings.Join(bench.ScenarioNames(), ", ")+" (flags given win)")
	_ = cmd.RegisterFlagCompletionFunc("scenario", cobra.FixedCompletions(bench.ScenarioNames(), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("queue-type", cobra.FixedCompletions([]string{bench.QueueClassic, bench.QueueQuorum}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("flag", cobra.FixedCompletions([]string{"persistent", "mandatory"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.AddCommand(NewCmdBenchRegister(f, nil))
	return cmd
}

// applyScenario fills every flag the user did not give from the scenario.
func applyScenario(cmd *cobra.Command, opts *BenchOptions) error {
	sc, ok := bench.Scenarios[opts.Scenario]
	if !ok {
		return fail.Usagef("--scenario %q: want one of %s", opts.Scenario, strings.Join(bench.ScenarioNames(), ", "))
	}
	c := &opts.Config
	fl := cmd.Flags()
	for name, apply := range map[string]func(){
		"producers":       func() { c.Producers = sc.Producers },
		"consumers":       func() { c.Consumers = sc.Consumers },
		"size":            func() { c.Size = sc.Size },
		"confirm":         func() { c.ConfirmWindow = sc.ConfirmWindow },
		"qos":             func() { c.Prefetch = sc.Prefetch },
		"multi-ack-every": func() { c.MultiAckEvery = sc.MultiAckEvery },
		"rate":            func() { c.Rate = sc.Rate },
		"time":            func() { opts.Seconds = int(sc.Duration / time.Second) },
		"pmessages":       func() { c.ProducerCount = sc.ProducerCount },
		"cmessages":       func() { c.ConsumerCount = sc.ConsumerCount },
		"flag":            func() { c.Persistent, c.Mandatory = sc.Persistent, sc.Mandatory },
		"queue-type":      func() { c.QueueType = sc.QueueType },
	} {
		if !fl.Changed(name) {
			apply()
		}
	}
	return nil
}

// benchDial opens connections named for the management UI, each node's
// attempt bounded by the timeout (inside Dial).
func benchDial(dialer func(name string) (*broker.Dialer, error)) bench.DialFunc {
	return func(ctx context.Context, name string) (*amqp.Connection, error) {
		d, err := dialer(name)
		if err != nil {
			return nil, err
		}
		return d.Dial(ctx)
	}
}

func benchRun(ctx context.Context, opts *BenchOptions) error {
	s, err := opts.Settings()
	if err != nil {
		return err
	}
	opts.Config.Timeout = s.Timeout
	var onInterval func(bench.Interval)
	if opts.Progress || opts.IO.IsStderrTTY() {
		w := opts.IO.ErrOut
		onInterval = func(iv bench.Interval) { writeBenchInterval(w, iv, opts.Config) }
	}
	res, err := bench.Run(ctx, opts.Config, benchDial(opts.Dialer), onInterval)
	if res != nil {
		if perr := output.Print(opts.IO, opts.Format, benchView{res}); perr != nil {
			return perr
		}
	}
	if err != nil {
		return err
	}
	if res.Unreceived > 0 && opts.Config.Queue == "" {
		return fail.Conditionf("%d sent messages were not received by the end of the run", res.Unreceived)
	}
	return nil
}

func writeBenchInterval(w io.Writer, iv bench.Interval, c bench.Config) {
	line := fmt.Sprintf("time %5.1fs", iv.Elapsed.Seconds())
	if c.Producers > 0 {
		line += fmt.Sprintf(", sent %s msg/s", msgRate(iv.Rates.Sent))
		if c.ConfirmWindow > 0 {
			line += fmt.Sprintf(", confirmed %s msg/s", msgRate(iv.Rates.Confirmed))
			if iv.Rates.Nacked > 0 {
				line += fmt.Sprintf(", nacked %s msg/s", msgRate(iv.Rates.Nacked))
			}
		}
		if iv.Rates.Returned > 0 {
			line += fmt.Sprintf(", returned %s msg/s", msgRate(iv.Rates.Returned))
		}
	}
	if c.Consumers > 0 {
		line += fmt.Sprintf(", received %s msg/s", msgRate(iv.Rates.Received))
	}
	fmt.Fprintln(w, line)
}

// msgRate shows a bench rate in whole messages per second.
func msgRate(v float64) string { return fmt.Sprintf("%.0f", v) }

func latency(m bench.Micros) string {
	d := m.Duration()
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
	}
}

// benchView renders a bench.Result; JSON and YAML marshal the result as is.
type benchView struct{ *bench.Result }

func (v benchView) RenderText(w io.Writer, s *output.Styles) error {
	r := v.Result
	c := r.Config
	title := fmt.Sprintf("queue %s (%s), %d producer(s), %d consumer(s), %d-byte messages, %.1f s", r.Queue, queueTypeLabel(r), c.Producers, c.Consumers, c.Size, r.Seconds)
	if r.Interrupted {
		title += " — interrupted"
	}
	fmt.Fprintln(w, s.Title.Render(title))
	steady := func(get func(bench.Rates) float64) string {
		if r.Steady == nil {
			return "-"
		}
		return msgRate(get(*r.Steady))
	}
	rows := [][]string{}
	add := func(name string, total int64, get func(bench.Rates) float64) {
		rows = append(rows, []string{name, fmt.Sprint(total), msgRate(get(r.Whole)), steady(get)})
	}
	if c.Producers > 0 {
		add("sent", r.Totals.Sent, func(x bench.Rates) float64 { return x.Sent })
		if c.ConfirmWindow > 0 {
			add("confirmed", r.Totals.Confirmed, func(x bench.Rates) float64 { return x.Confirmed })
			add("nacked", r.Totals.Nacked, func(x bench.Rates) float64 { return x.Nacked })
		}
		if c.Mandatory {
			add("returned", r.Totals.Returned, func(x bench.Rates) float64 { return x.Returned })
		}
	}
	if c.Consumers > 0 {
		add("received", r.Totals.Received, func(x bench.Rates) float64 { return x.Received })
	}
	steadyHead := fmt.Sprintf("steady msg/s (after %s)", c.Warmup)
	err := output.WriteTable(w, s, output.TableData{
		Headers: []string{"messages", "total", "whole-run msg/s", steadyHead},
		Rows:    rows,
		CellLevel: func(row, col int) output.Level {
			if rows[row][0] == "nacked" && rows[row][1] != "0" {
				return output.LevelError
			}
			return output.LevelNone
		},
	})
	if err != nil {
		return err
	}
	lrows := [][]string{}
	addLat := func(name string, l bench.LatencySummary) {
		if l.Count == 0 {
			return
		}
		lrows = append(lrows, []string{name, latency(l.Min), latency(l.Median), latency(l.P75), latency(l.P95), latency(l.P99), latency(l.P999), latency(l.Max)})
	}
	addLat("consumer (end to end)", r.ConsumerLatency)
	addLat("publisher confirm", r.ConfirmLatency)
	if len(lrows) > 0 {
		fmt.Fprintln(w)
		if err := output.WriteTable(w, s, output.TableData{
			Headers: []string{"latency", "min", "median", "p75", "p95", "p99", "p99.9", "max"},
			Rows:    lrows,
			Columns: map[string]output.Column{"latency": {Keep: true}},
		}); err != nil {
			return err
		}
	}
	var notes []string
	if r.Unreceived > 0 {
		notes = append(notes, fmt.Sprintf("%d sent messages not received by the end of the run", r.Unreceived))
	}
	if r.NoTimestamp > 0 {
		notes = append(notes, fmt.Sprintf("%d messages carried no wall-clock timestamp (PerfTest without --use-millis?): no latency for them", r.NoTimestamp))
	}
	for _, n := range notes {
		fmt.Fprintln(w, s.Warn.Render(n))
	}
	return nil
}

func queueTypeLabel(r *bench.Result) string {
	if r.QueueDeclared {
		return r.Config.QueueType + ", declared for the run"
	}
	return "existing"
}
