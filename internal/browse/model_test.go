package browse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"go.uber.org/goleak"

	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSource is a queue in memory: replay and purge remove the selected
// messages, as the real ones do.
type fakeSource struct {
	mu       sync.Mutex
	msgs     []Message
	batch    int
	details  map[string]Detail
	replays  []Selection
	purges   []Selection
	archives []string
	loads    int
	// hold, when set, blocks Load after its first batch until closed.
	hold chan struct{}
}

func (f *fakeSource) Load(ctx context.Context, emit func(Batch) error) error {
	f.mu.Lock()
	msgs := slices.Clone(f.msgs)
	f.loads++
	hold := f.hold
	f.mu.Unlock()
	size := max(f.batch, 1)
	for i := 0; i < len(msgs); i += size {
		j := min(i+size, len(msgs))
		if err := emit(Batch{Messages: slices.Clone(msgs[i:j]), Read: j, Total: len(msgs)}); err != nil {
			return err
		}
		if hold != nil {
			select {
			case <-hold:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

func (f *fakeSource) Detail(_ context.Context, id string) (Detail, error) {
	d, ok := f.details[id]
	if !ok {
		return Detail{}, errors.New("no such message")
	}
	return d, nil
}

func (f *fakeSource) remove(sel Selection) {
	f.msgs = slices.DeleteFunc(f.msgs, func(m Message) bool { return slices.Contains(sel.IDs, m.ID) })
}

func (f *fakeSource) Replay(_ context.Context, sel Selection) (Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replays = append(f.replays, sel)
	f.remove(sel)
	return Result{Summary: fmt.Sprintf("replayed %d", sel.Count)}, nil
}

func (f *fakeSource) Purge(_ context.Context, sel Selection, archive string) (Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.purges = append(f.purges, sel)
	f.archives = append(f.archives, archive)
	f.remove(sel)
	return Result{Summary: fmt.Sprintf("purged %d into %s", sel.Count, archive)}, nil
}

func (f *fakeSource) PurgeArchive() string { return "/tmp/email.dlq.purged.20260501T030000Z.jsonl" }

// mixedQueue: group t (timeouts, 3, to email), group p (provider, 2:
// one to email, one to sms), group x (expired, 1, to push).
func mixedQueue() *fakeSource {
	at := time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC)
	msg := func(id, key, origin, reason, errText string, i int) Message {
		return Message{ID: id, GroupKey: key, Origin: origin, Reason: reason, Error: errText,
			Cause: reason + ": " + errText, Deaths: 1, LastDeath: at.Add(time.Duration(i) * time.Minute),
			Destination: origin, Size: 40 + i}
	}
	f := &fakeSource{batch: 2, msgs: []Message{
		msg("t-1", "aaaa0001", "email", "failed", "timeout after <n>s", 0),
		msg("p-1", "bbbb0002", "email", "failed", "provider unavailable", 1),
		msg("t-2", "aaaa0001", "email", "failed", "timeout after <n>s", 2),
		msg("x-1", "cccc0003", "push", "expired", "", 3),
		msg("p-2", "bbbb0002", "email", "failed", "provider unavailable", 4),
		msg("t-3", "aaaa0001", "email", "failed", "timeout after <n>s", 5),
	}}
	f.msgs[4].Destination = "sms" // claims another origin than its group
	f.details = map[string]Detail{"t-2": {
		ID: "t-2",
		Deaths: []Death{
			{Time: at, Queue: "email", Reason: "failed", Error: "timeout after 10s", ErrorClass: "*net.OpError", Count: 3},
			{Time: at.Add(time.Hour), Queue: "email", Reason: "failed", Error: "timeout after 12s", Count: 1, Life: 1},
		},
		Properties: []Field{{"content_type", "application/json"}},
		Headers:    []Field{{"tenant", "acme"}}, HiddenHeaders: 4,
		Body: []byte(`{"order":{"id":4000,"total":12.5}}`), BodySize: 34,
	}}
	return f
}

func newTestModel(t *testing.T, src Source) *Model {
	t.Helper()
	ios, _, _, _ := iostreams.Test()
	m := New(src, Options{Queue: "email.dlq", Styles: NewStyles(output.NewStyles(ios, io.Discard)), Width: 120, Height: 30})
	t.Cleanup(m.Close)
	m.Init()
	return m
}

// pump hands the next result of the model's goroutines to Update.
func pump(t *testing.T, m *Model) {
	t.Helper()
	select {
	case e := <-m.events:
		m.Update(e)
	case <-time.After(time.Minute):
		t.Fatal("no result from the model's goroutines within a minute")
	}
}

func waitLoaded(t *testing.T, m *Model) {
	t.Helper()
	for m.loading {
		pump(t, m)
	}
}

func press(m *Model, keys ...string) {
	for _, k := range keys {
		var msg tea.KeyMsg
		switch k {
		case "enter":
			msg = tea.KeyMsg{Type: tea.KeyEnter}
		case "esc":
			msg = tea.KeyMsg{Type: tea.KeyEsc}
		case "backspace":
			msg = tea.KeyMsg{Type: tea.KeyBackspace}
		case "down":
			msg = tea.KeyMsg{Type: tea.KeyDown}
		case "up":
			msg = tea.KeyMsg{Type: tea.KeyUp}
		case " ":
			msg = tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}}
		default:
			msg = tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
		}
		m.Update(msg)
	}
}

func wantIn(t *testing.T, view string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(view, p) {
			t.Errorf("view lacks %q:\n%s", p, view)
		}
	}
}

func TestGroupsMessagesAndOneMessage(t *testing.T) {
	m := newTestModel(t, mixedQueue())
	waitLoaded(t, m)
	v := m.View()
	wantIn(t, v, "mqctl dlq browse email.dlq", "6 message(s) in 3 group(s)", "0 marked")
	// Largest group first, as dlq show --groups orders them.
	lines := strings.Split(v, "\n")
	if !strings.HasPrefix(lines[3], ">   aaaa0001       3 email") || !strings.Contains(lines[4], "bbbb0002       2") ||
		!strings.Contains(lines[5], "cccc0003       1 push") {
		t.Errorf("group rows:\n%s", v)
	}
	if lines := strings.Split(v, "\n"); len(lines) != 30 {
		t.Errorf("view has %d lines, want the terminal's 30", len(lines))
	}

	press(m, "jj", "k") // on bbbb0002; fast typing arrives as one run of runes
	press(m, "enter")
	v = m.View()
	wantIn(t, v, "groups › group bbbb0002 (email · failed · provider unavailable)", ">   p-1", "    p-2", "sms")
	press(m, "esc")
	press(m, "up", "enter", "j", "enter") // group aaaa0001, message t-2
	if m.screen != screenMessage || m.msgs[m.detailIdx].ID != "t-2" {
		t.Fatalf("screen %d on %q, want the message t-2", m.screen, m.msgs[m.detailIdx].ID)
	}
	wantIn(t, m.View(), "fetching the message")
	pump(t, m)
	v = m.View()
	wantIn(t, v, "groups › group aaaa0001 (email · failed · timeout after <n>s) › t-2",
		"deaths, oldest first, newest last",
		"1  2026-05-01 03:00:00  email            failed ×3", "timeout after 10s  [*net.OpError]",
		"— replayed (life 2) —", "2  2026-05-01 04:00:00  email            failed",
		"content_type       application/json", "tenant             acme", "4 death header(s) not shown",
		"body (34 bytes, JSON)", "{\n  \"order\": {\n    \"id\": 4000,")
	press(m, "backspace")
	if m.screen != screenMessages || m.mcur != 1 {
		t.Errorf("back from the message: screen %d cursor %d", m.screen, m.mcur)
	}
	press(m, "backspace")
	if m.screen != screenGroups || m.gcur != 0 {
		t.Errorf("back from the group: screen %d cursor %d", m.screen, m.gcur)
	}
	press(m, "?")
	wantIn(t, m.View(), "mark group", "unmark all", "purge marked", "page down")
}

func TestMarkGroupThenReplayConfirmsCountAndDestinations(t *testing.T) {
	src := mixedQueue()
	m := newTestModel(t, src)
	waitLoaded(t, m)
	press(m, "r")
	wantIn(t, m.View(), "nothing marked")

	press(m, "j", "a") // group bbbb0002 whole
	wantIn(t, m.View(), "2 marked", "x bbbb0002")
	press(m, "k", "enter", " ") // and t-1 of group aaaa0001
	wantIn(t, m.View(), "3 marked", "x t-1")
	press(m, "esc")
	wantIn(t, m.View(), "~ aaaa0001")

	press(m, "r")
	v := m.View()
	wantIn(t, v, "Replay 3 marked message(s) from email.dlq?", "→ email  2", "→ sms    1",
		"acked only after the broker confirmed", "y replay")
	press(m, "n")
	wantIn(t, m.View(), "cancelled; nothing was changed", "3 marked")
	if len(src.replays) != 0 {
		t.Fatal("replayed after a cancel")
	}

	press(m, "r", "y")
	wantIn(t, m.View(), "replaying 3 message(s)")
	press(m, "q") // not while an action runs
	if m.busy == "" {
		t.Fatal("no action in progress")
	}
	pump(t, m) // the replay's result, then the new read
	waitLoaded(t, m)
	if len(src.replays) != 1 {
		t.Fatalf("replays: %+v", src.replays)
	}
	sel := src.replays[0]
	if strings.Join(sel.IDs, ",") != "p-1,p-2,t-1" || sel.Count != 3 {
		t.Errorf("selection %+v", sel)
	}
	if got := sel.String(); got != "browse: 3 marked (group bbbb0002 + 1 more)" {
		t.Errorf("selection text %q", got)
	}
	v = m.View()
	wantIn(t, v, "replayed 3", "3 message(s) in 2 group(s)", "0 marked")
	if src.loads != 2 {
		t.Errorf("%d reads of the queue, want 2 (once more after the replay)", src.loads)
	}
	if log := m.Log(); len(log) != 1 || log[0] != "replayed 3" {
		t.Errorf("log %q", log)
	}
}

func TestPurgeConfirmationNamesTheArchive(t *testing.T) {
	src := mixedQueue()
	m := newTestModel(t, src)
	waitLoaded(t, m)
	press(m, "G", " ") // the last group, cccc0003, whole
	press(m, "p")
	wantIn(t, m.View(), "Purge 1 marked message(s) from email.dlq?",
		"→ archive /tmp/email.dlq.purged.20260501T030000Z.jsonl  1", "flushed to disk")
	press(m, "y")
	pump(t, m)
	waitLoaded(t, m)
	if len(src.purges) != 1 || src.purges[0].String() != "browse: 1 marked (group cccc0003)" ||
		src.archives[0] != "/tmp/email.dlq.purged.20260501T030000Z.jsonl" {
		t.Errorf("purges %+v into %v", src.purges, src.archives)
	}
}

func TestGroupToggleAndUnmark(t *testing.T) {
	m := newTestModel(t, mixedQueue())
	waitLoaded(t, m)
	press(m, "a")
	if m.nMarked != 3 {
		t.Fatalf("marked %d after a", m.nMarked)
	}
	press(m, "a")
	if m.nMarked != 0 {
		t.Fatalf("marked %d after a twice", m.nMarked)
	}
	press(m, "enter", " ", "a") // one marked, then a marks the rest
	if m.nMarked != 3 || m.cur.marked != 3 {
		t.Fatalf("marked %d after space, a", m.nMarked)
	}
	press(m, "u")
	if m.nMarked != 0 || m.cur.marked != 0 {
		t.Fatalf("marked %d after u", m.nMarked)
	}
}

func TestActionsWaitForTheRead(t *testing.T) {
	src := mixedQueue()
	src.hold = make(chan struct{})
	m := newTestModel(t, src)
	pump(t, m) // first batch: t-1, p-1
	v := m.View()
	wantIn(t, v, "reading 2 of 6 message(s)… none consumed")
	press(m, "a", "r")
	wantIn(t, m.View(), "still reading the queue")
	if m.confirm != nil {
		t.Fatal("confirmation while reading")
	}
	close(src.hold)
	waitLoaded(t, m)
	wantIn(t, m.View(), "6 message(s) in 3 group(s)")
}

func TestCloseStopsARead(t *testing.T) {
	src := mixedQueue()
	src.hold = make(chan struct{})
	m := newTestModel(t, src)
	pump(t, m)
	m.Close() // goleak in TestMain checks the reader ended
}

func TestFormatBody(t *testing.T) {
	for _, c := range []struct {
		body       string
		kind, text string
	}{
		{`{"a":[1,2]}`, "JSON", "{\n  \"a\": [\n    1,\n    2\n  ]\n}"},
		{"plain text", "hex", "00000000  70 6c 61 69 6e 20 74 65  78 74                    |plain text|"},
		{"\x00\x01\xff", "hex", "00000000  00 01 ff                                          |...|"},
		{"", "empty", ""},
	} {
		kind, text := FormatBody([]byte(c.body))
		if kind != c.kind || text != c.text {
			t.Errorf("FormatBody(%q) = %s\n%s\nwant %s\n%s", c.body, kind, text, c.kind, c.text)
		}
	}
}

func TestSelectionText(t *testing.T) {
	for _, c := range []struct {
		sel  Selection
		want string
	}{
		{Selection{Count: 12, Groups: []string{"3fa2c9d1"}}, "browse: 12 marked (group 3fa2c9d1)"},
		{Selection{Count: 14, Groups: []string{"a", "b"}}, "browse: 14 marked (groups a, b)"},
		{Selection{Count: 2, Others: 2}, "browse: 2 marked (single messages)"},
	} {
		if got := c.sel.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.sel, got, c.want)
		}
	}
}

// BenchmarkView100k draws the groups and a group's messages over a queue
// of 100,000 dead letters: the cost of a key press at that size.
func BenchmarkView100k(b *testing.B) {
	f := &fakeSource{batch: 500}
	for i := range 100_000 {
		f.msgs = append(f.msgs, Message{ID: fmt.Sprintf("evt-%06d", i), GroupKey: fmt.Sprintf("k%d", i%5),
			Origin: "email", Reason: "failed", Error: fmt.Sprintf("kind %d", i%5), Cause: "failed", Deaths: 1,
			LastDeath: time.Unix(int64(i), 0), Destination: "email", Size: 1000})
	}
	ios, _, _, _ := iostreams.Test()
	m := New(f, Options{Queue: "email.dlq", Styles: NewStyles(output.NewStyles(ios, io.Discard))})
	defer m.Close()
	m.Init()
	for m.loading {
		m.Update(<-m.events)
	}
	b.ResetTimer()
	for range b.N {
		press(m, "j", "enter", "G")
		_ = m.View()
		press(m, "esc")
		_ = m.View()
	}
}

func TestReplayConfirmationListsWhatStays(t *testing.T) {
	src := mixedQueue()
	src.msgs[3].Hold = "claims origin push, which does not dead-letter into email.dlq"
	m := newTestModel(t, src)
	waitLoaded(t, m)
	press(m, "G", "a", "g", "enter", " ", "r")
	wantIn(t, m.View(), "Replay 2 marked message(s) from email.dlq?", "→ email  1",
		"Stay in email.dlq, skipped by replay's guard rails:",
		"✗ claims origin push, which does not dead-letter into email.dlq  1")
}
