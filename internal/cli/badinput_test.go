package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/mqctltest"
	"github.com/mqctl/mqctl/internal/pattern"
)

// badFile is one malformed input file and what the error must say: want
// is a regular expression in which FILE stands for the file's path.
type badFile struct {
	name    string
	content string
	want    string
}

// garbage is random bytes, the same on every run.
func garbage(n int) string {
	r := rand.New(rand.NewPCG(8, 8))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return string(b)
}

// goodRecord is a line every --from reader accepts.
const goodRecord = `{"id":"a","death":{"origin_queue":"email"},"body":"aGk="}`

var (
	badTopologies = []badFile{
		{"empty", "", `FILE:1:1: empty file`},
		{"binary", garbage(4096), `FILE:\d+:\d+: (control character|invalid UTF-8)`},
		{"invalid-utf8", "apiVersion: mqctl/v1\nqueues:\n  - name: \"q\xff\"\n", `FILE:3:13: invalid UTF-8 \(byte 0xff\)`},
		{"syntax", "apiVersion: mqctl/v1\nqueues: [{name: q\n", `FILE:\d+:\d+: `},
		{"wrong-type-list", "apiVersion: mqctl/v1\nqueues: {name: q}\n", `FILE:2:9: queues must be a list, not a mapping`},
		{"wrong-type-int", "apiVersion: mqctl/v1\nqueues:\n  - name: q\n    retry: {max_attempts: three}\n    dead_letter: true\n", `FILE:4:27: max_attempts must be an integer, not a string\n$`},
		{"alias-bomb", "apiVersion: mqctl/v1\nqueues:\n  - name: q\n    arguments:\n      a: &a [x, x]\n      b: [*a, *a]\n", `FILE:6:11: queue arguments: aliases`},
		{"json-array", "[1, 2, 3]\n", `FILE:1:1: the topology file must be a mapping, not a list`},
	}
	badDefinitions = []badFile{
		{"empty", "", `FILE:1:1: empty file`},
		{"binary", garbage(4096), `FILE:\d+:\d+: (control character|invalid UTF-8)`},
		{"invalid-utf8", `{"queues":[{"name":"q` + "\xff" + `"}]}`, `FILE:1:22: invalid UTF-8`},
		{"truncated", `{"rabbit_version":"3.10.8","queues":[{"name":"q"`, `FILE:1:49: invalid JSON: the document ends early`},
		{"syntax", "{\n  \"queues\": [\n    {\"name\": 'q'}\n  ]\n}\n", `FILE:3:14: invalid JSON`},
		{"wrong-type", "{\"rabbit_version\": \"3.10.8\",\n \"queues\": [{\"name\": 5}]}", `FILE:2:22: queues.name: want a string, not a JSON number`},
		{"not-definitions", `{"name": "some other json", "version": 1}`, `FILE:1:1: not a RabbitMQ definitions document`},
		{"array", `[{"name": "q"}]`, `FILE:1:1: not a RabbitMQ definitions document`},
		{"two-documents", `{"queues": []} {"queues": []}`, `FILE:1:16: text after the end of the JSON document`},
		{"yaml-instead", "apiVersion: mqctl/v1\nqueues: []\n", `FILE:1:1: not a RabbitMQ definitions document`},
	}
	badRecords = []badFile{
		{"empty", "", `FILE holds no record \(empty file\)`},
		{"blank-lines", "\n\n  \n", `FILE holds no record`},
		{"binary", garbage(4096), `FILE:1(:\d+)?: `},
		{"invalid-utf8", goodRecord + "\n" + `{"id":"b` + "\xfe" + `"}` + "\n", `FILE:2:9: not a dead-letter record: invalid UTF-8`},
		{"not-json", goodRecord + "\n" + goodRecord + "\nthis is not json\n", `FILE:3:2: not a dead-letter record: invalid JSON: invalid character 'h'`},
		{"wrong-type", `{"id":"a","properties":{"delivery_mode":"persistent"}}`, `FILE:1:52: not a dead-letter record: properties.delivery_mode: want a whole number from 0 to 255, not a JSON string`},
		{"no-id", `{"queue":"email.dlq","body":"aGk="}`, `FILE:1: record has no "id"`},
		{"bad-header-type", `{"id":"a","death":{"origin_queue":"email"},"properties":{"headers":{"n":{"type":"int8","value":300}}}}`, `FILE:1: not a dead-letter record: header "n": type int8 cannot hold 300`},
		{"bad-base64", `{"id":"a","body":"not base64!"}`, `FILE:1: not a dead-letter record: illegal base64`},
		{"json-array", `[{"id":"a"}]`, `FILE:1:1: not a dead-letter record: the document: want an object, not a JSON array`},
	}
	badConfigs = []badFile{
		{"binary", garbage(4096), `invalid config file: FILE:\d+:\d+: (control character|invalid UTF-8)`},
		{"invalid-utf8", "contexts:\n  a:\n    url: amqp://h/\xff\n", `invalid config file: FILE:3:19: invalid UTF-8`},
		{"syntax", "contexts:\n  a: {url: \n", `invalid config file: FILE:\d+:\d+: `},
		{"wrong-type", "contexts:\n  a: {url: [amqp://h/]}\n", `invalid config file: FILE:2:12: want a string, not a list`},
		{"unknown-key", "contexts:\n  a:\n    pasword: x\n", `invalid config file: FILE:3:5: unknown field "pasword"`},
		{"not-a-mapping", "- amqp://h/\n", `invalid config file: FILE:1:1: `},
	}
)

// expect checks that a run exited 2 with an error matching bf.want.
func expect(t *testing.T, what string, r cliResult, path string, bf badFile) {
	t.Helper()
	re := regexp.MustCompile(strings.ReplaceAll(bf.want, "FILE", regexp.QuoteMeta(path)))
	if r.Code != ExitUsage || !re.MatchString(r.Stderr) {
		t.Errorf("%s with %s: exit %d, want 2 and an error matching %s; stderr:\n%s", what, bf.name, r.Code, re, r.Stderr)
	}
	if strings.Contains(r.Stderr, "panic") || strings.Contains(r.Stderr, "goroutine ") {
		t.Errorf("%s with %s crashed:\n%s", what, bf.name, r.Stderr)
	}
}

// TestBadInputFilesExit2AndChangeNothing runs every command that reads a
// file on malformed ones of each kind — empty, binary garbage, invalid
// UTF-8, bad syntax, wrong types, the wrong kind of file — against a
// working broker: each exits 2 with the file, line and column (line for
// JSONL) in the message, and the broker is left exactly as it was.
func TestBadInputFilesExit2AndChangeNothing(t *testing.T) {
	t.Parallel()
	env := dlqFixture(t, 3)
	before := brokerState(t, env)
	state := t.TempDir()
	envv := env.Environ()
	envv["XDG_STATE_HOME"] = state
	dir := t.TempDir()
	write := func(kind string, bf badFile) string {
		p := filepath.Join(dir, kind+"-"+bf.name)
		if err := os.WriteFile(p, []byte(bf.content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, bf := range badTopologies {
		p := write("topology.yaml", bf)
		for _, args := range [][]string{
			{"topology", "validate", "-f", p},
			{"topology", "plan", "-f", p},
			{"topology", "apply", "-f", p},
			{"topology", "apply", "-f", p, "--prune", "--yes"},
			{"topology", "show", "-f", p},
			{"consume", "email", "--topology", p},
		} {
			expect(t, strings.Join(args[:2], " "), runCLI(t, envv, args...), p, bf)
		}
	}
	for _, bf := range badDefinitions {
		p := write("definitions.json", bf)
		out := filepath.Join(dir, "converted-"+bf.name+".yaml")
		expect(t, "topology export --from-definitions", runCLI(t, envv, "topology", "export", "--from-definitions", p, "--out", out), p, bf)
		if _, err := os.Stat(out); err == nil {
			t.Errorf("export --from-definitions %s wrote %s", bf.name, out)
		}
	}
	for _, bf := range badRecords {
		p := write("records.jsonl", bf)
		archive := filepath.Join(dir, "archive-"+bf.name+".jsonl")
		for _, args := range [][]string{
			{"dlq", "replay", "email.dlq", "--from", p, "--yes"},
			{"dlq", "replay", "email.dlq", "--from", p, "--dry-run"},
			{"dlq", "purge", "email.dlq", "--from", p, "--yes", "--archive", archive},
			{"publish", "--from", p},
			{"publish", "--from", p, "--to", "audit"},
		} {
			expect(t, strings.Join(args[:2], " "), runCLI(t, envv, args...), p, bf)
		}
		if _, err := os.Stat(archive); err == nil {
			t.Errorf("purge --from %s created its archive", bf.name)
		}
	}
	for _, bf := range badConfigs {
		p := write("config.yaml", bf)
		for _, args := range [][]string{{"--config", p, "doctor"}, {"--config", p, "backlog"}, {"--config", p, "dlq", "ls"}} {
			r := runCLI(t, map[string]string{}, args...)
			expect(t, args[2], r, p, bf)
		}
		r := runCLI(t, map[string]string{"MQCTL_CONFIG": p}, "doctor")
		expect(t, "MQCTL_CONFIG doctor", r, p, bf)
	}
	// A flag value of the wrong type is exit 2 naming the flag.
	for _, tc := range []struct {
		flag string
		args []string
	}{
		{"--window", []string{"dlq", "replay", "email.dlq", "--all", "--window", "many"}},
		{"--max-ready", []string{"backlog", "check", "--max-ready", "lots"}},
		{"--count", []string{"produce", "--count", "1e3"}},
		{"--timeout", []string{"--timeout", "soon", "doctor"}},
		{"--backoff", []string{"consume", "email", "--backoff", "5s,later"}},
	} {
		r := runCLI(t, envv, tc.args...)
		if r.Code != ExitUsage || !strings.Contains(r.Stderr, tc.flag) {
			t.Errorf("%v: exit %d, want 2 naming %s; stderr:\n%s", tc.args, r.Code, tc.flag, r.Stderr)
		}
	}

	// A required flag left out is exit 2 that says "required".
	for _, tc := range []struct {
		flag string
		args []string
	}{
		{`"count"`, []string{"produce"}},
		{`"out"`, []string{"dlq", "export", "email.dlq"}},
	} {
		r := runCLI(t, envv, tc.args...)
		if r.Code != ExitUsage || !strings.Contains(r.Stderr, "required") || !strings.Contains(r.Stderr, tc.flag) {
			t.Errorf("%v: exit %d, want 2 saying %s is required; stderr:\n%s", tc.args, r.Code, tc.flag, r.Stderr)
		}
	}

	if after := brokerState(t, env); after != before {
		t.Errorf("bad input changed the broker:\nbefore %s\nafter  %s", before, after)
	}
	if entries, _ := os.ReadDir(state); len(entries) != 0 {
		t.Errorf("bad input left replay state behind: %v", entries)
	}
}

// brokerState is what a bad input must not change: the vhost's queues,
// exchanges, bindings and policies, and every queue's exact depth.
func brokerState(t *testing.T, env *brokertest.Env) string {
	t.Helper()
	defs, err := env.Mgmt.ListVhostDefinitions(env.Vhost)
	if err != nil {
		t.Fatal(err)
	}
	depths := map[string]int{}
	for _, q := range *defs.Queues {
		depths[q.Name] = env.QueueDepth(t, q.Name)
	}
	// Khepri (4.x) lists objects in no fixed order: compare sorted lists.
	b, _ := json.Marshal([]any{sortedJSON(defs.Queues), sortedJSON(defs.Exchanges), sortedJSON(defs.Bindings), sortedJSON(defs.Policies), depths})
	return string(b)
}

// sortedJSON is a list's elements as JSON, sorted.
func sortedJSON[T any](list *[]T) []string {
	if list == nil {
		return nil
	}
	out := make([]string, 0, len(*list))
	for _, x := range *list {
		b, _ := json.Marshal(x)
		out = append(out, string(b))
	}
	sort.Strings(out)
	return out
}

// countingWriter writes through a buffer and counts what it wrote.
type countingWriter struct {
	w *bufio.Writer
	n int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += n
	return n, err
}
func (c *countingWriter) WriteString(s string) { c.Write([]byte(s)) }
func (c *countingWriter) Len() int             { return c.n }

// selfRSS is the test process's resident memory, in bytes.
func selfRSS() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb << 10
		}
	}
	return 0
}

// maxRSS is the peak resident memory of a finished child, in bytes (on
// Linux at least the test process's RSS at the fork).
func maxRSS(p *mqctltest.Proc) int64 {
	if ru, ok := p.Cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss * 1024
	}
	return 0
}

// TestHugeInputsExit2WithBoundedMemory runs the real binary on 50 MB
// inputs: files over a parser's size limit are refused without being read
// whole, a 50 MB single line is read once and refused, and a 50 MB JSONL
// file whose last line is bad is streamed (memory independent of its size)
// and refused before anything is published or replayed. Before the limits,
// a 50 MB topology file took 2.9 GB and half a minute to validate.
func TestHugeInputsExit2WithBoundedMemory(t *testing.T) {
	t.Parallel()
	env := dlqFixture(t, 3)
	before := brokerState(t, env)
	dir := t.TempDir()
	const size = 50 << 20
	// Files are written as streams: a child's peak RSS as the kernel
	// reports it includes the test process's own at the fork, which must
	// stay small for the bounds below to mean anything.
	file := func(name string, fill func(w *countingWriter)) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		w := &countingWriter{w: bufio.NewWriterSize(f, 1<<20)}
		fill(w)
		if err := w.w.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bigYAML := file("big.yaml", func(w *countingWriter) {
		w.WriteString("apiVersion: mqctl/v1\nqueues:\n")
		for i := 0; w.Len() < size; i++ {
			fmt.Fprintf(w, "  - name: queue-%07d-%s\n", i, strings.Repeat("x", 40))
		}
	})
	bigDefs := file("big.json", func(w *countingWriter) {
		w.WriteString(`{"rabbit_version":"3.10.8","queues":[`)
		for i := 0; w.Len() < size; i++ {
			fmt.Fprintf(w, `{"name":"queue-%07d","vhost":"/","durable":true,"auto_delete":false,"arguments":{"x-queue-type":"classic"}},`, i)
		}
		w.WriteString(`{"name":"last","vhost":"/","durable":true}]}`)
	})
	bigConfig := file("big-config.yaml", func(w *countingWriter) {
		w.WriteString("contexts:\n")
		for i := 0; w.Len() < 2<<20; i++ {
			fmt.Fprintf(w, "  c%d: {url: amqp://h%d/}\n", i, i)
		}
	})
	longLine := file("long.jsonl", func(w *countingWriter) {
		w.WriteString(`{"id":"a","death":{"origin_queue":"email"},"body":"`)
		chunk := strings.Repeat("!", 1<<20)
		for w.Len() < size {
			w.WriteString(chunk)
		}
		w.WriteString("\"}\n")
	})
	// 50 MB of good records (1 KB bodies) whose last line is broken.
	var good int
	manyLines := file("many.jsonl", func(w *countingWriter) {
		body := bytes.Repeat([]byte("y"), 1000)
		for ; w.Len() < size; good++ {
			r := dlq.Record{ID: fmt.Sprintf("evt-%07d", good), Queue: "email.dlq", Death: dlq.Death{Source: "mqctl", OriginQueue: "email"},
				Properties: dlq.Properties{MessageID: fmt.Sprintf("evt-%07d", good)}, Body: body, BodySize: len(body)}
			b, _ := json.Marshal(r)
			w.Write(append(b, '\n'))
		}
		w.WriteString(`{"id":"broken",` + "\n")
	})
	envv := env.Environ()
	envv["XDG_STATE_HOME"] = t.TempDir()
	debug.FreeOSMemory()
	t.Logf("test process RSS before the runs: %d MiB", selfRSS()>>20)
	for _, tc := range []struct {
		args   []string
		want   string
		maxRSS int64
	}{
		{[]string{"topology", "validate", "-f", bigYAML}, regexp.QuoteMeta(bigYAML) + `: a topology file may be at most 8 MiB; this one holds 50 MiB`, 64 << 20},
		{[]string{"topology", "plan", "-f", bigYAML}, regexp.QuoteMeta(bigYAML) + `: a topology file may be at most 8 MiB`, 64 << 20},
		{[]string{"topology", "export", "--from-definitions", bigDefs}, regexp.QuoteMeta(bigDefs) + `: a definitions file may be at most 32 MiB; this one holds 50 MiB`, 64 << 20},
		{[]string{"--config", bigConfig, "doctor"}, `invalid config file: ` + regexp.QuoteMeta(bigConfig) + `: a config file may be at most 1 MiB`, 64 << 20},
		{[]string{"dlq", "replay", "email.dlq", "--from", longLine, "--yes"}, regexp.QuoteMeta(longLine) + `:1: not a dead-letter record: illegal base64`, 256 << 20},
		{[]string{"publish", "--from", longLine}, regexp.QuoteMeta(longLine) + `:1: not a dead-letter record: illegal base64`, 256 << 20},
		{[]string{"dlq", "replay", "email.dlq", "--from", manyLines, "--yes"}, fmt.Sprintf(`%s:%d:\d+: not a dead-letter record: invalid JSON`, regexp.QuoteMeta(manyLines), good+1), 64 << 20},
		{[]string{"dlq", "purge", "email.dlq", "--from", manyLines, "--yes", "--archive", filepath.Join(dir, "archive.jsonl")}, fmt.Sprintf(`%s:%d:`, regexp.QuoteMeta(manyLines), good+1), 64 << 20},
		{[]string{"publish", "--from", manyLines, "--to", "audit"}, fmt.Sprintf(`%s:%d:`, regexp.QuoteMeta(manyLines), good+1), 64 << 20},
	} {
		parent := selfRSS()
		p := mqctltest.Start(t, envv, tc.args...)
		code := p.Wait(t, 2*time.Minute)
		rss := maxRSS(p)
		t.Logf("mqctl %s %s: exit %d, peak RSS %d MiB (test process %d MiB)", tc.args[0], tc.args[1], code, rss>>20, parent>>20)
		if code != ExitUsage || !regexp.MustCompile(tc.want).MatchString(p.Stderr()) {
			t.Errorf("%v: exit %d, want 2 and %q; stderr:\n%.500s", tc.args, code, tc.want, p.Stderr())
		}
		if rss > tc.maxRSS+parent {
			t.Errorf("%v: peak RSS %d MiB, want at most %d MiB (+%d MiB of the test process's)", tc.args, rss>>20, tc.maxRSS>>20, parent>>20)
		}
	}
	if after := brokerState(t, env); after != before {
		t.Errorf("huge input changed the broker:\nbefore %s\nafter  %s", before, after)
	}
}

// TestConsumeDeadLettersBodiesThatAreNotEventsAndKeepsWorking runs the
// real `mqctl consume` binary (the in-process worker is covered by
// TestWorkerDeadLettersABodyThatIsNotJSON) on a queue where good events
// and junk bodies — HTML, invalid UTF-8, empty, binary, JSON that is no
// event — alternate: every junk body reaches email.dlq at its first
// attempt with a reason, every good event is processed exactly once, and
// the worker never stops until it is told to.
func TestConsumeDeadLettersBodiesThatAreNotEventsAndKeepsWorking(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	declareRegistration(t, env)
	db := filepath.Join(t.TempDir(), "effects.db")
	c := mqctltest.Start(t, env.Environ(), "consume", "email", "--db", db, "--max-attempts", "3", "--backoff", "200ms,400ms", "-o", "json")

	junk := map[string][]byte{
		"html":         []byte("<html><body>sign up</body></html>"),
		"invalid-utf8": []byte("\xff\xfe{\"event_id\":\"x\"}"),
		"empty":        {},
		"binary":       []byte(garbage(64 << 10)),
		"not-an-event": []byte(`{"hello":"world"}`),
		"json-array":   []byte(`[1,2,3]`),
		"truncated":    []byte(`{"event_id":"e1","user_id":"u1"`),
	}
	ch := env.Channel(t)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for name, body := range junk {
		if r := runCLI(t, env.Environ(), "produce", "--count", "1"); r.Code != 0 {
			t.Fatalf("produce: %d %s", r.Code, r.Stderr)
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "user.events", "user.registered", true, false,
			amqp.Publishing{MessageId: "junk-" + name, DeliveryMode: 2, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := dc.WaitContext(context.Background()); !ok || err != nil {
			t.Fatalf("confirm junk %s: %v %v", name, ok, err)
		}
	}
	brokertest.WaitFor(t, "every junk body in email.dlq and every event e-mailed", 60*time.Second, func() bool {
		rows, _ := emails(t, db)
		return env.QueueDepth(t, "email.dlq") == len(junk) && rows == len(junk)
	})
	select {
	case <-c.Done():
		t.Fatalf("consume exited on junk; stderr:\n%s", c.Stderr())
	default:
	}
	got := map[string]bool{}
	dch := env.Channel(t)
	for range len(junk) {
		m, ok, err := dch.Get("email.dlq", true)
		if err != nil || !ok {
			t.Fatalf("get email.dlq: %v %v", ok, err)
		}
		got[m.MessageId] = true
		reason, _ := m.Headers[pattern.HeaderFailureReason].(string)
		if reason == "" || fmt.Sprint(m.Headers[pattern.HeaderAttempt]) != "1" {
			t.Errorf("%s dead-lettered with reason %q after attempt %v; want a reason after attempt 1", m.MessageId, reason, m.Headers[pattern.HeaderAttempt])
		}
		if m.MessageId == "junk-binary" && len(m.Body) != len(junk["binary"]) {
			t.Errorf("binary body changed on its way to the DLQ: %d bytes, want %d", len(m.Body), len(junk["binary"]))
		}
	}
	for name := range junk {
		if !got["junk-"+name] {
			t.Errorf("junk %s not in email.dlq (got %v)", name, got)
		}
	}
	c.Signal(syscall.SIGTERM)
	if code := c.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("consume exited %d on SIGTERM; stderr:\n%s", code, c.Stderr())
	}
	var sum consumeSummary
	if err := json.Unmarshal([]byte(c.Stdout()), &sum); err != nil {
		t.Fatalf("summary: %v: %q", err, c.Stdout())
	}
	rows, distinct := emails(t, db)
	if sum.DeadLettered != len(junk) || sum.Retried != 0 || rows != len(junk) || distinct != len(junk) {
		t.Errorf("summary %+v, %d e-mails for %d events; want %d dead-lettered without retries and %d e-mails", sum, rows, distinct, len(junk), len(junk))
	}
}
