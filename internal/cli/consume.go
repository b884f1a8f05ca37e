package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/ledger"
	"github.com/mqctl/mqctl/internal/output"
	"github.com/mqctl/mqctl/internal/pattern"
	"github.com/mqctl/mqctl/internal/registration"
	"github.com/mqctl/mqctl/internal/worker"
)

// ConsumeOptions is what `mqctl consume` needs.
type ConsumeOptions struct {
	IO      *iostreams.IOStreams
	Format  output.Format
	Verbose bool // -v: log every acked delivery
	// Settings and Dialer connect to the broker (the Factory's).
	Settings func() (config.Settings, error)
	Dialer   func(name string) (*broker.Dialer, error)

	Effect      string
	Queue       string
	Prefetch    int
	Latency     time.Duration
	FailRate    float64
	Down        bool
	MaxAttempts int
	Backoff     []time.Duration
	DLQ         string
	Topology    string
	DB          string

	// Retry is the policy in effect: from --topology when given, else
	// from the flags (set by consumeRetry).
	Retry pattern.Retry
}

// NewCmdConsume builds `mqctl consume`; runF replaces the work in tests.
func NewCmdConsume(f *Factory, runF func(*ConsumeOptions) error) *cobra.Command {
	opts := &ConsumeOptions{IO: f.IO, Settings: f.Settings, Dialer: f.Dialer}
	cmd := &cobra.Command{
		Use:       "consume email|points|coupon",
		Short:     "Run a demo side-effect worker: manual acks, retry with backoff, DLQ, idempotency ledger",
		ValidArgs: registration.SideEffects,
		Long: `Run one of the registration demo's workers on its queue (named like the side
effect unless --queue says otherwise): email sends the welcome e-mail, points
grants loyalty points, coupon issues the VIP coupon. The provider behind the
side effect is simulated: --latency per call, --fail-rate (0..1) of calls
failing, --down for an outage.

Each delivery is acked only after its side effect is recorded. A failed
attempt is republished (confirm + mandatory) to the delay queue <queue>.retry.N
with header mqctl-attempt incremented, and the original acked only after that
publish is confirmed; if the publish fails, the original is requeued, never
lost. After --max-attempts attempts the message goes to <queue>.dlx (and so to
its DLQ) with the headers mqctl-failure-reason, mqctl-origin-queue,
mqctl-failed-at and mqctl-first-failed-at. A body that is not a registration
event goes to the DLQ at once. The retry settings must match the topology
(the delay queues' TTLs do the waiting): the defaults match
examples/registration/topology.yaml. With --topology FILE the queue's retry
(max_attempts, backoff) and dead_letter settings are read from that file
instead, so they cannot drift; --max-attempts, --backoff and --dlq are then
refused.

Side effects and an idempotency ledger keyed by (side effect, event id) share
one SQLite transaction in --db, so a redelivered message (after a crash, a
lost connection, a duplicate publish) never produces a second e-mail.

Reconnects with backoff after a connection loss, failing over between --url
nodes; when no node answers within --timeout at the start, it exits 1. A
broker that stops answering is noticed by the AMQP heartbeat (10 s; the
connection is given up after 15 s of silence). On SIGINT/SIGTERM it stops
consuming, finishes the deliveries in hand, prints a summary and exits 0.

Least permissions: read on the queue, write on the default exchange
(amq.default, for the delay queues) and on <queue>.dlx.`,
		Example: `  mqctl consume email --latency 200ms --fail-rate 0.1
  mqctl consume coupon --prefetch 20 --db /var/lib/demo/effects.db
  mqctl consume email --down --max-attempts 3 --backoff 1s,2s
  mqctl consume email --topology examples/registration/topology.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Format, err = f.Format(); err != nil {
				return err
			}
			opts.Effect = args[0]
			if !slices.Contains(registration.SideEffects, opts.Effect) {
				return fail.Usagef("unknown side effect %q: want one of %s", opts.Effect, strings.Join(registration.SideEffects, ", "))
			}
			if opts.FailRate < 0 || opts.FailRate > 1 {
				return fail.Usagef("--fail-rate %v: want a number from 0 to 1", opts.FailRate)
			}
			if opts.Prefetch < 1 {
				return fail.Usagef("--prefetch %d: want at least 1", opts.Prefetch)
			}
			if opts.MaxAttempts < 1 {
				return fail.Usagef("--max-attempts %d: want at least 1", opts.MaxAttempts)
			}
			if err := checkBackoff(opts.Backoff); err != nil {
				return err
			}
			if opts.Queue == "" {
				opts.Queue = opts.Effect
			}
			if opts.Topology != "" {
				for _, name := range []string{"max-attempts", "backoff", "dlq"} {
					if cmd.Flags().Changed(name) {
						return fail.Usagef("--%s and --topology: the retry policy comes from the topology file; drop --%s", name, name)
					}
				}
			}
			if opts.Retry, err = consumeRetry(opts); err != nil {
				return err
			}
			opts.Verbose = f.global.verbose
			if runF != nil {
				return runF(opts)
			}
			return consumeRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Queue, "queue", "", "queue to consume (default: the side effect's name)")
	fl.IntVar(&opts.Prefetch, "prefetch", 10, "unacked deliveries at a time (also how many are handled at once)")
	fl.DurationVar(&opts.Latency, "latency", 0, "simulated provider latency per call")
	fl.Float64Var(&opts.FailRate, "fail-rate", 0, "share of provider calls that fail, 0..1")
	fl.BoolVar(&opts.Down, "down", false, "simulate a provider outage: every call fails")
	fl.IntVar(&opts.MaxAttempts, "max-attempts", registration.DefaultMaxAttempts, "processing attempts in all, the first included (the topology's retry.max_attempts)")
	fl.DurationSliceVar(&opts.Backoff, "backoff", registration.DefaultBackoff, "waits before attempt 2, 3, …; the last repeats (the topology's retry.backoff)")
	fl.StringVar(&opts.DLQ, "dlq", "", "dead-letter queue (default <queue>.dlq)")
	fl.StringVar(&opts.Topology, "topology", "", "topology file to read the queue's retry and dead_letter settings from (instead of the flags)")
	_ = cmd.MarkFlagFilename("topology", "yaml", "yml")
	fl.StringVar(&opts.DB, "db", "mqctl-registration.db", "SQLite file for the idempotency ledger and the simulated side effects")
	return cmd
}

// consumeRetry returns the queue's retry policy: from the --topology file
// (parsed and validated, like `mqctl topology validate`) when given, else
// from the flags.
func consumeRetry(opts *ConsumeOptions) (pattern.Retry, error) {
	if opts.Topology != "" {
		file, err := loadTopology(opts.IO.In, opts.Topology)
		if err != nil {
			return pattern.Retry{}, err
		}
		names := make([]string, 0, len(file.Queues))
		for _, q := range file.Queues {
			if q.Name == opts.Queue {
				return file.RetryOf(q), nil
			}
			names = append(names, q.Name)
		}
		return pattern.Retry{}, fail.Usagef("--topology %s declares no queue %q (it declares %s); pass --queue", opts.Topology, opts.Queue, strings.Join(names, ", "))
	}
	dlq := opts.DLQ
	if dlq == "" {
		dlq = pattern.DefaultDLQ(opts.Queue)
	}
	return pattern.Retry{Queue: opts.Queue, MaxAttempts: opts.MaxAttempts, Backoff: opts.Backoff, DLQ: dlq}, nil
}

// consumeSummary is what a worker did before it stopped.
type consumeSummary struct {
	Queue        string `json:"queue"`
	Acked        int    `json:"acked"`
	Retried      int    `json:"retried"`
	DeadLettered int    `json:"dead_lettered"`
	Requeued     int    `json:"requeued"`
	Reconnects   int    `json:"reconnects"`
}

func (s consumeSummary) Table() output.TableData {
	return output.TableData{
		Headers: []string{"queue", "acked", "retried", "dead-lettered", "requeued", "reconnects"},
		Columns: map[string]output.Column{"queue": {Keep: true}},
		Rows: [][]string{{s.Queue, fmt.Sprint(s.Acked), fmt.Sprint(s.Retried), fmt.Sprint(s.DeadLettered),
			fmt.Sprint(s.Requeued), fmt.Sprint(s.Reconnects)}},
	}
}

func consumeRun(ctx context.Context, opts *ConsumeOptions) error {
	s, err := opts.Settings()
	if err != nil {
		return err
	}
	dialer, err := opts.Dialer("mqctl consume " + opts.Effect)
	if err != nil {
		return err
	}
	// Started against an unreachable broker: say so within --timeout
	// (a supervisor restarts it); a lost connection is re-dialled forever.
	dialer.LimitStartup(s.Timeout)
	db, err := ledger.Open(opts.DB)
	if err != nil {
		return err
	}
	defer db.Close()
	l, err := ledger.New(ctx, db)
	if err != nil {
		return err
	}
	fx, err := registration.NewEffects(ctx, l)
	if err != nil {
		return err
	}
	handler, err := fx.Handler(opts.Effect, registration.NewProvider(opts.Latency, opts.FailRate, opts.Down))
	if err != nil {
		return err
	}
	log := newLineLog(opts.IO.ErrOut, s.Redactor, "consume "+opts.Effect)
	sum := consumeSummary{Queue: opts.Queue}
	var mu sync.Mutex
	retry := opts.Retry
	log.Printf("consuming %s (prefetch %d, max attempts %d, backoff %v, DLQ %s)", opts.Queue, opts.Prefetch, retry.MaxAttempts, retry.Backoff, retry.DLQ)
	err = worker.Run(ctx, worker.Config{
		Queue: opts.Queue, Retry: retry, Prefetch: opts.Prefetch, Dialer: dialer, Handler: handler,
		ConsumerTag: "mqctl-consume-" + opts.Effect + "-" + registration.NewID()[:8],
		OnEvent: func(e worker.Event) {
			mu.Lock()
			switch e.Kind {
			case worker.Acked:
				sum.Acked++
			case worker.Retried:
				sum.Retried++
			case worker.DeadLettered:
				sum.DeadLettered++
			case worker.Requeued:
				sum.Requeued++
			case worker.Disconnected:
				sum.Reconnects++
			}
			mu.Unlock()
			workerLog(log, e, opts.Verbose)
		},
	})
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return output.Print(opts.IO, opts.Format, sum)
}

func workerLog(log *lineLog, e worker.Event, verbose bool) {
	switch e.Kind {
	case worker.Acked:
		if verbose {
			log.Printf("done %s (attempt %d)", e.MessageID, e.Attempt)
		}
	case worker.Retried:
		log.Printf("attempt %d of %s failed (%v); retry in %s", e.Attempt, e.MessageID, e.Err, e.Delay)
	case worker.DeadLettered:
		log.Printf("attempt %d of %s failed (%v); dead-lettered", e.Attempt, e.MessageID, e.Err)
	case worker.Connected, worker.Stopping:
		log.Printf("%s", e.Kind)
	default:
		if e.Err != nil {
			log.Printf("%s: %v", e.Kind, e.Err)
		} else {
			log.Printf("%s", e.Kind)
		}
	}
}

// checkBackoff refuses a --backoff list with a wait that is not positive.
func checkBackoff(ds []time.Duration) error {
	for _, d := range ds {
		if d <= 0 {
			return fail.Usagef("--backoff %v: every wait must be positive", d)
		}
	}
	return nil
}
