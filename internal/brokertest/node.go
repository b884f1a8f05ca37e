package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/config"
)

// Node is a private RabbitMQ node for tests that stop, kill or restart the
// broker: its own name, free ports, data directory and cookie, so the
// shared broker on 5672 is never touched. It needs the rabbitmq-server
// package and root (or a user that may run it).
//
// With MQCTL_NODE_ROOT set to a chroot holding another RabbitMQ release
// (scripts/broker-version.sh builds them), nodes run that release from the
// chroot instead, registering with the epmd on MQCTL_NODE_EPMD_PORT so they
// never meet the host's nodes. Paths in NodeOptions.Config are then read
// inside the chroot.
type Node struct {
	Name     string
	Port     int // AMQP
	MgmtPort int // 0 unless NodeOptions.Management
	DistPort int

	dir  string // on the host
	root string // the chroot the node runs in, "" for the host's RabbitMQ
	env  []string
	cmd  *exec.Cmd
	done chan struct{}
}

// NodeOptions change how a private node is set up.
type NodeOptions struct {
	// Management enables rabbitmq_management on a free port (MgmtPort).
	Management bool
	// Plugins are enabled besides management (e.g. rabbitmq_shovel).
	Plugins []string
	// Config holds extra rabbitmq.conf lines (TLS listeners, tick time…).
	Config string
	// Cookie is the Erlang cookie; nodes of one cluster share it.
	Cookie string
}

const (
	nodeServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	nodeCtl    = "/usr/lib/rabbitmq/bin/rabbitmqctl"
	nodePlugin = "/usr/lib/rabbitmq/bin/rabbitmq-plugins"
)

// StartNodeWith boots a private node set up as opts says (about 10 s) and
// stops it, removing its data, when t ends. Where no node can
// be started (no rabbitmq-server package) the test is skipped, except in CI
// (CI set), where that is a failure like any missing broker.
func StartNodeWith(t testing.TB, opts NodeOptions) *Node {
	t.Helper()
	n := newNode(t, opts)
	n.Start(t)
	return n
}

// newNode prepares a node's directory, ports and environment without
// starting it.
func newNode(t testing.TB, opts NodeOptions) *Node {
	t.Helper()
	if os.Getenv("MQCTL_SKIP_INTEGRATION") == "1" {
		t.Skip("MQCTL_SKIP_INTEGRATION=1: integration test skipped")
	}
	root := os.Getenv("MQCTL_NODE_ROOT")
	if _, err := os.Stat(root + nodeServer); err != nil {
		if os.Getenv("CI") != "" || root != "" {
			t.Fatalf("no %s: a private RabbitMQ node needs the rabbitmq-server package (run `make broker` as root)", root+nodeServer)
		}
		t.Skipf("no %s: a private RabbitMQ node needs the rabbitmq-server package", nodeServer)
	}
	tmp := ""
	if root != "" {
		tmp = filepath.Join(root, "tmp")
		// The node reads its memory use from /proc; scripts/broker-version.sh
		// mounts it while its own node runs, a test may come without.
		if _, err := os.Stat(filepath.Join(root, "proc", "self")); err != nil {
			if out, err := exec.Command("mount", "-t", "proc", "proc", filepath.Join(root, "proc")).CombinedOutput(); err != nil {
				t.Fatalf("mount /proc in %s: %v: %s (run `scripts/broker-version.sh up VERSION` as root)", root, err, out)
			}
		}
	}
	dir, err := os.MkdirTemp(tmp, "mqctl-node-")
	if err != nil {
		t.Fatal(err)
	}
	// in is where the node sees its directory: inside the chroot, if any.
	in := strings.TrimPrefix(dir, root)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	n := &Node{Name: "mqctltest" + hex.EncodeToString(b) + "@localhost", Port: FreePort(t), DistPort: FreePort(t), dir: dir, root: root}
	for _, d := range []string{"home", "mnesia", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cookie := opts.Cookie
	if cookie == "" {
		cookie = "mqctltest" + hex.EncodeToString(b)
	}
	if err := os.WriteFile(filepath.Join(dir, "home", ".erlang.cookie"), []byte(cookie), 0o400); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("listeners.tcp.default = %d\nloopback_users = none\n", n.Port)
	plugins := opts.Plugins
	if opts.Management {
		n.MgmtPort = FreePort(t)
		conf += fmt.Sprintf("management.tcp.port = %d\n", n.MgmtPort)
		plugins = append([]string{"rabbitmq_management"}, plugins...)
	}
	conf += opts.Config
	if err := os.WriteFile(filepath.Join(dir, "rabbitmq.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	enabled := "[" + strings.Join(plugins, ",") + "].\n"
	if err := os.WriteFile(filepath.Join(dir, "enabled_plugins"), []byte(enabled), 0o600); err != nil {
		t.Fatal(err)
	}
	n.env = []string{
		"HOME=" + filepath.Join(in, "home"),
		"RABBITMQ_NODENAME=" + n.Name,
		fmt.Sprintf("RABBITMQ_NODE_PORT=%d", n.Port),
		fmt.Sprintf("RABBITMQ_DIST_PORT=%d", n.DistPort),
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(in, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(in, "log"),
		"RABBITMQ_CONFIG_FILE=" + filepath.Join(in, "rabbitmq.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(in, "enabled_plugins"),
		"RABBITMQ_CONF_ENV_FILE=/dev/null",
		"PATH=" + os.Getenv("PATH"),
	}
	if root != "" {
		n.env[len(n.env)-1] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
		n.env = append(n.env, "LC_ALL=C.UTF-8")
		if p := os.Getenv("MQCTL_NODE_EPMD_PORT"); p != "" {
			n.env = append(n.env, "ERL_EPMD_PORT="+p)
		}
	}
	t.Cleanup(func() {
		n.Kill(t)
		_ = os.RemoveAll(dir)
	})
	return n
}

// URL is the node's AMQP URL (guest, default vhost).
func (n *Node) URL() string { return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", n.Port) }

// MgmtURL is the node's management API base URL ("" without management).
func (n *Node) MgmtURL() string {
	if n.MgmtPort == 0 {
		return ""
	}
	return fmt.Sprintf("http://127.0.0.1:%d", n.MgmtPort)
}

// Dir is the node's private directory (config, data, logs).
func (n *Node) Dir() string { return n.dir }

// Running reports whether the node's OS process is alive (it may still be
// frozen by Pause).
func (n *Node) Running() bool { return n.cmd != nil }

// Settings are connection settings for the node, as from flags.
func (n *Node) Settings(t testing.TB) config.Settings {
	t.Helper()
	s, err := config.Resolve(config.Flags{URLs: []string{n.URL()}, Timeout: 5 * time.Second}, func(string) (string, bool) { return "", false }, nil)
	if err != nil {
		t.Fatalf("settings: %v", err)
	}
	return s
}

// Start boots the node (again) and waits until AMQP answers.
func (n *Node) Start(t testing.TB) {
	t.Helper()
	cmd := n.command(context.Background(), nodeServer)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, err := os.OpenFile(filepath.Join(n.dir, "server.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start private node: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	n.cmd, n.done = cmd, done
	deadline := time.Now().Add(90 * time.Second)
	for {
		err := n.answers()
		if err == nil {
			if n.root != "" {
				t.Logf("private node %s runs RabbitMQ from %s", n.Name, n.root)
			}
			return
		}
		select {
		case <-done:
			t.Fatalf("private node %s exited during boot; see %s", n.Name, n.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("private node %s did not answer within 90s: %v; %s", n.Name, err, n.log())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Stop shuts the node down cleanly (rabbitmqctl stop) and waits for it.
func (n *Node) Stop(t testing.TB) {
	t.Helper()
	if n.cmd == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ctl := n.command(ctx, nodeCtl, "-n", n.Name, "stop")
	if out, err := ctl.CombinedOutput(); err != nil {
		t.Logf("rabbitmqctl stop %s: %v: %s; killing it", n.Name, err, out)
		n.Kill(t)
		return
	}
	select {
	case <-n.done:
	case <-ctx.Done():
		n.Kill(t)
	}
	n.cmd = nil
}

// Kill ends the node at once (SIGKILL to its process group), as a crash.
func (n *Node) Kill(t testing.TB) {
	t.Helper()
	if n.cmd == nil {
		return
	}
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		t.Errorf("private node %s did not die within 30s of SIGKILL", n.Name)
	}
	n.cmd = nil
}

// answers checks that AMQP (and the management API, when enabled) answer.
func (n *Node) answers() error {
	conn, err := amqp.DialConfig(n.URL(), amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
	if err != nil {
		return err
	}
	_ = conn.Close()
	if n.MgmtPort == 0 {
		return nil
	}
	req, _ := http.NewRequest(http.MethodGet, n.MgmtURL()+"/api/overview", nil)
	req.SetBasicAuth("guest", "guest")
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("management API: %s", resp.Status)
	}
	return nil
}

// Ctl runs rabbitmqctl against the node and returns its output, failing
// the test when it fails.
func (n *Node) Ctl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.TryCtl(args...)
	if err != nil {
		t.Fatalf("rabbitmqctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

// ctlBound bounds one rabbitmqctl or rabbitmq-plugins run. Each boots an
// Erlang VM and talks to the node; on a two-core machine kept busy by
// other work, enabling the management plugin took more than a minute.
// The bound only catches a hang, so it is generous.
const ctlBound = 3 * time.Minute

// TryCtl runs rabbitmqctl against the node (bounded by ctlBound).
func (n *Node) TryCtl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ctlBound)
	defer cancel()
	ctl := n.command(ctx, nodeCtl, append([]string{"-n", n.Name}, args...)...)
	out, err := ctl.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Plugins runs rabbitmq-plugins against the running node (enable and
// disable act online), failing the test when it fails.
func (n *Node) Plugins(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ctlBound)
	defer cancel()
	cmd := n.command(ctx, nodePlugin, append([]string{"-n", n.Name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmq-plugins %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// Pause freezes the node's processes (SIGSTOP), as a VM that stops being
// scheduled; Resume lets them run again.
func (n *Node) Pause(t testing.TB) {
	t.Helper()
	if n.cmd != nil {
		_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGSTOP)
	}
}

// Resume undoes Pause (SIGCONT).
func (n *Node) Resume(t testing.TB) {
	t.Helper()
	if n.cmd != nil {
		_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGCONT)
	}
}

// StartCluster boots size nodes sharing a cookie and joins the others to
// the first. Boots run one after another: two cores cannot boot three
// Erlang VMs at once much faster, and joins need the first node up.
func StartCluster(t testing.TB, size int, opts NodeOptions) []*Node {
	t.Helper()
	if opts.Cookie == "" {
		opts.Cookie = "mqctlcluster" + randHex(6)
	}
	nodes := make([]*Node, size)
	for i := range nodes {
		nodes[i] = newNode(t, opts)
		nodes[i].Start(t)
	}
	for _, n := range nodes[1:] {
		n.Ctl(t, "stop_app")
		n.Ctl(t, "reset")
		n.Ctl(t, "join_cluster", nodes[0].Name)
		n.Ctl(t, "start_app")
		n.Ctl(t, "await_startup")
	}
	return nodes
}

// command runs one of RabbitMQ's scripts for the node, in its chroot if it
// has one; chroot execs the script, so the process group is the node's.
func (n *Node) command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if n.root != "" {
		cmd = exec.CommandContext(ctx, "chroot", append([]string{n.root, bin}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, bin, args...)
	}
	cmd.Env = n.env
	return cmd
}

func (n *Node) log() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "server.out"))
	s := string(b)
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return strings.TrimSpace(s)
}

// FreePort returns a TCP port nobody listens on right now and that no
// other FreePort of this process returned. A private node binds its
// ports seconds later, so the port is drawn below the kernel's ephemeral
// range (where ":0" and every outgoing connection take theirs) and never
// handed out twice: a TLS test once found another test's plain node on
// "its" port.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := 20000 + mathrand.IntN(12000)
		if portsTaken[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		portsTaken[port] = true
		return port
	}
	t.Fatal("no free TCP port found between 20000 and 32000")
	return 0
}

var (
	portsMu    sync.Mutex
	portsTaken = map[int]bool{}
)

// Channel opens a channel on a fresh connection to the node; the
// connection is closed when t ends.
func (n *Node) Channel(t testing.TB) *amqp.Channel {
	t.Helper()
	conn, err := amqp.DialConfig(n.URL(), amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		t.Fatalf("dial private node: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel on private node: %v", err)
	}
	return ch
}
