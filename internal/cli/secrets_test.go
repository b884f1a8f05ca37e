package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/mqctltest"
	"github.com/mqctl/mqctl/internal/pattern"
)

// leakCommand is one command line of the password grep; {dir} is the
// run's own directory (exports, journals, archives, databases land there)
// and {dlq} a DLQ of the run's own. Every command runs against the
// working broker with -v -o json; the flags say where else.
type leakCommand struct {
	args []string
	// long-running commands are stopped with SIGTERM after a second.
	long bool
	// table: also with -v and tables, against the working broker.
	table bool
	// failures: also against the dead port and the untrusted TLS server.
	failures bool
	// auth: also with the wrong password (RabbitMQ answers a failed AMQP
	// login after about 3 s, so not every command does).
	auth bool
	// exclusive: peeks every DLQ as their exclusive consumer, so no other
	// dlq command may run meanwhile.
	exclusive bool
	// core: run with every password source; the rest with the password in
	// the URL only (the source changes how the secret is registered for
	// redaction, not each command's error paths).
	core bool
}

var leakCommands = []leakCommand{
	{args: []string{"doctor"}, table: true, failures: true, auth: true, core: true},
	{args: []string{"backlog"}, table: true, failures: true, auth: true, core: true},
	{args: []string{"backlog", "check", "--max-dlq", "1000"}},
	{args: []string{"dlq", "ls"}, table: true, failures: true, exclusive: true},
	{args: []string{"dlq", "show", "{dlq}", "--limit", "3"}, table: true, failures: true, auth: true, core: true},
	{args: []string{"dlq", "export", "{dlq}", "--out", "{dir}/export.jsonl"}, failures: true},
	{args: []string{"dlq", "replay", "{dlq}", "--all", "--dry-run"}},
	{args: []string{"dlq", "replay", "{dlq}", "--id", "evt-01", "--yes", "--journal", "{dir}/journal.jsonl"}, failures: true},
	{args: []string{"dlq", "purge", "{dlq}", "--id", "evt-02", "--yes", "--archive", "{dir}/archive.jsonl"}, failures: true, core: true},
	{args: []string{"publish", "--from", "{records}", "--to", "{dlq}"}, table: true, failures: true, auth: true, core: true},
	{args: []string{"topology", "plan", "-f", "{topology}"}, table: true, failures: true, auth: true, core: true},
	{args: []string{"topology", "apply", "-f", "{topology}"}},
	{args: []string{"topology", "export", "--out", "{dir}/topology.yaml"}, failures: true},
	{args: []string{"bench", "-x", "1", "-y", "1", "-C", "20", "-D", "20", "-s", "100", "--warmup", "0s"}, failures: true},
	{args: []string{"produce", "--count", "3"}, long: true, failures: true, auth: true, core: true}, // retries a dead broker until stopped
	{args: []string{"consume", "email", "--db", "{dir}/effects.db", "--backoff", "1s,1s,1s"}, long: true, failures: true, auth: true},
	{args: []string{"serve", "--listen", "127.0.0.1:0", "--db", "{dir}/serve.db"}, long: true, failures: true},
}

func randomSecret(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// TestNoCommandPrintsThePassword runs a broad set of commands through the
// real binary with a distinctive password given in the AMQP URL, in
// MQCTL_PASSWORD, in a config file context and in --url/--mgmt-url flags,
// against a working broker, a dead port, a wrong password and a TLS
// server whose certificate is not trusted, with -v and -o json (and -v
// with tables against the working broker), and greps everything each run
// printed and every file it wrote (exports, journals, archives, SQLite
// files) for the password, and for user:password in base64 (an HTTP
// basic-auth header): zero. With the redaction disabled it finds 174.
// The password in the URL goes through every command; the other sources
// through a core set that covers each path (AMQP dial, management API,
// DLQ read, archive, publisher, reconnect log, topology).
func TestNoCommandPrintsThePassword(t *testing.T) {
	t.Parallel()
	began := time.Now()
	env := brokertest.New(t)
	mustRun(t, env.Environ(), 0, "topology", "apply", "-f", exampleTopology)

	secret := randomSecret("Pw-")
	wrong := randomSecret("Wrong-")
	userURL, err := amqp.ParseURI(env.CreateUser(t, "leak", secret, "administrator"))
	if err != nil {
		t.Fatal(err)
	}
	user := userURL.Username
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsSrv.Close()
	tlsHost := strings.TrimPrefix(tlsSrv.URL, "https://")

	records := filepath.Join(t.TempDir(), "records.jsonl")
	if err := os.WriteFile(records, []byte(`{"id":"pub-1","death":{"origin_queue":"email"},"body":"aGk="}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	topologyFile := filepath.Join(t.TempDir(), "topology.yaml")
	if b, err := os.ReadFile(exampleTopology); err != nil || os.WriteFile(topologyFile, b, 0o600) != nil {
		t.Fatal(err)
	}

	type target struct {
		name       string
		amqp, mgmt string // scheme://host:port
		password   string
		wantCodes  []int
		tables     bool // run in table mode too
	}
	vhost := "/" + url.PathEscape(env.Vhost)
	// The test broker's own address: MQCTL_TEST_URL may point at another
	// node than the default one (make test-versions).
	broker := "amqp://" + userURL.Host + ":" + strconv.Itoa(userURL.Port)
	targets := []target{
		{name: "working", amqp: broker, mgmt: strings.TrimRight(env.MgmtURL, "/"), password: secret, wantCodes: []int{0, 3}, tables: true},
		{name: "dead-port", amqp: "amqp://127.0.0.1:1", mgmt: "http://127.0.0.1:1", password: secret, wantCodes: []int{1}},
		{name: "wrong-password", amqp: broker, mgmt: strings.TrimRight(env.MgmtURL, "/"), password: wrong, wantCodes: []int{4}},
		{name: "tls-untrusted", amqp: "amqps://" + tlsHost, mgmt: "https://" + tlsHost, password: secret, wantCodes: []int{1}},
	}
	type source struct {
		name  string
		setup func(tg target, dir string) (env map[string]string, flags []string)
	}
	withUser := func(base, pw string) string {
		u, _ := url.Parse(base)
		if pw == "" {
			u.User = url.User(user)
		} else {
			u.User = url.UserPassword(user, pw)
		}
		return u.String()
	}
	sources := []source{
		{"url", func(tg target, _ string) (map[string]string, []string) {
			return map[string]string{"MQCTL_URL": withUser(tg.amqp, tg.password) + vhost, "MQCTL_MGMT_URL": tg.mgmt}, nil
		}},
		{"env", func(tg target, _ string) (map[string]string, []string) {
			return map[string]string{"MQCTL_URL": withUser(tg.amqp, "") + vhost, "MQCTL_MGMT_URL": tg.mgmt, "MQCTL_PASSWORD": tg.password}, nil
		}},
		{"context", func(tg target, dir string) (map[string]string, []string) {
			cfg := filepath.Join(dir, "..", filepath.Base(dir)+"-config.yaml")
			body := fmt.Sprintf("current_context: leak\ncontexts:\n  leak:\n    url: %s\n    mgmt_url: %s\n    password: %s\n    timeout: 5s\n", withUser(tg.amqp, "")+vhost, tg.mgmt, tg.password)
			if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			return map[string]string{"MQCTL_CONFIG": cfg}, nil
		}},
		{"flags", func(tg target, _ string) (map[string]string, []string) {
			return nil, []string{"--url", withUser(tg.amqp, tg.password) + vhost, "--mgmt-url", withUser(tg.mgmt, tg.password)}
		}},
	}
	// Runs go concurrently in goroutines, not parallel subtests: those are
	// capped at GOMAXPROCS (2 here), and most runs wait on the network.
	bin := mqctltest.Binary(t)
	root := t.TempDir()
	sem := make(chan struct{}, 12)
	var dlqMu sync.RWMutex
	var wg sync.WaitGroup
	runs := 0
	for _, tg := range targets {
		for _, src := range sources {
			modes := [][]string{{"-v", "-o", "json"}}
			if tg.tables {
				modes = append(modes, []string{"-v"})
			}
			for _, mode := range modes {
				for i, lc := range leakCommands {
					switch {
					case src.name != "url" && !lc.core,
						len(mode) == 1 && !lc.table,
						(tg.name == "dead-port" || tg.name == "tls-untrusted") && !lc.failures,
						tg.name == "wrong-password" && !lc.auth:
						continue
					}
					// Each run reads and changes a DLQ of its own, so dlq
					// commands can run at once.
					dlqName := fmt.Sprintf("leak.%s.%d.%d.dlq", src.name, len(mode), i)
					if tg.name == "working" && (lc.args[0] == "dlq" || lc.args[0] == "publish") {
						fillDLQ(t, env, dlqName, 5)
					}
					dir, err := os.MkdirTemp(root, "run-")
					if err != nil {
						t.Fatal(err)
					}
					envv, flags := src.setup(tg, dir)
					if envv == nil {
						envv = map[string]string{}
					}
					envv["MQCTL_TIMEOUT"] = "5s"
					envv["HOME"] = dir
					envv["XDG_STATE_HOME"] = filepath.Join(dir, "state")
					envv["XDG_CONFIG_HOME"] = filepath.Join(dir, "config")
					args := append(append(append([]string{}, flags...), mode...), lc.args...)
					for i, a := range args {
						a = strings.ReplaceAll(a, "{dir}", dir)
						a = strings.ReplaceAll(a, "{records}", records)
						a = strings.ReplaceAll(a, "{dlq}", dlqName)
						args[i] = strings.ReplaceAll(a, "{topology}", topologyFile)
					}
					name := fmt.Sprintf("%s/%s/%s", tg.name, src.name, strings.Join(mode, " "))
					runs++
					wg.Add(1)
					go func() {
						defer wg.Done()
						if tg.name == "working" && lc.exclusive {
							dlqMu.Lock()
							defer dlqMu.Unlock()
						} else if tg.name == "working" && lc.args[0] == "dlq" {
							dlqMu.RLock()
							defer dlqMu.RUnlock()
						}
						sem <- struct{}{}
						defer func() { <-sem }()
						out, errOut, code, err := runMqctl(bin, envv, lc.long, args)
						if err != nil {
							t.Errorf("%s: mqctl %v: %v\nstderr: %.1000s", name, args, err, errOut)
							return
						}
						everything := map[string]string{"stdout": out, "stderr": errOut}
						_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
							if err == nil && !d.IsDir() {
								b, _ := os.ReadFile(p)
								everything[p] = string(b)
							}
							return nil
						})
						for where, text := range everything {
							for _, leak := range []string{secret, wrong, base64.StdEncoding.EncodeToString([]byte(user + ":" + tg.password))} {
								if strings.Contains(text, leak) {
									t.Errorf("%s: mqctl %v: %s shows a password (%s…):\n%.2000s", name, args, where, leak[:4], text)
								}
							}
						}
						if !lc.long && !slices.Contains(tg.wantCodes, code) {
							t.Errorf("%s: mqctl %v: exit %d, want one of %v (the run must reach the path under test)\nstdout: %.1000s\nstderr: %.1000s", name, args, code, tg.wantCodes, out, errOut)
						}
					}()
				}
			}
		}
	}
	prepared := time.Now()
	wg.Wait()
	t.Logf("%d runs grepped for the password in %s (setup %s)", runs, time.Since(prepared).Round(time.Millisecond), prepared.Sub(began).Round(time.Millisecond))
}

// runMqctl runs the binary with only env (plus PATH and a config path
// that does not exist, unless env names one); a long-running command is
// stopped with SIGTERM after a second. Every run ends within a minute.
func runMqctl(bin string, env map[string]string, long bool, args []string) (stdout, stderr string, code int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "MQCTL_CONFIG=" + filepath.Join(env["HOME"], "none.yaml")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var o, e mqctltest.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		return "", "", 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if long {
		select {
		case err = <-done:
		case <-time.After(time.Second):
			_ = cmd.Process.Signal(syscall.SIGTERM)
			err = <-done
		}
	} else {
		err = <-done
	}
	if ctx.Err() != nil {
		return o.String(), e.String(), -1, fmt.Errorf("did not exit within a minute")
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode(), nil
}

// fillDLQ declares queue (classic, durable) and puts n messages (evt-01…)
// in it as a consumer dead-letters them from email.
func fillDLQ(t *testing.T, env *brokertest.Env, queue string, n int) {
	t.Helper()
	ch := env.Channel(t)
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "classic"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", queue, true, false, amqp.Publishing{
			MessageId: fmt.Sprintf("evt-%02d", i), DeliveryMode: 2, Body: []byte(`{"event_id":"x"}`),
			Headers: amqp.Table{pattern.HeaderOriginQueue: "email", pattern.HeaderFailureReason: "smtp 550", pattern.HeaderAttempt: int32(4)},
		})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := dc.WaitContext(context.Background()); !ok || err != nil {
			t.Fatalf("confirm: %v %v", ok, err)
		}
	}
}

// TestConfigFileReadableByOthersWarns: a config file others can read gets
// a warning on stderr naming the file, its mode and the fix; a private one
// gets none. The command still runs.
func TestConfigFileReadableByOthersWarns(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o600} {
		cfg := filepath.Join(t.TempDir(), "config.yaml")
		body := fmt.Sprintf("current_context: c\ncontexts:\n  c:\n    url: %s\n    mgmt_url: %s\n", env.AMQPURL, env.MgmtURL)
		if err := os.WriteFile(cfg, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(cfg, mode); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, map[string]string{"MQCTL_CONFIG": cfg}, "backlog", "-o", "json")
		warning := fmt.Sprintf("warning: config file %s is readable by others (mode %04o); it may hold passwords: run `chmod 600 %s`", cfg, mode, cfg)
		if got := strings.Contains(r.Stderr, warning); got != (mode&0o044 != 0) || r.Code != 0 {
			t.Errorf("mode %04o: exit %d, warning shown %v; stderr:\n%s", mode, r.Code, got, r.Stderr)
		}
	}
}
