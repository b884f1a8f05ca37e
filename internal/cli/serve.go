package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/ledger"
	"github.com/mqctl/mqctl/internal/registration"
)

// ServeOptions is what `mqctl serve` needs.
type ServeOptions struct {
	IO      *iostreams.IOStreams
	Listen  string
	DB      string
	Verbose bool // -v: log every publish of the relay
	// Settings and Dialer connect to the broker (the Factory's).
	Settings func() (config.Settings, error)
	Dialer   func(name string) (*broker.Dialer, error)
}

// NewCmdServe builds `mqctl serve`; runF replaces the work in tests.
func NewCmdServe(f *Factory, runF func(*ServeOptions) error) *cobra.Command {
	opts := &ServeOptions{IO: f.IO, Settings: f.Settings, Dialer: f.Dialer}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the demo sign-up API: store the user and an outbox row, relay events with confirms",
		Long: `Run the registration demo's HTTP API.

  POST /register {"name":"Ada","email":"ada@example.com","vip":false}
       → 201 {"user_id":…,"event_id":…}; 400 for invalid input, 409 for a
         known e-mail address
  GET  /healthz → 200 {"status":"ok","users":…,"outbox_pending":…,"outbox_sent":…,
                        "relay":{"state":"connected","since":…,"last_published":…}}
       503 {"status":"degraded",…} once the relay has not reached the broker
       for 30s (registrations still succeed; the outbox grows)

A registration writes the user and an outbox row in one transaction to an
embedded SQLite file (--db) and answers at once: it never waits for the broker.
A relay publishes outbox rows to the exchange user.events with routing key
user.registered or user.registered.vip (persistent, publisher confirms,
mandatory, message_id = event id) and marks a row sent only after a positive
confirm; returned or nacked rows are retried with backoff, and a lost
connection is re-dialled with backoff (failing over between --url nodes). With
the broker down, registrations still succeed and the backlog goes out when it
is back. A row can be published twice (a confirm lost with the connection);
the consumers' idempotency ledger absorbs that.

While the broker blocks publishing (a memory or disk alarm) the relay says
so on stderr, keeps waiting as long as the alarm lasts (sign-ups still
succeed and wait in the outbox), and resumes by itself when it clears.

Stops on SIGINT/SIGTERM: stops accepting requests, lets the relay finish its
batch, closes.

Least permissions: write on the exchange user.events (configure and read are
not needed).`,
		Example: `  mqctl serve --listen 127.0.0.1:8080
  curl -s -XPOST localhost:8080/register -d '{"name":"Ada","email":"ada@example.com","vip":true}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, _, err := net.SplitHostPort(opts.Listen); err != nil {
				return fail.Usagef("--listen %q: want host:port, e.g. 127.0.0.1:8080", opts.Listen)
			}
			opts.Verbose = f.global.verbose
			if runF != nil {
				return runF(opts)
			}
			return serveRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Listen, "listen", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	cmd.Flags().StringVar(&opts.DB, "db", "mqctl-registration.db", "SQLite file for users and the outbox (created if missing)")
	return cmd
}

func serveRun(ctx context.Context, opts *ServeOptions) error {
	s, err := opts.Settings()
	if err != nil {
		return err
	}
	dialer, err := opts.Dialer("mqctl serve")
	if err != nil {
		return err
	}
	log := newLineLog(opts.IO.ErrOut, s.Redactor, "serve")
	db, err := ledger.Open(opts.DB)
	if err != nil {
		return err
	}
	defer db.Close()
	app, err := registration.StartStack(ctx, registration.StackConfig{DB: db, Listen: opts.Listen, Relay: registration.Relay{
		Dialer: dialer, OnEvent: relayLogger(log, opts.Verbose),
		Blocked: blockedPolicy(log, 0, "waiting for it to clear; registrations wait in the outbox meanwhile"),
	}})
	var le *registration.ListenError
	if errors.As(err, &le) {
		return fail.Usagef("%v; pick a free address with --listen", le)
	}
	if err != nil {
		return err
	}
	log.Printf("listening on %s (database %s)", app.URL(), opts.DB)
	// Until interrupted, or until the server or the relay fails.
	select {
	case <-ctx.Done():
		log.Printf("shutting down: finishing requests in flight (up to 10s), then the relay's confirms")
	case <-app.Done():
		log.Printf("shutting down: the server or the relay stopped")
	}
	err = app.Stop()
	st, serr := app.Store.Stats(context.WithoutCancel(ctx))
	if serr == nil {
		log.Printf("stopped: %d outbox rows sent, %d pending (published when serve runs again)", st.Sent, st.Pending)
	}
	return err
}

func relayLogger(log *lineLog, verbose bool) func(registration.RelayEvent) {
	return func(e registration.RelayEvent) {
		switch {
		case e.Kind == "published" && !verbose:
		case e.Err != nil:
			log.Printf("relay %s: %v", e.Kind, e.Err)
		case e.Count > 0:
			log.Printf("relay %s %d", e.Kind, e.Count)
		default:
			log.Printf("relay %s", e.Kind)
		}
	}
}

// lineLog writes whole diagnostic lines to stderr from several goroutines,
// secrets masked.
type lineLog struct {
	mu     sync.Mutex
	w      io.Writer
	r      *config.Redactor
	prefix string
}

func newLineLog(w io.Writer, r *config.Redactor, prefix string) *lineLog {
	return &lineLog{w: w, r: r, prefix: prefix}
}

func (l *lineLog) Printf(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	if l.r != nil {
		msg = l.r.Redact(msg)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%s %s: %s\n", time.Now().Format("15:04:05.000"), l.prefix, msg)
}
