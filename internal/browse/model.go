package browse

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/spinner"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
)

type screen int

const (
	screenGroups screen = iota
	screenMessages
	screenMessage
)

// Options configure a Model.
type Options struct {
	// Queue names the dead-letter queue, for titles and confirmations.
	Queue  string
	Styles Styles
	// Width and Height are the size to draw at until the terminal tells
	// its own (0: 120×30).
	Width, Height int
}

// group is the messages that share a group key, in queue order.
type group struct {
	Key, Origin, Reason, Error string
	First, Last                time.Time
	members                    []int // indexes into Model.msgs
	marked                     int   // members marked
}

// Model is the browser's state. It is a tea.Model; New makes one, the
// program runs it, and Close stops what it started in the background.
type Model struct {
	src  Source
	opt  Options
	st   Styles
	keys keyMap
	help help.Model
	spin spinner.Model
	vp   viewport.Model

	// ctx bounds every goroutine the model starts (wg counts them);
	// their results come back through events, which one listen command
	// at a time hands to Update.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	events chan tea.Msg

	width, height int

	// gen counts the reads of the queue; a result of an older read is
	// stale.
	gen         int
	loading     bool
	read, total int
	loadErr     error

	msgs    []Message
	marked  []bool
	nMarked int
	groups  []*group // largest first, then by key: dlq show's order
	byKey   map[string]*group

	screen    screen
	gcur      int // cursor among groups
	gtop      int // first group drawn
	cur       *group
	mcur      int // cursor among cur's members
	mtop      int
	detailIdx int
	detail    *Detail
	detailErr error

	confirm  *pending
	busy     string // an action in progress
	status   string
	statusOK bool
	showHelp bool
	log      []string
	partial  bool
}

// pending is an action awaiting its confirmation.
type pending struct {
	kind    string // "replay" or "purge"
	sel     Selection
	archive string
	// dests are the destinations with their message counts, largest
	// first; holds the reasons messages would stay, likewise.
	dests, holds []destCount
}

type destCount struct {
	name string
	n    int
}

// Messages the model's goroutines send back.
type (
	batchMsg struct {
		gen int
		b   Batch
	}
	loadedMsg struct {
		gen int
		err error
	}
	detailMsg struct {
		gen, idx int
		d        Detail
		err      error
	}
	actionMsg struct {
		kind string
		res  Result
		err  error
	}
)

// New makes a browser reading and acting through src. Nothing happens
// until the program calls Init; Close must follow the program's end.
func New(src Source, opt Options) *Model {
	ctx, cancel := context.WithCancel(context.Background())
	if opt.Width <= 0 {
		opt.Width = 120
	}
	if opt.Height <= 0 {
		opt.Height = 30
	}
	m := &Model{
		src: src, opt: opt, st: opt.Styles, keys: newKeyMap(), help: help.New(),
		spin: spinner.New(spinner.WithSpinner(spinner.Dot)),
		ctx:  ctx, cancel: cancel, events: make(chan tea.Msg, 16),
		width: opt.Width, height: opt.Height, byKey: map[string]*group{},
	}
	m.help.Styles.ShortKey = m.st.Bold
	m.help.Styles.FullKey = m.st.Bold
	m.help.Styles.ShortDesc = m.st.Muted
	m.help.Styles.FullDesc = m.st.Muted
	m.help.Styles.ShortSeparator = m.st.Muted
	m.help.Styles.FullSeparator = m.st.Muted
	m.help.Width = m.width
	m.vp = viewport.New(m.width, m.bodyHeight())
	return m
}

// Init starts reading the queue.
func (m *Model) Init() tea.Cmd {
	m.startLoad()
	return tea.Batch(m.listen(), m.spin.Tick)
}

// Close stops the model's goroutines (a read, a detail fetch or an
// action in progress is cancelled: a read returns every message to the
// queue, an action settles what it published) and waits for them.
func (m *Model) Close() {
	m.cancel()
	m.wg.Wait()
}

// Log lists what the session's actions did, one line each, for the
// command to print after the screen is gone.
func (m *Model) Log() []string { return append([]string(nil), m.log...) }

// LoadErr is why the last read of the queue stopped early, if it did.
func (m *Model) LoadErr() error { return m.loadErr }

// Partial reports whether an action left some marked message unmoved.
func (m *Model) Partial() bool { return m.partial }

// listen waits for the next result of a goroutine of the model.
func (m *Model) listen() tea.Cmd {
	events, done := m.events, m.ctx.Done()
	return func() tea.Msg {
		select {
		case e := <-events:
			return e
		case <-done:
			return nil
		}
	}
}

// spawn runs fn on a goroutine the model owns and hands its result to
// Update.
func (m *Model) spawn(fn func(ctx context.Context) tea.Msg) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.send(fn(m.ctx))
	}()
}

func (m *Model) send(msg tea.Msg) bool {
	select {
	case m.events <- msg:
		return true
	case <-m.ctx.Done():
		return false
	}
}

// startLoad forgets what was read and reads the queue again.
func (m *Model) startLoad() {
	m.gen++
	gen := m.gen
	m.loading, m.read, m.total, m.loadErr = true, 0, 0, nil
	m.msgs, m.marked, m.nMarked = nil, nil, 0
	m.groups, m.byKey = nil, map[string]*group{}
	m.screen, m.gcur, m.gtop, m.cur, m.mcur, m.mtop = screenGroups, 0, 0, nil, 0, 0
	m.detail, m.detailErr = nil, nil
	m.spawn(func(ctx context.Context) tea.Msg {
		err := m.src.Load(ctx, func(b Batch) error {
			if !m.send(batchMsg{gen: gen, b: b}) {
				return ctx.Err()
			}
			return nil
		})
		return loadedMsg{gen: gen, err: err}
	})
}

// add takes in a batch, keeping the cursor on the group it was on.
func (m *Model) add(b Batch) {
	m.read, m.total = b.Read, b.Total
	var curKey string
	if m.gcur < len(m.groups) {
		curKey = m.groups[m.gcur].Key
	}
	for _, msg := range b.Messages {
		idx := len(m.msgs)
		g, ok := m.byKey[msg.GroupKey]
		if !ok {
			g = &group{Key: msg.GroupKey, Origin: msg.Origin, Reason: msg.Reason, Error: msg.Error}
			m.byKey[msg.GroupKey] = g
			m.groups = append(m.groups, g)
		}
		// The group holds the fields once; the message needs them no more,
		// and shares the group's copy of the key.
		msg.GroupKey, msg.Origin, msg.Reason, msg.Error = g.Key, "", "", ""
		m.msgs = append(m.msgs, msg)
		m.marked = append(m.marked, false)
		g.members = append(g.members, idx)
		if t := msg.LastDeath; !t.IsZero() {
			if g.First.IsZero() || t.Before(g.First) {
				g.First = t
			}
			if t.After(g.Last) {
				g.Last = t
			}
		}
	}
	sort.SliceStable(m.groups, func(i, j int) bool {
		a, b := m.groups[i], m.groups[j]
		if len(a.members) != len(b.members) {
			return len(a.members) > len(b.members)
		}
		return a.Key < b.Key
	})
	for i, g := range m.groups {
		if g.Key == curKey {
			m.gcur = i
		}
	}
}

// setMark marks or unmarks message i.
func (m *Model) setMark(i int, on bool) {
	if m.marked[i] == on {
		return
	}
	m.marked[i] = on
	d := 1
	if !on {
		d = -1
	}
	m.nMarked += d
	m.byKey[m.msgs[i].GroupKey].marked += d
}

// toggleGroup marks every member of g, or unmarks them all when all are
// marked.
func (m *Model) toggleGroup(g *group) {
	on := g.marked < len(g.members)
	for _, i := range g.members {
		m.setMark(i, on)
	}
}

func (m *Model) unmarkAll() {
	for i := range m.marked {
		m.setMark(i, false)
	}
}

// plan builds the confirmation of an action on the marked set: the ids,
// how many messages in the queue carry them, and where they go.
func (m *Model) plan(kind string) *pending {
	ids := map[string]bool{}
	for i, on := range m.marked {
		if on {
			ids[m.msgs[i].ID] = true
		}
	}
	p := &pending{kind: kind}
	whole := map[string]bool{}
	for _, g := range m.groups {
		if g.marked > 0 && g.marked == len(g.members) {
			p.sel.Groups = append(p.sel.Groups, g.Key)
			whole[g.Key] = true
		}
	}
	dests, holds := map[string]int{}, map[string]int{}
	for i, msg := range m.msgs {
		if !ids[msg.ID] {
			continue
		}
		p.sel.Count++
		if m.marked[i] && !whole[msg.GroupKey] {
			p.sel.Others++
		}
		if msg.Hold != "" {
			holds[msg.Hold]++
		} else {
			dests[msg.Destination]++
		}
	}
	for id := range ids {
		p.sel.IDs = append(p.sel.IDs, id)
	}
	sort.Strings(p.sel.IDs)
	if kind == "purge" {
		p.archive = m.src.PurgeArchive()
		p.dests = []destCount{{name: "archive " + p.archive, n: p.sel.Count}}
		return p
	}
	p.dests, p.holds = byCount(dests), byCount(holds)
	return p
}

// byCount lists counts largest first, then by name.
func byCount(counts map[string]int) []destCount {
	out := make([]destCount, 0, len(counts))
	for name, n := range counts {
		out = append(out, destCount{name: name, n: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].n != out[j].n {
			return out[i].n > out[j].n
		}
		return out[i].name < out[j].name
	})
	return out
}

// bodyHeight is the lines between the title lines and the footer.
func (m *Model) bodyHeight() int {
	h := m.height - 5
	if m.showHelp {
		h -= 5
	}
	return max(h, 1)
}
