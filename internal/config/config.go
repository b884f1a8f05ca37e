// Package config resolves where mqctl connects and how: AMQP node URLs, the
// management API, credentials and TLS, from flags, MQCTL_* environment
// variables, a named context in the config file, and defaults — in that
// order of precedence.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/inputfile"
)

// DefaultURL is used when nothing else names a broker.
const DefaultURL = "amqp://guest:guest@localhost:5672/"

// DefaultTimeout bounds every network call unless --timeout says otherwise.
const DefaultTimeout = 10 * time.Second

// Context is a named connection in the config file.
type Context struct {
	URL                string   `yaml:"url,omitempty"`
	URLs               []string `yaml:"urls,omitempty"`
	MgmtURL            string   `yaml:"mgmt_url,omitempty"`
	Password           string   `yaml:"password,omitempty"`
	MgmtPassword       string   `yaml:"mgmt_password,omitempty"`
	TLSCA              string   `yaml:"tls_ca,omitempty"`
	TLSCert            string   `yaml:"tls_cert,omitempty"`
	TLSKey             string   `yaml:"tls_key,omitempty"`
	InsecureSkipVerify bool     `yaml:"insecure_skip_verify,omitempty"`
	Timeout            string   `yaml:"timeout,omitempty"`
}

// File is the config file: named contexts and the one used by default.
type File struct {
	CurrentContext string             `yaml:"current_context,omitempty"`
	Contexts       map[string]Context `yaml:"contexts,omitempty"`
}

// Flags are the connection flags as the user gave them; a zero value means
// "not given" so lower-precedence sources apply.
type Flags struct {
	URLs               []string
	MgmtURL            string
	Context            string
	ConfigPath         string
	TLSCA              string
	TLSCert            string
	TLSKey             string
	InsecureSkipVerify bool
	Timeout            time.Duration
}

// LookupEnv reads an environment variable; os.LookupEnv in production.
type LookupEnv func(string) (string, bool)

// TLS holds the TLS material for both AMQP and HTTP.
type TLS struct {
	CA                 string `json:"ca,omitempty"`
	Cert               string `json:"cert,omitempty"`
	Key                string `json:"key,omitempty"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify,omitempty"`
}

// Settings is the resolved connection configuration. AMQPURLs carry
// passwords and must never be printed; use Redacted or the Redactor.
type Settings struct {
	AMQPURLs []string
	Vhost    string
	MgmtURL  string // base URL without credentials: MgmtURLs[0]
	// MgmtURLs are the management APIs to try in turn (one per node by
	// default); requests go to the first that accepts a connection.
	MgmtURLs     []string
	MgmtUser     string
	MgmtPassword string
	TLS          TLS
	Timeout      time.Duration
	Context      string
	ConfigPath   string
	// Warnings are things the user should know but that do not stop the
	// command (a config file readable by others).
	Warnings []string
	Redactor *Redactor
}

// Public is the part of Settings safe to show (JSON of `doctor`, -v logs).
type Public struct {
	URLs    []string `json:"urls"`
	Vhost   string   `json:"vhost"`
	MgmtURL string   `json:"mgmt_url"`
	// MgmtURLs is set when there are several.
	MgmtURLs []string `json:"mgmt_urls,omitempty"`
	User     string   `json:"user"`
	Context  string   `json:"context,omitempty"`
	TLS      TLS      `json:"tls"`
}

// Public returns the settings with every password masked.
func (s Settings) Public() Public {
	urls := make([]string, len(s.AMQPURLs))
	for i, u := range s.AMQPURLs {
		urls[i] = s.Redactor.Redact(u)
	}
	var mgmts []string
	if len(s.MgmtURLs) > 1 {
		mgmts = s.MgmtURLs
	}
	return Public{URLs: urls, Vhost: s.Vhost, MgmtURL: s.MgmtURL, MgmtURLs: mgmts, User: s.MgmtUser, Context: s.Context, TLS: s.TLS}
}

// DefaultConfigPath is $XDG_CONFIG_HOME/mqctl/config.yaml (~/.config when unset).
func DefaultConfigPath(env LookupEnv) string {
	if p, ok := env("MQCTL_CONFIG"); ok && p != "" {
		return p
	}
	dir, ok := env("XDG_CONFIG_HOME")
	if !ok || dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "mqctl", "config.yaml")
}

// LoadFile reads the config file at path. A missing file is not an error
// (nil, nil); a file readable by group or others yields a warning. An
// invalid file (bad YAML, unknown keys, wrong types, not UTF-8 text, over
// inputfile.MaxConfigFile) is a usage error naming file, line and column.
func LoadFile(path string) (*File, []string, error) {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read config file: %w", err)
	}
	var warnings []string
	if info.Mode().Perm()&0o044 != 0 {
		warnings = append(warnings, fmt.Sprintf("config file %s is readable by others (mode %04o); it may hold passwords: run `chmod 600 %s`", path, info.Mode().Perm(), path))
	}
	data, err := inputfile.ReadFile(path, "a config file", inputfile.MaxConfigFile)
	if err != nil {
		return nil, warnings, fail.Wrap(fail.Usage, fmt.Errorf("invalid config file: %w", err))
	}
	var f File
	if err := inputfile.DecodeStrict(path, data, &f); err != nil {
		return nil, warnings, fail.Wrap(fail.Usage, fmt.Errorf("invalid config file: %w", err))
	}
	return &f, warnings, nil
}

// Resolve applies precedence flag > environment > context > default.
func Resolve(fl Flags, env LookupEnv, file *File) (Settings, error) {
	s := Settings{Redactor: &Redactor{}}
	getenv := func(k string) string { v, _ := env(k); return strings.TrimSpace(v) }
	ctx, name, err := selectContext(fl, getenv, file)
	if err != nil {
		return s, err
	}
	s.Context = name
	s.Redactor.Add(ctx.Password, ctx.MgmtPassword)
	first, err := s.resolveAMQP(fl, env, getenv, ctx)
	if err != nil {
		return s, err
	}
	if err := s.resolveMgmt(fl, env, getenv, ctx, first); err != nil {
		return s, err
	}
	s.TLS = TLS{
		CA:                 firstNonEmpty(fl.TLSCA, getenv("MQCTL_TLS_CA"), ctx.TLSCA),
		Cert:               firstNonEmpty(fl.TLSCert, getenv("MQCTL_TLS_CERT"), ctx.TLSCert),
		Key:                firstNonEmpty(fl.TLSKey, getenv("MQCTL_TLS_KEY"), ctx.TLSKey),
		InsecureSkipVerify: fl.InsecureSkipVerify || getenv("MQCTL_INSECURE_SKIP_VERIFY") == "true" || ctx.InsecureSkipVerify,
	}
	if (s.TLS.Cert == "") != (s.TLS.Key == "") {
		return s, fail.Usagef("--tls-cert and --tls-key must be given together")
	}
	if s.Timeout, err = resolveTimeout(fl, getenv, ctx, name); err != nil {
		return s, err
	}
	s.ConfigPath = fl.ConfigPath
	return s, nil
}

// selectContext picks the named context, which has its own precedence:
// --context, MQCTL_CONTEXT, then the file's current_context. No name is
// the empty context; a name the file lacks is a usage error.
func selectContext(fl Flags, getenv func(string) string, file *File) (Context, string, error) {
	name := firstNonEmpty(fl.Context, getenv("MQCTL_CONTEXT"))
	if name == "" && file != nil {
		name = file.CurrentContext
	}
	if name == "" {
		return Context{}, "", nil
	}
	c, ok := Context{}, false
	if file != nil {
		c, ok = file.Contexts[name]
	}
	if !ok {
		return Context{}, "", fail.Usagef("context %q not found in %s (flag --context or MQCTL_CONTEXT)", name, fl.ConfigPath)
	}
	return c, name, nil
}

// resolveAMQP sets AMQPURLs (passwords filled in from the context and
// MQCTL_PASSWORD, every one registered with the Redactor) and Vhost, and
// returns the first node's URL, whose credentials the management API
// inherits.
func (s *Settings) resolveAMQP(fl Flags, env LookupEnv, getenv func(string) string, ctx Context) (*amqp.URI, error) {
	var raw []string
	switch {
	case len(fl.URLs) > 0:
		raw = splitList(fl.URLs...)
	case getenv("MQCTL_URL") != "":
		raw = splitList(getenv("MQCTL_URL"))
	case len(ctx.URLs) > 0 || ctx.URL != "":
		raw = splitList(append([]string{ctx.URL}, ctx.URLs...)...)
	default:
		raw = []string{DefaultURL}
	}
	if len(raw) == 0 {
		return nil, fail.Usagef("no AMQP URL given (flag --url, MQCTL_URL or the context's url is empty)")
	}
	envPassword, envPasswordSet := env("MQCTL_PASSWORD")
	s.Redactor.Add(envPassword)
	var first *amqp.URI
	for _, r := range raw {
		u, err := parseAMQPURL(r)
		if err != nil {
			return nil, err
		}
		if ctx.Password != "" && !urlHasPassword(r) {
			u.Password = ctx.Password
		}
		if envPasswordSet {
			u.Password = envPassword
		}
		s.Redactor.Add(u.Password)
		if first == nil {
			first = &u
		}
		s.AMQPURLs = append(s.AMQPURLs, u.String())
	}
	s.Vhost = first.Vhost
	if s.Vhost == "" {
		s.Vhost = "/"
	}
	return first, nil
}

// parseAMQPURL parses one node URL; its errors never hold the password.
func parseAMQPURL(r string) (amqp.URI, error) {
	u, err := amqp.ParseURI(r)
	if err != nil {
		// A url.Error repeats the whole URL, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return u, fail.Usagef("invalid AMQP URL %q (flag --url or MQCTL_URL): %v; expected amqp://user:pass@host:port/vhost or amqps://…", MaskUserinfo(r), err)
	}
	// A slash too few or too many (amqp:/u:pw@h, amqp:///u:pw@h)
	// parses, with the credentials as the vhost, to be printed.
	if !hasScheme(r) || userinfoLike.MatchString(u.Vhost) {
		return u, fail.Usagef("invalid AMQP URL %q (flag --url or MQCTL_URL): the vhost would be %q; is a '/' missing or extra? expected amqp://user:pass@host:port/vhost", MaskUserinfo(r), MaskUserinfo(u.Vhost))
	}
	return u, nil
}

// resolveMgmt sets the management API URLs (credentials stripped) and the
// user and password they are called with.
func (s *Settings) resolveMgmt(fl Flags, env LookupEnv, getenv func(string) string, ctx Context, first *amqp.URI) error {
	mus, err := s.mgmtURLs(firstNonEmpty(fl.MgmtURL, getenv("MQCTL_MGMT_URL"), ctx.MgmtURL))
	if err != nil {
		return err
	}
	mu := mus[0]
	s.MgmtUser, s.MgmtPassword = first.Username, first.Password
	if mu.User != nil {
		s.MgmtUser = mu.User.Username()
		if p, ok := mu.User.Password(); ok {
			s.MgmtPassword = p
		}
	}
	if ctx.MgmtPassword != "" && (mu.User == nil || !hasPassword(mu.User)) {
		s.MgmtPassword = ctx.MgmtPassword
	}
	if p, ok := env("MQCTL_MGMT_PASSWORD"); ok {
		s.MgmtPassword = p
	}
	s.Redactor.Add(s.MgmtPassword)
	for _, u := range mus {
		if u.User != nil {
			if p, ok := u.User.Password(); ok {
				s.Redactor.Add(p)
			}
		}
		u.User = nil
		s.MgmtURLs = append(s.MgmtURLs, strings.TrimRight(u.String(), "/"))
	}
	s.MgmtURL = s.MgmtURLs[0]
	return nil
}

// mgmtURLs parses the given management URLs, or derives them: by default
// one per AMQP node, so that a node down for maintenance does not take the
// management API away too. The result is never empty.
func (s *Settings) mgmtURLs(mgmt string) ([]*url.URL, error) {
	var mus []*url.URL
	if mgmt == "" {
		seen := map[string]bool{}
		for _, r := range s.AMQPURLs {
			u, _ := amqp.ParseURI(r) // parsed by resolveAMQP
			scheme, port := "http", "15672"
			if u.Scheme == "amqps" {
				scheme, port = "https", "15671"
			}
			if host := net.JoinHostPort(u.Host, port); !seen[host] {
				seen[host] = true
				mus = append(mus, &url.URL{Scheme: scheme, Host: host})
			}
		}
		return mus, nil
	}
	for _, m := range splitList(mgmt) {
		mu, err := url.Parse(m)
		if err != nil || (mu.Scheme != "http" && mu.Scheme != "https") || mu.Host == "" {
			return nil, fail.Usagef("invalid management URL %q (flag --mgmt-url or MQCTL_MGMT_URL): expected http(s)://host:port", MaskUserinfo(m))
		}
		mus = append(mus, mu)
	}
	if len(mus) == 0 {
		return nil, fail.Usagef("no management URL given (flag --mgmt-url or MQCTL_MGMT_URL is empty)")
	}
	return mus, nil
}

// resolveTimeout is --timeout, else MQCTL_TIMEOUT, else the context's
// timeout, else DefaultTimeout.
func resolveTimeout(fl Flags, getenv func(string) string, ctx Context, name string) (time.Duration, error) {
	if fl.Timeout != 0 {
		return fl.Timeout, nil
	}
	src, v := "MQCTL_TIMEOUT", getenv("MQCTL_TIMEOUT")
	if v == "" {
		src, v = "timeout in context "+name, ctx.Timeout
	}
	if v == "" {
		return DefaultTimeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fail.Usagef("invalid %s %q: want a positive duration such as 10s", src, v)
	}
	return d, nil
}

// userinfoLike matches a vhost that is really user:password@host.
var userinfoLike = regexp.MustCompile(`^[^/]*:[^/]*@`)

func hasPassword(u *url.Userinfo) bool { _, ok := u.Password(); return ok }

func urlHasPassword(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.User != nil && hasPassword(u.User)
}

// splitList splits comma-separated node URLs. A comma belongs to the URL
// before it unless a scheme (amqp://) follows it: a password may hold a
// comma, and splitting it off would put half the password in an error.
func splitList(vals ...string) []string {
	var out []string
	for _, v := range vals {
		start := len(out)
		for _, p := range strings.Split(v, ",") {
			t := strings.TrimSpace(p)
			switch {
			case t == "":
			case len(out) > start && !hasScheme(t):
				out[len(out)-1] = strings.TrimSpace(out[len(out)-1] + "," + p)
			default:
				out = append(out, t)
			}
		}
	}
	return out
}

// hasScheme reports whether s starts with scheme://.
func hasScheme(s string) bool {
	i := strings.Index(s, "://")
	if i <= 0 {
		return false
	}
	for _, c := range s[:i] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
