package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
	"github.com/mqctl/mqctl/internal/pattern"
	"github.com/mqctl/mqctl/internal/registration"
	"github.com/mqctl/mqctl/internal/topology"
)

// DemoOptions is what `mqctl demo` needs.
type DemoOptions struct {
	IO           *iostreams.IOStreams
	Format       output.Format
	Keep         bool
	Users        int
	EmailLatency time.Duration
	MaxAttempts  int
	Backoff      []time.Duration
	// Settings and Mgmt reach the broker (the Factory's); the demo dials
	// its own vhost.
	Settings func() (config.Settings, error)
	Mgmt     func() (*rabbithole.Client, error)
}

// NewCmdDemo builds `mqctl demo`; runF replaces the work in tests.
func NewCmdDemo(f *Factory, runF func(*DemoOptions) error) *cobra.Command {
	opts := &DemoOptions{IO: f.IO, Settings: f.Settings, Mgmt: f.Mgmt}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the registration story end to end in its own vhost: retries, DLQ, replay, exactly once",
		Long: `Run the whole registration story against the broker, in a vhost of its own
(mqctl-demo-<random>, created through the management API and deleted at the
end unless --keep):

  1. apply examples/registration/topology.yaml (built in) the way
     ` + "`mqctl topology apply`" + ` does, with the demo's --max-attempts and
     --backoff: exchange user.events; queues email, points and coupon with
     delay queues and DLQs
  2. start the sign-up API and the three workers in-process
  3. sign up --users users and show the sign-up latency
  4. break the e-mail provider, sign up as many again: the latency does not
     move while e-mails are retried and then dead-lettered to email.dlq
  5. fix the provider, peek at email.dlq and replay it to the email queue
     (as ` + "`mqctl dlq show`" + ` and ` + "`mqctl dlq replay`" + ` do)
  6. check that every user got exactly one e-mail and one points grant, and
     every VIP exactly one coupon

Each step prints the equivalent standalone mqctl command. Exits 3 when the
final check fails. Backoffs are short (--backoff) so the story takes well
under a minute.

Least permissions: the administrator tag (it creates and deletes a vhost).`,
		Example: `  mqctl demo
  mqctl demo --users 50 --keep
  mqctl demo -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Format, err = f.Format(); err != nil {
				return err
			}
			if opts.Users < 1 {
				return fail.Usagef("--users %d: want at least 1", opts.Users)
			}
			if opts.MaxAttempts < 2 {
				return fail.Usagef("--max-attempts %d: want at least 2, so the demo shows a retry", opts.MaxAttempts)
			}
			if err := checkBackoff(opts.Backoff); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return demoRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&opts.Keep, "keep", false, "keep the demo vhost (and print its name) instead of deleting it")
	fl.IntVar(&opts.Users, "users", 20, "sign-ups per phase (every fourth is a VIP)")
	fl.DurationVar(&opts.EmailLatency, "email-latency", 300*time.Millisecond, "latency of the healthy e-mail provider (points and coupons take a third)")
	fl.IntVar(&opts.MaxAttempts, "max-attempts", 3, "e-mail attempts before the DLQ")
	fl.DurationSliceVar(&opts.Backoff, "backoff", []time.Duration{time.Second, 2 * time.Second}, "waits between attempts")
	return cmd
}

// narrator prints the story; with -o json/yaml it goes to stderr so stdout
// stays machine-readable.
type narrator struct {
	w     io.Writer
	s     *output.Styles
	step  int
	start time.Time
}

func (n *narrator) Step(title string) {
	n.step++
	fmt.Fprintf(n.w, "\n%s %s\n", n.s.Title.Render(fmt.Sprintf("[%2.0fs] %d.", time.Since(n.start).Seconds(), n.step)), n.s.Bold.Render(title))
}

func (n *narrator) Say(format string, a ...any) {
	fmt.Fprintf(n.w, "   %s\n", fmt.Sprintf(format, a...))
}

func (n *narrator) Command(cmd string) {
	fmt.Fprintf(n.w, "   %s %s\n", n.s.Muted.Render("$"), n.s.Code.Render(cmd))
}

type demoView struct {
	Vhost string `json:"vhost"`
	registration.DemoReport
	Seconds float64 `json:"seconds"`
}

func (v demoView) Table() output.TableData {
	rows := make([][]string, len(v.Users))
	for i, u := range v.Users {
		ok := "ok"
		if !u.OK {
			ok = "WRONG"
		}
		rows[i] = []string{u.Name, fmt.Sprint(u.VIP), fmt.Sprint(u.Emails), fmt.Sprint(u.Points), fmt.Sprint(u.Coupons), ok}
	}
	verdict := "every user got exactly one e-mail and one points grant; every VIP one coupon"
	if !v.OK {
		verdict = "CHECK FAILED: see the rows marked WRONG"
	}
	return output.TableData{
		Headers: []string{"user", "vip", "e-mails", "points", "coupons", "check"},
		Rows:    rows,
		Columns: map[string]output.Column{"user": {Keep: true}},
		CellLevel: func(row, col int) output.Level {
			if col != 5 {
				return output.LevelNone
			}
			if v.Users[row].OK {
				return output.LevelOK
			}
			return output.LevelError
		},
		Footer: fmt.Sprintf("%d users, %d retries, %d dead-lettered, %d replayed, %.1fs: %s",
			len(v.Users), v.Retried, v.DeadLettered, v.Replayed, v.Seconds, verdict),
	}
}

func demoRun(ctx context.Context, opts *DemoOptions) error {
	s, err := opts.Settings()
	if err != nil {
		return err
	}
	mgmt, err := opts.Mgmt()
	if err != nil {
		return err
	}
	w := opts.IO.Out
	if opts.Format != output.Table {
		w = opts.IO.ErrOut
	}
	say := &narrator{w: w, s: output.NewStyles(opts.IO, w), start: time.Now()}

	vhost, err := registration.CreateDemoVhost(mgmt, s.AMQPURLs, func(what string, err error) error { return broker.MgmtError(s, what, err) })
	if vhost != nil {
		defer func() {
			if opts.Keep {
				fmt.Fprintf(w, "\nkept vhost %s (delete it with `rabbitmqctl delete_vhost %s`); to look around in it:\n  export MQCTL_URL=%s\n",
					vhost.Name, vhost.Name, s.Redactor.Redact(vhost.URLs[0]))
			} else if err := vhost.Delete(); err != nil {
				fmt.Fprintf(opts.IO.ErrOut, "warning: %v\n", err)
			}
		}()
	}
	if err != nil {
		return err
	}
	vs := s
	vs.AMQPURLs = vhost.URLs
	dialer, err := broker.NewDialer(vs, "mqctl demo")
	if err != nil {
		return err
	}
	// The vhost was made through the management API; the story runs over
	// AMQP, which must reach the same broker.
	if err := broker.SameCluster(ctx, vs, dialer, broker.MgmtClusterName(mgmt)); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "mqctl-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fmt.Fprintf(w, "%s in vhost %s on %s\n", say.s.Bold.Render("mqctl demo: the registration story"), vhost.Name, s.Redactor.Redact(s.AMQPURLs[0]))
	// The vhost is deleted at the end unless --keep: an `export
	// MQCTL_URL=` here would point the reader at nothing.
	fmt.Fprintf(w, "%s\n", say.s.Muted.Render(fmt.Sprintf("(the commands below run in vhost %s, deleted at the end unless --keep)", vhost.Name)))
	start := time.Now()
	rep, runErr := registration.RunDemo(ctx, registration.DemoConfig{
		Dialer: dialer, Vhost: vhost.Name, Topology: &topology.MgmtBroker{Client: mgmt}, Dir: dir, Users: opts.Users, EmailLatency: opts.EmailLatency,
		Retry: pattern.Retry{MaxAttempts: opts.MaxAttempts, Backoff: opts.Backoff},
	}, say)
	if rep.Users == nil && runErr != nil {
		return runErr
	}
	if opts.Format == output.Table {
		fmt.Fprintln(w)
	}
	if err := output.Print(opts.IO, opts.Format, demoView{Vhost: vhost.Name, DemoReport: rep, Seconds: time.Since(start).Seconds()}); err != nil {
		return err
	}
	if errors.Is(runErr, registration.ErrDemoCheckFailed) {
		return fail.Conditionf("%v", runErr)
	}
	return runErr
}
