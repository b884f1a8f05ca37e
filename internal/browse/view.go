package browse

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
)

// View draws the screen. It draws only the rows that fit, so its cost
// does not grow with the queue.
func (m *Model) View() string {
	var b strings.Builder
	b.WriteString(m.titleLine())
	b.WriteByte('\n')
	b.WriteString(m.crumbLine())
	b.WriteByte('\n')
	var body string
	switch {
	case m.confirm != nil:
		body = m.confirmBox()
	case m.screen == screenGroups:
		body = m.groupsTable()
	case m.screen == screenMessages:
		body = m.messagesTable()
	default:
		body = m.vp.View()
	}
	b.WriteString(padLines(body, m.bodyHeight()+1))
	b.WriteString(m.statusLine())
	b.WriteByte('\n')
	if m.showHelp {
		b.WriteString(m.help.FullHelpView(m.keys.FullHelp()))
	} else {
		b.WriteString(m.help.ShortHelpView(m.keys.ShortHelp()))
	}
	return b.String()
}

// padLines cuts or pads s to exactly n lines, each ending in a newline.
func padLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ") // the viewport pads to its width
	}
	for len(lines) < n {
		lines = append(lines, "")
	}
	return strings.Join(lines, "\n") + "\n"
}

func (m *Model) titleLine() string {
	left := m.st.Title.Render("mqctl dlq browse " + m.opt.Queue)
	var right string
	switch {
	case m.loadErr != nil:
		right = m.st.Error.Render(fmt.Sprintf("reading stopped after %s of %s: %v", count(m.read), count(m.total), m.loadErr))
	case m.loading:
		right = m.spin.View() + " " + fmt.Sprintf("reading %s of %s message(s)… none consumed", count(m.read), count(m.total))
	default:
		right = m.st.Muted.Render(fmt.Sprintf("%s message(s) in %d group(s) · read without consuming", count(len(m.msgs)), len(m.groups)))
	}
	return fit(left+"  "+right, m.width)
}

func (m *Model) crumbLine() string {
	parts := []string{"groups"}
	if m.screen != screenGroups && m.cur != nil {
		parts = append(parts, fmt.Sprintf("group %s (%s)", m.cur.Key, groupLabel(m.cur)))
	}
	if m.screen == screenMessage {
		parts = append(parts, m.msgs[m.detailIdx].ID)
	}
	return fit(m.st.Bold.Render(strings.Join(parts, " › ")), m.width)
}

func groupLabel(g *group) string {
	var parts []string
	for _, p := range []string{g.Origin, g.Reason, g.Error} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, " · ")
}

func (m *Model) statusLine() string {
	marked := fmt.Sprintf("%s marked", count(m.nMarked))
	line := m.st.Marked.Render(marked)
	switch {
	case m.busy != "":
		line += "  " + m.spin.View() + " " + m.st.Warn.Render(m.busy+"…")
	case m.status != "" && m.statusOK:
		line += "  " + m.st.OK.Render(m.status)
	case m.status != "":
		line += "  " + m.st.Warn.Render(m.status)
	}
	return fit(line, m.width)
}

// column is one column of a table: its heading, width and whether it is
// right-aligned.
type column struct {
	title string
	width int
	right bool
}

// layout gives the flexible column (flex) what the others leave of
// width, at least min.
func layout(cols []column, flex, width, minWidth int) []column {
	used := 4 // cursor and mark
	for i, c := range cols {
		if i != flex {
			used += c.width + 1
		}
	}
	cols[flex].width = max(width-used-1, minWidth)
	return cols
}

func (m *Model) heading(cols []column) string {
	var b strings.Builder
	b.WriteString("    ")
	for _, c := range cols {
		b.WriteString(cell(c.title, c.width, c.right))
		b.WriteByte(' ')
	}
	return m.st.Header.Render(strings.TrimRight(b.String(), " "))
}

// row draws one table row: cursor, mark, cells.
func (m *Model) row(cursor bool, mark string, cols []column, cells []string) string {
	var b strings.Builder
	if cursor {
		b.WriteString("> ")
	} else {
		b.WriteString("  ")
	}
	b.WriteString(mark)
	b.WriteByte(' ')
	for i, c := range cols {
		b.WriteString(cell(cells[i], c.width, c.right))
		b.WriteByte(' ')
	}
	line := fit(strings.TrimRight(b.String(), " "), m.width)
	switch {
	case cursor:
		return m.st.Cursor.Render(line)
	case mark != " ":
		return m.st.Marked.Render(line)
	}
	return line
}

// scroll keeps cursor within the rows drawn from *top.
func scroll(cursor int, top *int, rows int) {
	if cursor < *top {
		*top = cursor
	}
	if cursor >= *top+rows {
		*top = cursor - rows + 1
	}
	*top = max(*top, 0)
}

func (m *Model) groupsTable() string {
	if len(m.groups) == 0 {
		if m.loading {
			return m.st.Muted.Render("  reading…")
		}
		return m.st.Muted.Render("  the queue holds no message")
	}
	origin, reason := len("origin"), len("reason")
	for _, g := range m.groups {
		origin, reason = max(origin, len(g.Origin)), max(reason, len(g.Reason))
	}
	cols := layout([]column{
		{title: "key", width: 8}, {title: "count", width: 7, right: true}, {title: "origin", width: min(origin, 20)},
		{title: "reason", width: min(reason, 14)}, {title: "error", width: 0}, {title: "first death", width: 16},
		{title: "last death", width: 16},
	}, 4, m.width, 10)
	rows := m.bodyHeight()
	scroll(m.gcur, &m.gtop, rows)
	lines := []string{m.heading(cols)}
	for i := m.gtop; i < len(m.groups) && i < m.gtop+rows; i++ {
		g := m.groups[i]
		mark := " "
		switch {
		case g.marked == len(g.members):
			mark = "x"
		case g.marked > 0:
			mark = "~"
		}
		lines = append(lines, m.row(i == m.gcur, mark, cols, []string{
			g.Key, count(len(g.members)), dash(g.Origin), dash(g.Reason), dash(g.Error), when(g.First), when(g.Last),
		}))
	}
	return strings.Join(lines, "\n")
}

func (m *Model) messagesTable() string {
	g := m.cur
	idWidth := 10
	for _, i := range g.members[m.mtop:min(len(g.members), m.mtop+m.bodyHeight())] {
		idWidth = max(idWidth, len(m.msgs[i].ID))
	}
	cols := layout([]column{
		{title: "id", width: min(idWidth, 42)}, {title: "deaths", width: 6, right: true},
		{title: "last death", width: 16}, {title: "cause", width: 0}, {title: "replay to", width: 16},
		{title: "size", width: 8, right: true},
	}, 3, m.width, 10)
	rows := m.bodyHeight()
	scroll(m.mcur, &m.mtop, rows)
	lines := []string{m.heading(cols)}
	for j := m.mtop; j < len(g.members) && j < m.mtop+rows; j++ {
		msg := m.msgs[g.members[j]]
		mark := " "
		if m.marked[g.members[j]] {
			mark = "x"
		}
		lines = append(lines, m.row(j == m.mcur, mark, cols, []string{
			msg.ID, fmt.Sprint(msg.Deaths), when(msg.LastDeath), msg.Cause, dash(msg.Destination), bytesText(msg.Size),
		}))
	}
	return strings.Join(lines, "\n")
}

func (m *Model) confirmBox() string {
	p := m.confirm
	var b strings.Builder
	verb := map[string]string{"replay": "Replay", "purge": "Purge"}[p.kind]
	fmt.Fprintf(&b, "%s %d marked message(s) from %s?\n\n", verb, p.sel.Count, m.opt.Queue)
	width := 0
	for _, d := range p.dests {
		width = max(width, len(destName(d.name)))
	}
	for _, d := range p.dests {
		fmt.Fprintf(&b, "  → %-*s  %d\n", width, destName(d.name), d.n)
	}
	if len(p.holds) > 0 {
		fmt.Fprintf(&b, "\nStay in %s, skipped by replay's guard rails:\n", m.opt.Queue)
		for _, h := range p.holds {
			fmt.Fprintf(&b, "  ✗ %s  %d\n", h.name, h.n)
		}
	}
	if extra := p.sel.Count - m.nMarked; extra > 0 {
		fmt.Fprintf(&b, "\n%d unmarked message(s) carry a marked id and go with them.\n", extra)
	}
	if p.kind == "purge" {
		b.WriteString("\nEach is written to the archive, and the archive flushed to disk, before it\nleaves the queue; `mqctl publish --from` puts them back. Nothing else is removed.\n")
	} else {
		b.WriteString("\nEach goes to the queue it died in, with publisher confirms; its dead letter\nis acked only after the broker confirmed. Nothing else moves.\n")
	}
	fmt.Fprintf(&b, "\n%s %s   %s cancel", m.st.Bold.Render("y"), strings.ToLower(verb), m.st.Bold.Render("n/esc"))
	return m.st.Confirm.Render(b.String())
}

func destName(name string) string {
	if name == "" {
		return "(no origin queue: stays in the DLQ, failed)"
	}
	return name
}

// renderDetail fills the message view's viewport.
func (m *Model) renderDetail() {
	if m.screen != screenMessage {
		return
	}
	msg := m.msgs[m.detailIdx]
	var b strings.Builder
	kv := func(k, v string) { fmt.Fprintf(&b, "%-13s %s\n", k, v) }
	kv("id", msg.ID)
	kv("group", fmt.Sprintf("%s (%s)", msg.GroupKey, groupLabel(m.byKey[msg.GroupKey])))
	mark := "no (space marks it)"
	if m.marked[m.detailIdx] {
		mark = "yes"
	}
	kv("marked", mark)
	kv("replay to", fmt.Sprintf("%s (replayed %d time(s) before)", dash(msg.Destination), msg.Replays))
	if msg.Hold != "" {
		kv("replay", m.st.Warn.Render("skipped: "+msg.Hold))
	}
	kv("size", fmt.Sprintf("%d bytes", msg.Size))
	b.WriteByte('\n')
	switch {
	case m.detailErr != nil:
		b.WriteString(m.st.Error.Render(fmt.Sprintf("could not read the message: %v", m.detailErr)))
	case m.detail == nil:
		b.WriteString(m.st.Muted.Render("fetching the message… (while the queue is being read, this waits for the read to end)"))
	default:
		m.writeDetail(&b, *m.detail)
	}
	m.vp.SetContent(ansi.Wrap(b.String(), max(m.width, 20), ""))
}

func (m *Model) writeDetail(b *strings.Builder, d Detail) {
	b.WriteString(m.st.Bold.Render("deaths, oldest first, newest last") + "\n")
	if len(d.Deaths) == 0 {
		b.WriteString("  (no death recorded in its headers)\n")
	}
	life := 0
	for i, e := range d.Deaths {
		if e.Life != life {
			life = e.Life
			fmt.Fprintf(b, "  — replayed (life %d) —\n", life+1)
		}
		what := e.Reason
		if e.Retry {
			what += " (retry pass)"
		}
		if e.Count > 1 {
			what += fmt.Sprintf(" ×%d", e.Count)
		}
		line := fmt.Sprintf("  %2d  %-19s  %-16s %-20s", i+1, whenLong(e.Time), e.Queue, what)
		if e.Error != "" {
			line += "  " + e.Error
		}
		if e.ErrorClass != "" {
			line += "  [" + e.ErrorClass + "]"
		}
		if i == len(d.Deaths)-1 {
			line = m.st.Warn.Render(line)
		}
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	writeFields(b, m.st.Bold.Render("properties"), d.Properties)
	title := "headers"
	if d.HiddenHeaders > 0 {
		title += fmt.Sprintf(" (%d death header(s) not shown: they are the deaths above)", d.HiddenHeaders)
	}
	writeFields(b, m.st.Bold.Render(title), d.Headers)
	kind, text := FormatBody(d.Body)
	size := fmt.Sprintf("%d bytes", d.BodySize)
	if len(d.Body) < d.BodySize {
		size = fmt.Sprintf("first %d of %d bytes", len(d.Body), d.BodySize)
	}
	fmt.Fprintf(b, "\n%s\n%s\n", m.st.Bold.Render(fmt.Sprintf("body (%s, %s)", size, kind)), text)
}

func writeFields(b *strings.Builder, title string, fs []Field) {
	fmt.Fprintf(b, "\n%s\n", title)
	if len(fs) == 0 {
		b.WriteString("  (none)\n")
	}
	for _, f := range fs {
		fmt.Fprintf(b, "  %-18s %s\n", f.Name, f.Value)
	}
}

// FormatBody shows a body as indented JSON when it is JSON, else as a
// hex dump with the printable bytes beside it; kind says which.
func FormatBody(body []byte) (kind, text string) {
	if len(body) == 0 {
		return "empty", ""
	}
	if json.Valid(body) {
		var buf bytes.Buffer
		if json.Indent(&buf, body, "", "  ") == nil {
			return "JSON", buf.String()
		}
	}
	return "hex", strings.TrimRight(hex.Dump(body), "\n")
}

// cell is s cut or padded to exactly w columns.
func cell(s string, w int, right bool) string {
	s = strings.Join(strings.Fields(s), " ")
	if ansi.StringWidth(s) > w {
		s = ansi.Truncate(s, w, "…")
	}
	pad := strings.Repeat(" ", max(w-ansi.StringWidth(s), 0))
	if right {
		return pad + s
	}
	return s + pad
}

// fit cuts a (possibly styled) line to w columns.
func fit(s string, w int) string {
	if ansi.StringWidth(s) > w {
		return ansi.Truncate(s, w, "…")
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04")
}

func whenLong(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// count writes n with thousands separators.
func count(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func bytesText(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
