package cli

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"sync"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/doctor"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// DoctorOptions is what `mqctl doctor` needs.
type DoctorOptions struct {
	IO       *iostreams.IOStreams
	Settings func() (config.Settings, error)
	// Dialer returns an AMQP dialer whose connections are named name.
	Dialer func(name string) (*broker.Dialer, error)
	Format output.Format
}

// NewCmdDoctor builds `mqctl doctor`; runF replaces the work in tests.
func NewCmdDoctor(f *Factory, runF func(*DoctorOptions) error) *cobra.Command {
	opts := &DoctorOptions{IO: f.IO, Settings: f.Settings, Dialer: f.Dialer}
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check the connection, management API, permissions, feature flags and 4.x readiness",
		Long: `Check everything mqctl needs: AMQP connection, management API reachability
and version, the user's tags and vhost permissions, and the quorum_queue feature
flag; that the AMQP node and the management API are one cluster (their
cluster names: a wrong --url port with the default --mgmt-url reaches
another node; topology, dlq ls and demo refuse then); and what changes
between RabbitMQ 3.x and 4.x:

  broker version       tested versions (3.10, 4.0, 4.3) and the upgrade path
  metadata store       Khepri or Mnesia (feature flag khepri_db; 4.3 has Khepri only)
  deprecated features  the ones the broker sees in use (4.x reports them; a
                       broker without that API, such as 3.10, has none to
                       report: ok, and the detail says so)
  metrics collection   off means the management API gives no message counts,
                       consumers or rates: backlog shows them as unknown
  dead lettering       quorum queues of the vhost with a delivery limit (4.x:
                       20 by default) and no dead-letter exchange, whose
                       messages are dropped at the limit

Each line is ok, warn, fail or skip, with a hint what to do. Warnings do not
change the exit code: doctor exits 0 unless a check fails, then 1 (4 for
refused credentials).

Least permissions: read access to the vhost and the monitoring tag. Only an
administrator may read the permission patterns (and on 3.x the feature flags);
for other users doctor says so (a warning) and does not fail.`,
		Example: `  mqctl doctor
  MQCTL_URL=amqp://app@rabbit.internal/orders mqctl doctor -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Format, err = f.Format(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return doctorRun(cmd.Context(), opts)
		},
	}
}

// doctorMgmt is the management API as doctor reads it: rabbit-hole for
// what it models, the raw reader for the rest.
type doctorMgmt struct {
	*rabbithole.Client
	settings config.Settings
	answered func() string

	once   sync.Once
	reader *broker.MgmtReader
	err    error
}

// GetJSON implements doctor.Mgmt. The reader is made on first use and
// tries first the management API that answered rabbit-hole (doctor reads
// the overview through it before anything else): with a dead API among
// several, doctor then waits for it once, not once per client.
func (m *doctorMgmt) GetJSON(ctx context.Context, path string, query url.Values, v any) error {
	m.once.Do(func() {
		s := m.settings
		if first := m.answered(); len(s.MgmtURLs) > 1 {
			if i := slices.Index(s.MgmtURLs, first); i > 0 {
				s.MgmtURLs = append(slices.Clone(s.MgmtURLs[i:]), s.MgmtURLs[:i]...)
				s.MgmtURL = s.MgmtURLs[0]
			}
		}
		m.reader, m.err = broker.NewMgmtReader(s)
	})
	if m.err != nil {
		return m.err
	}
	return m.reader.GetJSON(ctx, path, query, v)
}

type doctorView struct {
	OK       bool           `json:"ok"`
	Settings config.Public  `json:"settings"`
	Checks   []doctor.Check `json:"checks"`
}

func (v doctorView) Table() output.TableData {
	rows := make([][]string, len(v.Checks))
	for i, c := range v.Checks {
		detail := c.Detail
		if c.Hint != "" {
			detail += " — " + c.Hint
		}
		rows[i] = []string{c.Name, string(c.Status), detail}
	}
	return output.TableData{
		Headers: []string{"check", "status", "detail"},
		Rows:    rows,
		Columns: map[string]output.Column{"check": {Keep: true}, "detail": {Min: 24}},
		CellLevel: func(row, col int) output.Level {
			if col != 1 {
				return output.LevelNone
			}
			switch v.Checks[row].Status {
			case doctor.OK:
				return output.LevelOK
			case doctor.Warn:
				return output.LevelWarn
			case doctor.Fail:
				return output.LevelError
			}
			return output.LevelMuted
		},
	}
}

func doctorRun(ctx context.Context, opts *DoctorOptions) error {
	s, err := opts.Settings()
	if err != nil {
		return err
	}
	dialer, err := opts.Dialer("mqctl doctor")
	if err != nil {
		return err
	}
	client, answered, err := broker.NewMgmtAnswering(s)
	if err != nil {
		return err
	}
	mgmt := &doctorMgmt{Client: client, settings: s, answered: answered}
	probe := func(ctx context.Context) (doctor.AMQPNode, error) {
		// Each node's attempt is bounded by the timeout inside Dial.
		conn, err := dialer.Dial(ctx)
		if err != nil {
			return doctor.AMQPNode{}, err
		}
		defer conn.Close()
		return doctor.AMQPNode{Version: broker.ServerVersion(conn), Node: dialer.Node(), Cluster: broker.AMQPClusterName(conn)}, nil
	}
	describe := func(err error) (string, string, fail.Kind) {
		kind, _ := fail.KindOf(err)
		if problem, hint, ok := broker.MgmtUnreachable(s, err); ok {
			return problem, hint, kind
		}
		// An HTTP client error repeats the request URL before the reason;
		// the table already names the API, so keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return s.Redactor.Redact(err.Error()), "", kind
	}
	report := doctor.Run(ctx, doctor.Target{Vhost: s.Vhost, MgmtURL: s.MgmtURL, Answered: answered}, probe, mgmt, describe)
	return doctorPrint(opts.IO, opts.Format, s.Public(), report)
}

// doctorPrint renders a report; its error (a failed check, never a
// warning) decides the exit code.
func doctorPrint(ios *iostreams.IOStreams, format output.Format, settings config.Public, report doctor.Report) error {
	view := doctorView{OK: report.OK(), Settings: settings, Checks: report.Checks}
	if err := output.Print(ios, format, view); err != nil {
		return err
	}
	return report.Err()
}
