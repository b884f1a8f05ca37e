package browse

import (
	"context"
	"errors"
	"fmt"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/spinner"
	tea "github.com/charmbracelet/bubbletea"
)

// Update handles keys, the terminal's size and what the model's
// goroutines report.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.help.Width = msg.Width
		m.resize()
		return m, nil
	case spinner.TickMsg:
		if !m.loading && m.busy == "" {
			return m, nil // let the ticks stop
		}
		var cmd tea.Cmd
		m.spin, cmd = m.spin.Update(msg)
		return m, cmd
	case batchMsg:
		if msg.gen == m.gen {
			m.add(msg.b)
		}
		return m, m.listen()
	case loadedMsg:
		if msg.gen == m.gen {
			m.loading = false
			if msg.err != nil && !errors.Is(msg.err, context.Canceled) {
				m.loadErr = msg.err
			}
		}
		return m, m.listen()
	case detailMsg:
		if msg.gen == m.gen && msg.idx == m.detailIdx && m.screen == screenMessage {
			m.detail, m.detailErr = &msg.d, msg.err
			m.renderDetail()
		}
		return m, m.listen()
	case actionMsg:
		return m, tea.Batch(m.finished(msg), m.listen())
	case tea.KeyMsg:
		if msg.Type == tea.KeyRunes && len(msg.Runes) > 1 && !msg.Paste {
			// Keys typed faster than the terminal is read arrive as one
			// run of runes ("jj"): each is a key press of its own.
			var cmds []tea.Cmd
			for _, r := range msg.Runes {
				cmds = append(cmds, m.key(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}}))
			}
			return m, tea.Batch(cmds...)
		}
		return m, m.key(msg)
	}
	return m, nil
}

// finished reports an action's result and reads the queue again.
func (m *Model) finished(a actionMsg) tea.Cmd {
	m.busy = ""
	switch {
	case a.err != nil:
		m.status, m.statusOK = fmt.Sprintf("%s: %v", a.kind, a.err), false
		m.partial = true
		if a.res.Summary != "" {
			m.status = a.res.Summary + "; " + m.status
		}
	default:
		m.status, m.statusOK = a.res.Summary, !a.res.Partial
		m.partial = m.partial || a.res.Partial
	}
	m.log = append(m.log, m.status)
	m.startLoad()
	return m.spin.Tick
}

func (m *Model) key(msg tea.KeyMsg) tea.Cmd {
	k := m.keys
	if m.confirm != nil {
		switch {
		case key.Matches(msg, k.Yes):
			return m.act()
		case key.Matches(msg, k.No):
			m.confirm = nil
			m.status, m.statusOK = "cancelled; nothing was changed", true
		}
		return nil
	}
	switch {
	case key.Matches(msg, k.Quit):
		if m.busy != "" {
			m.status, m.statusOK = m.busy+": wait for it to finish", false
			return nil
		}
		return tea.Quit
	case key.Matches(msg, k.Help):
		m.showHelp = !m.showHelp
		m.resize()
		return nil
	case key.Matches(msg, k.Replay):
		m.ask("replay")
		return nil
	case key.Matches(msg, k.Purge):
		m.ask("purge")
		return nil
	case key.Matches(msg, k.Unmark):
		m.unmarkAll()
		return nil
	}
	switch m.screen {
	case screenGroups:
		m.keyGroups(msg)
	case screenMessages:
		return m.keyMessages(msg)
	case screenMessage:
		return m.keyMessage(msg)
	}
	return nil
}

// ask opens the confirmation of an action on the marked set, when one
// can start.
func (m *Model) ask(kind string) {
	switch {
	case m.busy != "":
		m.status, m.statusOK = m.busy+": wait for it to finish", false
	case m.loading:
		m.status, m.statusOK = "still reading the queue: "+kind+" once it is read", false
	case m.nMarked == 0:
		m.status, m.statusOK = "nothing marked: space marks a message, a marks a whole group", false
	default:
		m.confirm = m.plan(kind)
	}
}

// act starts the confirmed action.
func (m *Model) act() tea.Cmd {
	p := m.confirm
	m.confirm = nil
	verb := map[string]string{"replay": "replaying", "purge": "purging"}[p.kind]
	m.busy = fmt.Sprintf("%s %d message(s)", verb, p.sel.Count)
	m.status = ""
	m.spawn(func(ctx context.Context) tea.Msg {
		var res Result
		var err error
		if p.kind == "purge" {
			res, err = m.src.Purge(ctx, p.sel, p.archive)
		} else {
			res, err = m.src.Replay(ctx, p.sel)
		}
		return actionMsg{kind: p.kind, res: res, err: err}
	})
	return m.spin.Tick
}

// move moves a cursor over n rows by msg's movement keys; page is the
// rows a page holds.
func (m *Model) move(msg tea.KeyMsg, cur *int, n int) bool {
	page := max(m.bodyHeight()-1, 1)
	k := m.keys
	switch {
	case key.Matches(msg, k.Up):
		*cur--
	case key.Matches(msg, k.Down):
		*cur++
	case key.Matches(msg, k.PageUp):
		*cur -= page
	case key.Matches(msg, k.PageDown):
		*cur += page
	case key.Matches(msg, k.Top):
		*cur = 0
	case key.Matches(msg, k.Bottom):
		*cur = n - 1
	default:
		return false
	}
	*cur = max(min(*cur, n-1), 0)
	return true
}

func (m *Model) keyGroups(msg tea.KeyMsg) {
	if m.move(msg, &m.gcur, len(m.groups)) || len(m.groups) == 0 {
		return
	}
	k := m.keys
	switch {
	case key.Matches(msg, k.Open):
		m.cur, m.mcur, m.mtop = m.groups[m.gcur], 0, 0
		m.screen = screenMessages
	case key.Matches(msg, k.Mark), key.Matches(msg, k.MarkGroup):
		m.toggleGroup(m.groups[m.gcur])
	}
}

func (m *Model) keyMessages(msg tea.KeyMsg) tea.Cmd {
	g := m.cur
	if m.move(msg, &m.mcur, len(g.members)) {
		return nil
	}
	k := m.keys
	switch {
	case key.Matches(msg, k.Back):
		m.screen = screenGroups
	case key.Matches(msg, k.Open):
		return m.open(g.members[m.mcur])
	case key.Matches(msg, k.Mark):
		i := g.members[m.mcur]
		m.setMark(i, !m.marked[i])
		m.mcur = min(m.mcur+1, len(g.members)-1)
	case key.Matches(msg, k.MarkGroup):
		m.toggleGroup(g)
	}
	return nil
}

func (m *Model) keyMessage(msg tea.KeyMsg) tea.Cmd {
	k := m.keys
	switch {
	case key.Matches(msg, k.Back):
		m.screen = screenMessages
		return nil
	case key.Matches(msg, k.Mark):
		m.setMark(m.detailIdx, !m.marked[m.detailIdx])
		m.renderDetail()
		return nil
	case key.Matches(msg, k.MarkGroup):
		m.toggleGroup(m.cur)
		m.renderDetail()
		return nil
	}
	var cmd tea.Cmd
	m.vp, cmd = m.vp.Update(msg)
	return cmd
}

// open shows message idx, fetching it in full.
func (m *Model) open(idx int) tea.Cmd {
	m.screen, m.detailIdx, m.detail, m.detailErr = screenMessage, idx, nil, nil
	m.renderDetail()
	id, gen := m.msgs[idx].ID, m.gen
	m.spawn(func(ctx context.Context) tea.Msg {
		d, err := m.src.Detail(ctx, id)
		return detailMsg{gen: gen, idx: idx, d: d, err: err}
	})
	return nil
}

func (m *Model) resize() {
	m.vp.Width, m.vp.Height = m.width, m.bodyHeight()
	if m.screen == screenMessage {
		m.renderDetail()
	}
}
