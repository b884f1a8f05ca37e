package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/fail"
)

func envOf(m map[string]string) LookupEnv {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestResolvePrecedence(t *testing.T) {
	file := &File{
		CurrentContext: "staging",
		Contexts: map[string]Context{
			"staging": {URL: "amqp://ctx:ctxpass@staging:5672/ctxvh", MgmtURL: "http://staging-mgmt:15672", Timeout: "3s"},
			"prod":    {URLs: []string{"amqps://app@prod-1:5671/orders", "amqps://app@prod-2:5671/orders"}, Password: "prodpass", TLSCA: "/ca.pem"},
		},
	}
	tests := []struct {
		name      string
		flags     Flags
		env       map[string]string
		file      *File
		wantURLs  []string
		wantMgmt  string
		wantUser  string
		wantMPass string
		wantVhost string
		wantTO    time.Duration
		wantCtx   string
	}{
		{
			name:     "defaults",
			wantURLs: []string{"amqp://localhost/"}, wantMgmt: "http://localhost:15672",
			wantUser: "guest", wantMPass: "guest", wantVhost: "/", wantTO: DefaultTimeout,
		},
		{
			name: "current context", file: file,
			wantURLs: []string{"amqp://ctx:ctxpass@staging/ctxvh"}, wantMgmt: "http://staging-mgmt:15672",
			wantUser: "ctx", wantMPass: "ctxpass", wantVhost: "ctxvh", wantTO: 3 * time.Second, wantCtx: "staging",
		},
		{
			name: "env beats context", file: file,
			env:      map[string]string{"MQCTL_URL": "amqp://e:epass@envhost:5673/", "MQCTL_MGMT_URL": "http://envmgmt:1", "MQCTL_TIMEOUT": "4s"},
			wantURLs: []string{"amqp://e:epass@envhost:5673/"}, wantMgmt: "http://envmgmt:1",
			wantUser: "e", wantMPass: "epass", wantVhost: "/", wantTO: 4 * time.Second, wantCtx: "staging",
		},
		{
			name: "flag beats env", file: file,
			flags:    Flags{URLs: []string{"amqp://f:fpass@flaghost/fv"}, Timeout: time.Second},
			env:      map[string]string{"MQCTL_URL": "amqp://e:epass@envhost:5673/"},
			wantURLs: []string{"amqp://f:fpass@flaghost/fv"}, wantMgmt: "http://staging-mgmt:15672",
			wantUser: "f", wantMPass: "fpass", wantVhost: "fv", wantTO: time.Second, wantCtx: "staging",
		},
		{
			name: "context by env, cluster urls, context password, amqps mgmt default", file: file,
			env:      map[string]string{"MQCTL_CONTEXT": "prod"},
			wantURLs: []string{"amqps://app:prodpass@prod-1/orders", "amqps://app:prodpass@prod-2/orders"},
			wantMgmt: "https://prod-1:15671", wantUser: "app", wantMPass: "prodpass", wantVhost: "orders", wantTO: DefaultTimeout, wantCtx: "prod",
		},
		{
			name:     "comma separated flag and password env override",
			flags:    Flags{URLs: []string{"amqp://u:inurl@a:5672/,amqp://u@b:5672/"}},
			env:      map[string]string{"MQCTL_PASSWORD": "fromenv", "MQCTL_MGMT_PASSWORD": "mgmtenv"},
			wantURLs: []string{"amqp://u:fromenv@a/", "amqp://u:fromenv@b/"}, wantMgmt: "http://a:15672",
			wantUser: "u", wantMPass: "mgmtenv", wantVhost: "/", wantTO: DefaultTimeout,
		},
		{
			name:     "credentials in mgmt url are moved out of it",
			flags:    Flags{MgmtURL: "https://admin:adminpw@mgmt.example:443/rabbit/"},
			wantURLs: []string{"amqp://localhost/"}, wantMgmt: "https://mgmt.example:443/rabbit",
			wantUser: "admin", wantMPass: "adminpw", wantVhost: "/", wantTO: DefaultTimeout,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Resolve(tt.flags, envOf(tt.env), tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(s.AMQPURLs, " ") != strings.Join(tt.wantURLs, " ") {
				t.Errorf("urls = %v, want %v", s.AMQPURLs, tt.wantURLs)
			}
			if s.MgmtURL != tt.wantMgmt || s.MgmtUser != tt.wantUser || s.MgmtPassword != tt.wantMPass {
				t.Errorf("mgmt = %s %s %s, want %s %s %s", s.MgmtURL, s.MgmtUser, s.MgmtPassword, tt.wantMgmt, tt.wantUser, tt.wantMPass)
			}
			if s.Vhost != tt.wantVhost || s.Timeout != tt.wantTO || s.Context != tt.wantCtx {
				t.Errorf("vhost/timeout/context = %s %s %s, want %s %s %s", s.Vhost, s.Timeout, s.Context, tt.wantVhost, tt.wantTO, tt.wantCtx)
			}
			pub := s.Public()
			for _, u := range pub.URLs {
				if tt.wantMPass != "" && strings.Contains(u, tt.wantMPass) {
					t.Errorf("public URL %s shows the password", u)
				}
			}
		})
	}
}

func TestMgmtURLsFollowTheNodes(t *testing.T) {
	for _, c := range []struct {
		name  string
		flags Flags
		want  []string
	}{
		{"one per node, in order, no repeats", Flags{URLs: []string{"amqp://u:p@a:5672/,amqp://u:p@b:5673/,amqp://u:p@a:5674/"}},
			[]string{"http://a:15672", "http://b:15672"}},
		{"amqps nodes get https 15671", Flags{URLs: []string{"amqps://u:p@a/", "amqps://u:p@b/"}},
			[]string{"https://a:15671", "https://b:15671"}},
		{"an explicit list wins", Flags{URLs: []string{"amqp://u:p@a/"}, MgmtURL: "http://m1:15672, https://op:mpw2@m2:443/rabbit/"},
			[]string{"http://m1:15672", "https://m2:443/rabbit"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Resolve(c.flags, envOf(nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(s.MgmtURLs, " ") != strings.Join(c.want, " ") || s.MgmtURL != c.want[0] {
				t.Errorf("mgmt urls = %v (first %s), want %v", s.MgmtURLs, s.MgmtURL, c.want)
			}
			if out := fmt.Sprintf("%+v", s.Public()); strings.Contains(out, "mpw2") {
				t.Errorf("public settings show a management password: %s", out)
			}
		})
	}
}

func TestResolveErrorsAreUsageAndRedacted(t *testing.T) {
	cases := []struct {
		name  string
		flags Flags
		env   map[string]string
	}{
		{"bad scheme", Flags{URLs: []string{"http://u:topsecret@h/"}}, nil},
		{"bad mgmt", Flags{MgmtURL: "ftp://u:topsecret@h"}, nil},
		{"bad second mgmt", Flags{MgmtURL: "http://m1:15672,ftp://u:topsecret@h"}, nil},
		{"missing context", Flags{Context: "nope"}, nil},
		{"bad timeout", Flags{}, map[string]string{"MQCTL_TIMEOUT": "soon"}},
		{"cert without key", Flags{TLSCert: "c.pem"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Resolve(c.flags, envOf(c.env), nil)
			if err == nil {
				t.Fatal("want an error")
			}
			if k, _ := fail.KindOf(err); k != fail.Usage {
				t.Errorf("kind = %v, want usage", k)
			}
			if strings.Contains(err.Error(), "topsecret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	cases := map[string]string{
		"amqp://guest:s3cret@host:5672/vh":          "amqp://guest:xxxxx@host:5672/vh",
		"dial amqps://u:p%40ss@h failed":            "dial amqps://u:xxxxx@h failed",
		"two amqp://a:1@x, amqp://b:2@y":            "two amqp://a:xxxxx@x, amqp://b:xxxxx@y",
		"no password amqp://guest@host/":            "no password amqp://guest@host/",
		"http://admin:pw@mgmt:15672/api/overview":   "http://admin:xxxxx@mgmt:15672/api/overview",
		"not a url: user:pass@host stays as it was": "not a url: user:pass@host stays as it was",
	}
	for in, want := range cases {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
	r := &Redactor{}
	r.Add("hunter22", "", "ab")
	if got := r.Redact("login hunter22 failed for ab"); got != "login xxxxx failed for ab" {
		t.Errorf("Redactor = %q", got)
	}
	// A password that is an English word is masked where it stands as a
	// credential, not in the words of a message, where masking it would
	// give it away.
	for _, pw := range []string{"password", "user", "wrong"} {
		r := &Redactor{}
		r.Add(pw)
		for in, want := range map[string]string{
			"wrong user or password":                     "wrong user or password",
			"username or password not allowed":           "username or password not allowed",
			"connect to amqp://guest:" + pw + "@h:5672/": "connect to amqp://guest:xxxxx@h:5672/",
			"guest:" + pw + "@rabbit":                    "guest:xxxxx@rabbit",
			`{"password": "` + pw + `"}`:                 `{"password": "xxxxx"}`,
			"password=" + pw + " rejected":               "password=xxxxx rejected",
		} {
			if got := r.Redact(in); got != want {
				t.Errorf("password %q: Redact(%q) = %q, want %q", pw, in, got, want)
			}
		}
	}
	var nilR *Redactor
	if got := nilR.Redact("amqp://u:pw@h/"); got != "amqp://u:xxxxx@h/" {
		t.Errorf("nil Redactor = %q", got)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	if f, w, err := LoadFile(filepath.Join(dir, "missing.yaml")); f != nil || w != nil || err != nil {
		t.Fatalf("missing file: %v %v %v", f, w, err)
	}
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("current_context: a\ncontexts:\n  a:\n    url: amqp://x@h/\n    password: pw\n"), 0o600)
	f, w, err := LoadFile(good)
	if err != nil || len(w) != 0 || f.Contexts["a"].Password != "pw" {
		t.Fatalf("good file: %+v %v %v", f, w, err)
	}
	open := filepath.Join(dir, "open.yaml")
	os.WriteFile(open, []byte("contexts: {}\n"), 0o644)
	os.Chmod(open, 0o644)
	if _, w, _ := LoadFile(open); len(w) != 1 || !strings.Contains(w[0], "chmod 600") {
		t.Fatalf("want a permissions warning, got %v", w)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("contexts:\n  a:\n    url: amqp://h/\n    pasword: typo\n"), 0o600)
	_, _, err = LoadFile(bad)
	if k, _ := fail.KindOf(err); k != fail.Usage || !strings.Contains(err.Error(), "bad.yaml:4:") {
		t.Fatalf("want a usage error naming bad.yaml line 4, got %v", err)
	}
}

// A comma splits node URLs only where another URL starts: a password may
// hold one, and half of it must not end up in an "invalid URL" error.
func TestURLListKeepsCommasInsidePasswords(t *testing.T) {
	s, err := Resolve(Flags{URLs: []string{"amqp://u:pa,ss@h1/v, amqp://u:pa,ss@h2/v,"}}, func(string) (string, bool) { return "", false }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.AMQPURLs) != 2 || s.MgmtPassword != "pa,ss" || !strings.Contains(s.AMQPURLs[1], "@h2") {
		t.Fatalf("urls %v, password %q", s.Public().URLs, s.MgmtPassword)
	}
	_, err = Resolve(Flags{URLs: []string{"rabbit:qq,zz@h1"}}, func(string) (string, bool) { return "", false }, nil)
	if err == nil || strings.Contains(err.Error(), "qq") || strings.Contains(err.Error(), "zz") || !strings.Contains(err.Error(), "xxxxx@h1") {
		t.Fatalf("invalid URL error: %v", err)
	}
}

// A slash too few or too many would make user:password@host the vhost,
// printed everywhere the vhost is; such a URL is refused, masked.
func TestURLWithCredentialsInTheVhostIsRefused(t *testing.T) {
	for _, raw := range []string{"amqp:/ops:Qx7-secret@rabbit/", "amqp:///ops:Qx7-secret@rabbit", "amqps://rabbit/ops:Qx7-secret@x"} {
		_, err := Resolve(Flags{URLs: []string{raw}}, func(string) (string, bool) { return "", false }, nil)
		if k, _ := fail.KindOf(err); k != fail.Usage || strings.Contains(err.Error(), "Qx7-secret") {
			t.Errorf("%s: %v", raw, err)
		}
	}
}
