package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/fail"
)

// FuzzLoadFile: no config file, however malformed, panics the parser, and
// every rejection is a usage error (exit 2) that names the file.
func FuzzLoadFile(f *testing.F) {
	for _, seed := range []string{
		"current_context: a\ncontexts:\n  a:\n    url: amqp://x@h/\n",
		"contexts:\n  a: {urls: [amqp://a, amqp://b], timeout: 3s}\n",
		"contexts: [1, 2]\n",
		"current_context: {x: y}\n",
		"contexts:\n  a:\n    url: \xff\xfe\n",
		"&a [*a]",
		"contexts:\n  a:\n    insecure_skip_verify: maybe\n",
		strings.Repeat("- ", 500),
		"",
		"\xef\xbb\xbfcontexts:\n  a: {url: amqp://h/}\n",
		"contexts:\n  a: {url: amqp://h/\x00}\n",
		"contexts:\n  a: {urls: [" + strings.Repeat("[", 1000) + "]}\n",
		"contexts:\n  b: &b {url: amqp://h/}\n  a:\n    <<: *b\n    password: pw\n",
		"contexts:\n  a: {timeout: -5s, tls_cert: c}\n",
		"contexts:\n  a: {url: 'amqp://u:p@h/', password: 1234}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		file, _, err := LoadFile(path)
		if err != nil {
			if k, _ := fail.KindOf(err); k != fail.Usage || !strings.Contains(err.Error(), "config.yaml") {
				t.Fatalf("rejection is not a usage error naming the file: %v", err)
			}
			return
		}
		// Whatever parsed must resolve or be refused cleanly.
		for name := range file.Contexts {
			if _, err := Resolve(Flags{Context: name}, func(string) (string, bool) { return "", false }, file); err != nil {
				if k, _ := fail.KindOf(err); k != fail.Usage {
					t.Fatalf("context %q: non-usage error %v", name, err)
				}
			}
		}
	})
}

// FuzzResolveURL: any --url (and --mgmt-url) value either resolves or is a
// usage error, and neither the error, the public settings nor a -v line
// ever shows the password the URL holds: raw is split around a
// distinctive password, so the fuzzer moves it through every part of a URL.
func FuzzResolveURL(f *testing.F) {
	for _, seed := range [][2]string{
		{"amqp://u:", "@h:5672/v"}, {"amqps://u:", "@h/"}, {"http://u:", "@h"}, {"amqp://u:", "@h:99999/"},
		{"amqp://u:", "@[::1"}, {"amqp://u:", "%zz@h/"}, {",,,amqp://u:", "@h/,"}, {"amqp://u:", "@h/%"},
		{"amqp://u:", "@h:5672/v with space"}, {"amqp://:", "@/"}, {"AMQP://U:", "@H/"}, {"amqp://u:p:", "@h/"},
		{"guest:", "@rabbit:5672"}, {"amqp://u:pa/", "@h/"}, {"//:", "@"}, {"amqp://u:", "@h:x/"},
		{"amqp://a/,amqp://u:pa,", "@h/"}, {":", ",@00000"}, {"amqp://u:", ",amqp://h/"}, {"amqp:/u:", "@h/"}, {"amqp:///u:", "@h"},
	} {
		f.Add(seed[0], seed[1])
	}
	const pw = "Fz9-Secret-Pw"
	f.Fuzz(func(t *testing.T, before, after string) {
		raw := before + pw + after
		if strings.Count(raw, pw) != 1 {
			return
		}
		// Only where some parser would read pw as (part of) the password:
		// elsewhere (a host, a path) it is no secret.
		u, uerr := url.Parse(raw)
		a, aerr := amqp.ParseURI(raw)
		secret := aerr == nil && strings.Contains(a.Password, pw) || strings.Contains(textPassword(raw), pw)
		if uerr == nil && u.User != nil {
			up, _ := u.User.Password()
			secret = secret || strings.Contains(up, pw)
		}
		for _, fl := range []Flags{{URLs: []string{raw}}, {MgmtURL: raw}} {
			s, err := Resolve(fl, func(string) (string, bool) { return "", false }, nil)
			if err != nil {
				if k, _ := fail.KindOf(err); k != fail.Usage {
					t.Fatalf("non-usage error: %v", err)
				}
				if secret && strings.Contains(s.Redactor.Redact(err.Error()), pw) {
					t.Fatalf("error shows the password: %v", err)
				}
				continue
			}
			pub := fmt.Sprintf("%+v %s", s.Public(), s.MgmtURL)
			if secret && strings.Contains(s.Redactor.Redact(pub), pw) {
				t.Fatalf("public settings show the password: %s", pub)
			}
		}
	})
}

// textPassword is the password a person reads in raw, parseable or not:
// scheme://user:PASSWORD@host…, //user:PASSWORD@host, user:PASSWORD@host.
func textPassword(raw string) string {
	auth := raw
	if i := strings.Index(raw, "//"); i >= 0 {
		auth = raw[i+2:]
	}
	if j := strings.IndexAny(auth, "/?#"); j >= 0 {
		auth = auth[:j]
	}
	at := strings.LastIndex(auth, "@")
	if at < 0 {
		return ""
	}
	_, p, _ := strings.Cut(auth[:at], ":")
	return p
}
