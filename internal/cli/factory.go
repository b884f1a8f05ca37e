package cli

import (
	"fmt"
	"sync"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// Factory hands commands their dependencies lazily, so a command that needs
// no broker never resolves one, and tests can replace any of them.
type Factory struct {
	IO  *iostreams.IOStreams
	Env config.LookupEnv

	// Settings resolves the connection configuration once.
	Settings func() (config.Settings, error)
	// Dialer returns an AMQP dialer whose connections are named name.
	Dialer func(name string) (*broker.Dialer, error)
	// Mgmt returns a management API client.
	Mgmt func() (*rabbithole.Client, error)

	global globalFlags
	// started is set once cobra has parsed flags and arguments: an untyped
	// error before that point is a usage error.
	started bool
}

type globalFlags struct {
	conn    config.Flags
	output  string
	verbose bool
}

// NewFactory wires the production dependencies.
func NewFactory(ios *iostreams.IOStreams, env config.LookupEnv) *Factory {
	f := &Factory{IO: ios, Env: env}
	var once sync.Once
	var settings config.Settings
	var settingsErr error
	f.Settings = func() (config.Settings, error) {
		once.Do(func() { settings, settingsErr = f.resolve() })
		return settings, settingsErr
	}
	f.Dialer = func(name string) (*broker.Dialer, error) {
		s, err := f.Settings()
		if err != nil {
			return nil, err
		}
		return broker.NewDialer(s, name)
	}
	f.Mgmt = func() (*rabbithole.Client, error) {
		s, err := f.Settings()
		if err != nil {
			return nil, err
		}
		return broker.NewMgmt(s)
	}
	return f
}

func (f *Factory) resolve() (config.Settings, error) {
	fl := f.global.conn
	if fl.ConfigPath == "" {
		fl.ConfigPath = config.DefaultConfigPath(f.Env)
	}
	file, warnings, err := config.LoadFile(fl.ConfigPath)
	for _, w := range warnings {
		fmt.Fprintln(f.IO.ErrOut, "warning:", w)
	}
	if err != nil {
		return config.Settings{}, err
	}
	s, err := config.Resolve(fl, f.Env, file)
	if err != nil {
		return s, err
	}
	f.Logf(s.Redactor, "connection: urls=%v mgmt=%s vhost=%s timeout=%s", s.Public().URLs, s.MgmtURL, s.Vhost, s.Timeout)
	return s, nil
}

// Format parses -o against the formats a command allows.
func (f *Factory) Format(allowed ...output.Format) (output.Format, error) {
	return output.ParseFormat(f.global.output, allowed...)
}

// Logf prints a -v diagnostic line on stderr, secrets masked.
func (f *Factory) Logf(r *config.Redactor, format string, a ...any) {
	if !f.global.verbose {
		return
	}
	fmt.Fprintln(f.IO.ErrOut, "mqctl:", r.Redact(fmt.Sprintf(format, a...)))
}
