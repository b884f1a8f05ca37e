package output

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"
	"github.com/charmbracelet/x/ansi"
)

// Level marks a cell or row for highlighting on a terminal.
type Level int

// Levels, from neutral to alarming.
const (
	LevelNone Level = iota
	LevelOK
	LevelWarn
	LevelError
	LevelMuted
)

// TableData is what a command shows in table format.
type TableData struct {
	Headers []string
	Rows    [][]string
	// Columns says, by header, how a column gives way on a terminal too
	// narrow for the whole table. A header without an entry is an
	// ordinary column (the zero Column). Piped output ignores it.
	Columns map[string]Column
	// RowLevel, when set, colours a whole row on a terminal.
	RowLevel func(row int) Level
	// CellLevel, when set, colours one cell on a terminal; it wins over RowLevel.
	CellLevel func(row, col int) Level
	// Footer is printed under the table (a summary line).
	Footer string
}

// Column is how one column behaves on a terminal, where every row is one
// line: a cell too wide for its column is cut short and ends in "…", and
// when even the narrowest columns do not fit, columns are hidden and the
// table says which. The zero Column is cut (down to 10 columns at least)
// and never hidden.
type Column struct {
	// Keep means cells are never cut: ids and queue names, where a cut
	// value is a wrong value. Other columns narrow or go first; a Keep
	// column wider than the terminal is shown whole all the same.
	Keep bool
	// Min is the narrowest the column is cut to before columns are
	// hidden instead; 0 means 10. A column narrower than Min keeps its
	// own width.
	Min int
	// Max caps the column's width on a terminal however wide it is; 0
	// means no cap. Keep columns ignore it.
	Max int
	// CutStart cuts a long cell at its start instead of its end, for
	// cells whose end says most: "…points.dlq 17" keeps the count.
	CutStart bool
	// Drop ranks the column for hiding when the terminal is too narrow:
	// the highest Drop goes first (the rightmost among equals); 0 means
	// never hidden. Give it to the columns a reader misses least.
	Drop int
}

// defaultMin is how narrow an ordinary column may be cut: enough to
// recognise a word or a number.
const defaultMin = 10

// Tabular is implemented by results that have a table view.
type Tabular interface {
	Table() TableData
}

func (t TableData) level(row, col int) Level {
	if t.CellLevel != nil {
		if l := t.CellLevel(row, col); l != LevelNone {
			return l
		}
	}
	if t.RowLevel != nil {
		return t.RowLevel(row)
	}
	return LevelNone
}

// WriteTable renders t to w. With colour, it is a bordered, coloured
// lipgloss table; otherwise plain text aligned with spaces, no escape
// codes, headers in capitals. On a terminal of known width (s.Width > 0)
// either form is fitted to it: one line per row, cells cut with "…" and
// low-value columns hidden as TableData.Columns says, with a line naming
// the hidden ones. Piped (s.Width == 0, no colour), every value is
// printed whole, as scripts expect.
func WriteTable(w io.Writer, s *Styles, t TableData) error {
	if !s.Color {
		if s.Width <= 0 {
			return writePlain(w, t)
		}
		return writeFittedPlain(w, s, t)
	}
	headers, rows, l := fitTable(t, s.Width, styledOverhead)
	tbl := table.New().
		Border(lipgloss.RoundedBorder()).
		BorderStyle(s.Border).
		Wrap(false).
		Headers(headers...).
		Rows(rows...).
		StyleFunc(func(row, col int) lipgloss.Style {
			if row == table.HeaderRow {
				return s.Header
			}
			return s.ForLevel(t.level(row, l.cols[col])).Padding(0, 1)
		})
	if _, err := fmt.Fprintln(w, tbl.Render()); err != nil {
		return err
	}
	return writeFooters(w, s, t, l)
}

func writeFooters(w io.Writer, s *Styles, t TableData, l layout) error {
	if t.Footer != "" {
		if _, err := fmt.Fprintln(w, s.Muted.Render(t.Footer)); err != nil {
			return err
		}
	}
	if note := l.hiddenNote(t.Headers, s.Width); note != "" {
		_, err := fmt.Fprintln(w, s.Muted.Render(note))
		return err
	}
	return nil
}

// styledOverhead is what a bordered table adds to its cells' widths: a
// space either side of each cell and a border line between and around them.
func styledOverhead(cols int) int { return 3*cols + 1 }

// plainOverhead is the two spaces between plain columns.
func plainOverhead(cols int) int { return 2 * (cols - 1) }

// writeFittedPlain is the plain table on a terminal: aligned by display
// width (tabwriter counts runes, which misaligns wide characters), fitted
// like the styled one.
func writeFittedPlain(w io.Writer, s *Styles, t TableData) error {
	upper := t
	upper.Headers = make([]string, len(t.Headers))
	for i, h := range t.Headers {
		upper.Headers[i] = strings.ToUpper(h)
	}
	// The attributes are keyed by the headers as the view wrote them.
	upper.Columns = make(map[string]Column, len(t.Columns))
	for h, c := range t.Columns {
		upper.Columns[strings.ToUpper(h)] = c
	}
	headers, rows, l := fitTable(upper, s.Width, plainOverhead)
	var b strings.Builder
	for _, r := range append([][]string{headers}, rows...) {
		b.Reset()
		for j, c := range r {
			b.WriteString(c)
			if j < len(r)-1 {
				b.WriteString(strings.Repeat(" ", l.widths[j]-ansi.StringWidth(c)+2))
			}
		}
		if _, err := fmt.Fprintln(w, b.String()); err != nil {
			return err
		}
	}
	return writeFooters(w, s, t, l)
}

func writePlain(w io.Writer, t TableData) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	headers := make([]string, len(t.Headers))
	for i, h := range t.Headers {
		headers[i] = strings.ToUpper(h)
	}
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, r := range t.Rows {
		cells := make([]string, len(r))
		for i, c := range r {
			// A tab or newline inside a cell would break the alignment scripts rely on.
			cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if t.Footer != "" {
		_, err := fmt.Fprintln(w, t.Footer)
		return err
	}
	return nil
}

// oneLine replaces the characters that would break a row on a terminal
// into more lines, or make it wider than measured (lipgloss expands a tab).
func oneLine(c string) string { return lineBreaks.Replace(c) }

var lineBreaks = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ")

// layout is which columns a fitted table shows and how wide each is.
type layout struct {
	cols   []int // indexes of the columns shown, in order
	widths []int // display width of each shown column, without padding
	hidden []int // indexes of the hidden columns, in order
}

// hiddenNote is the line that names the columns a table left out, in the
// view's own words.
func (l layout) hiddenNote(headers []string, width int) string {
	if len(l.hidden) == 0 {
		return ""
	}
	names := make([]string, len(l.hidden))
	for i, j := range l.hidden {
		if j < len(headers) {
			names[i] = headers[j]
		}
	}
	what := "columns"
	if len(names) == 1 {
		what = "column"
	}
	return fmt.Sprintf("(%s hidden to fit %d columns: %s; widen the terminal or use -o json)",
		what, width, strings.Join(names, ", "))
}

// fitTable lays t out in limit display columns (0: no limit), overhead
// being what borders and padding add for a number of columns, and returns
// the headers and rows of the shown columns, each cell cut to its
// column's width.
//
// The order of giving way: ordinary columns narrow to their Min; then
// columns with a Drop are hidden, highest first, until the Mins fit; then,
// as a last resort, ordinary columns narrow below their Min. Keep columns
// never narrow, so a table whose Keep columns alone are wider than the
// terminal is wider than the terminal.
func fitTable(t TableData, limit int, overhead func(cols int) int) (headers []string, rows [][]string, l layout) {
	n := len(t.Headers)
	for _, r := range t.Rows {
		n = max(n, len(r))
	}
	cell := func(r []string, j int) string {
		if j < len(r) {
			return oneLine(r[j])
		}
		return ""
	}
	attr := make([]Column, n)
	natural := make([]int, n) // the widest cell, header included
	for j := 0; j < n; j++ {
		h := cell(t.Headers, j)
		attr[j] = t.Columns[h]
		natural[j] = ansi.StringWidth(h)
		for _, r := range t.Rows {
			natural[j] = max(natural[j], ansi.StringWidth(cell(r, j)))
		}
		if c := attr[j]; !c.Keep && c.Max > 0 {
			natural[j] = min(natural[j], c.Max)
		}
	}
	floor := func(j int) int {
		switch c := attr[j]; {
		case c.Keep:
			return natural[j]
		case c.Min > 0:
			return min(c.Min, natural[j])
		}
		return min(defaultMin, natural[j])
	}

	shown := make([]bool, n)
	widths := make([]int, n)
	for j := range shown {
		shown[j] = true
		widths[j] = natural[j]
	}
	if limit > 0 {
		count, total := n, 0
		for j := range widths {
			widths[j] = floor(j)
			total += widths[j]
		}
		for total+overhead(count) > limit && count > 1 {
			drop := -1
			for j := n - 1; j >= 0; j-- {
				if shown[j] && attr[j].Drop > 0 && (drop < 0 || attr[j].Drop > attr[drop].Drop) {
					drop = j
				}
			}
			if drop < 0 {
				break
			}
			shown[drop] = false
			count--
			total -= widths[drop]
		}
		// Last resort: cut ordinary columns below their Min, the widest
		// first, but never to less than a letter and the ellipsis.
		for total+overhead(count) > limit {
			widest := -1
			for j := range widths {
				if shown[j] && !attr[j].Keep && widths[j] > 2 && (widest < 0 || widths[j] > widths[widest]) {
					widest = j
				}
			}
			if widest < 0 {
				break
			}
			widths[widest]--
			total--
		}
		// Share what is left evenly among the columns still cut, a
		// column of width at a time, so that one long cell does not take
		// it all.
		for spare := limit - total - overhead(count); spare > 0; {
			grew := false
			for j := range widths {
				if spare > 0 && shown[j] && widths[j] < natural[j] {
					widths[j]++
					spare--
					grew = true
				}
			}
			if !grew {
				break
			}
		}
	}

	for j := 0; j < n; j++ {
		if shown[j] {
			l.cols = append(l.cols, j)
			l.widths = append(l.widths, widths[j])
		} else {
			l.hidden = append(l.hidden, j)
		}
	}
	fitRow := func(r []string) []string {
		out := make([]string, len(l.cols))
		for i, j := range l.cols {
			if attr[j].CutStart {
				out[i] = cutStart(cell(r, j), l.widths[i])
			} else {
				out[i] = cut(cell(r, j), l.widths[i])
			}
		}
		return out
	}
	headers = fitRow(t.Headers)
	rows = make([][]string, len(t.Rows))
	for i, r := range t.Rows {
		rows[i] = fitRow(r)
	}
	return headers, rows, l
}

// cut shortens c to width display columns, ending it in "…" when anything
// was left out. Widths are those of a terminal: a CJK character or an
// emoji takes two.
func cut(c string, width int) string {
	if ansi.StringWidth(c) <= width {
		return c
	}
	// "rejected…", not "rejected …".
	return strings.TrimRight(ansi.Truncate(c, width-1, ""), " ") + "…"
}

// cutStart is cut from the other end: "…" and the last width-1 columns.
func cutStart(c string, width int) string {
	w := ansi.StringWidth(c)
	if w <= width {
		return c
	}
	// A wide character across the cut is kept whole by TruncateLeft:
	// cut one column more until the rest fits.
	rest := ""
	for n := w - (width - 1); n <= w; n++ {
		if rest = ansi.TruncateLeft(c, n, ""); ansi.StringWidth(rest) <= width-1 {
			break
		}
	}
	return "…" + strings.TrimLeft(rest, " ")
}
