package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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

// FuzzResolveURL: any --url value either resolves or is a usage error, and
// the error never repeats the password.
func FuzzResolveURL(f *testing.F) {
	for _, seed := range []string{"amqp://u:pw@h:5672/v", "amqps://u:pw@h/", "http://u:pw@h", "amqp://u:pw@h:99999/", "amqp://[::1", "amqp://u:p%zz@h/", ",,,"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		s, err := Resolve(Flags{URLs: []string{raw}}, func(string) (string, bool) { return "", false }, nil)
		if err != nil {
			if k, _ := fail.KindOf(err); k != fail.Usage {
				t.Fatalf("non-usage error: %v", err)
			}
			return
		}
		for _, u := range s.Public().URLs {
			if s.MgmtPassword != "" && len(s.MgmtPassword) >= 3 && strings.Contains(u, s.MgmtPassword) {
				t.Fatalf("public URL %q shows the password", u)
			}
		}
	})
}
