package cli

import (
	"context"
	"errors"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/doctor"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/output"
)

// DoctorOptions is what `mqctl doctor` needs.
type DoctorOptions struct {
	f      *Factory
	Format output.Format
}

// NewCmdDoctor builds `mqctl doctor`; runF replaces the work in tests.
func NewCmdDoctor(f *Factory, runF func(*DoctorOptions) error) *cobra.Command {
	opts := &DoctorOptions{f: f}
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check the connection, management API, permissions and feature flags",
		Long: `Check everything mqctl needs: AMQP connection, management API reachability
and version, the user's tags and vhost permissions, and the quorum_queue feature
flag. Prints a table; exits 1 (4 for refused credentials) with a hint when a
check fails.

Least permissions: read access to the vhost and the monitoring tag. Only an
administrator may read the permission patterns and the feature flags; for
other users doctor says so (a warning) and does not fail.`,
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
	f := opts.f
	s, err := f.Settings()
	if err != nil {
		return err
	}
	dialer, err := f.Dialer("mqctl doctor")
	if err != nil {
		return err
	}
	mgmt, answered, err := broker.NewMgmtAnswering(s)
	if err != nil {
		return err
	}
	probe := func(ctx context.Context) (string, string, error) {
		// Each node's attempt is bounded by the timeout inside Dial.
		conn, err := dialer.Dial(ctx)
		if err != nil {
			return "", "", err
		}
		defer conn.Close()
		return broker.ServerVersion(conn), dialer.Node(), nil
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
	view := doctorView{OK: report.OK(), Settings: s.Public(), Checks: report.Checks}
	if err := output.Print(f.IO, opts.Format, view); err != nil {
		return err
	}
	return report.Err()
}
