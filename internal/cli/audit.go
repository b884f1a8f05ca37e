package cli

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mqctl/mqctl/internal/audit"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/fail"
)

// auditTrail is where a command that changes messages or objects records
// what it did: --audit-log, else $XDG_STATE_HOME/mqctl/audit.jsonl.
type auditTrail struct {
	Env  config.LookupEnv
	Path string // --audit-log
}

func (a *auditTrail) register(fl *pflag.FlagSet) {
	fl.StringVar(&a.Path, "audit-log", "", "append the audit record here (default $XDG_STATE_HOME/mqctl/audit.jsonl)")
}

// file is the trail's path.
func (a *auditTrail) file() (string, error) {
	if a.Path != "" {
		return a.Path, nil
	}
	dir, err := stateHome(a.Env, "the audit trail", "--audit-log FILE")
	if err != nil {
		return "", err
	}
	return audit.Path(dir), nil
}

// check makes sure the trail can be written before anything is changed:
// an act that cannot be recorded is refused (exit 2), not done unrecorded.
func (a *auditTrail) check() error {
	p, err := a.file()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fail.Usagef("cannot write the audit trail %s: %v (pass --audit-log FILE)", p, err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fail.Usagef("cannot write the audit trail %s: %v (pass --audit-log FILE)", p, err)
	}
	return f.Close()
}

// record appends e, stamped with the OS user and the broker and vhost of
// s (the vhost only when e has none: topology names its own); runErr (the command's own error, if any) becomes its redacted Error.
// The act is done by now, so a trail that cannot be written is a warning
// the caller prints, not a reason to report the act as failed.
func (a *auditTrail) record(s config.Settings, e audit.Entry, runErr error) error {
	p, err := a.file()
	if err != nil {
		return err
	}
	e.User = audit.CurrentUser()
	e.Broker = brokerAddress(s)
	if e.Vhost == "" {
		e.Vhost = s.Vhost
	}
	if runErr != nil {
		e.Error = s.Redactor.Redact(runErr.Error())
		if e.Outcome == "" || e.Outcome == audit.OK {
			e.Outcome = audit.Failed
		}
	}
	if err := audit.Append(p, e); err != nil {
		return fmt.Errorf("the act is done but not recorded: %w", err)
	}
	return nil
}

// spool is the spool of a run's outcomes for its audit line, in the
// command's $TMPDIR: none for a dry run, which records nothing. The
// caller removes it, whatever became of the run.
func (a *auditTrail) spool(dryRun bool) (*dlq.Spool, error) {
	if dryRun {
		return nil, nil
	}
	dir := ""
	if a.Env != nil {
		dir, _ = a.Env("TMPDIR")
	}
	return dlq.NewSpool(dir)
}

// brokerAddress is the AMQP address(es) of s without credentials: scheme,
// host and port, no user, no password, no vhost (that has its own field).
func brokerAddress(s config.Settings) string {
	out := make([]string, 0, len(s.AMQPURLs))
	for _, raw := range s.AMQPURLs {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			continue
		}
		out = append(out, u.Scheme+"://"+u.Host)
	}
	return strings.Join(out, ",")
}
